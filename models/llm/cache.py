"""A response cache for chat requests: a re-run spends nothing, a crash loses no paid call.

One small JSON file per request, named by a SHA-256 over (model, the full messages with images by
content hash, the generation parameters, a prompt/version tag), written atomically the moment
the reply arrives. Files rather than one database: each write is independent (a crash can only
lose the call in flight), concurrent runs need no locking beyond ``os.replace``, and an entry can
be inspected or deleted with a text editor. What is stored is the request's canonical form and
the reply; never the API key, never the endpoint URL (which may carry credentials).

Bumping the tag (``"paraphrase-v1"`` → ``"paraphrase-v2"``) when a prompt changes makes every old
entry unreachable without deleting anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.atomic import write_text_atomic
from models.llm.client import ChatClient, Validator
from models.llm.content import Message, canonical_messages

log = logging.getLogger(__name__)

_FORMAT = 1


def cache_key(model: str, messages: list[Message], params: dict[str, Any], tag: str) -> str:
    """The hex SHA-256 that names a request's cache entry."""
    payload = {
        "format": _FORMAT,
        "model": model,
        "messages": canonical_messages(messages),
        "params": params,
        "tag": tag,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies on disk under ``directory/<key[:2]>/<key>.json``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r})"

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The stored reply, or ``None`` when absent or unreadable (then it is asked again)."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("unreadable cache entry %s (%s); asking again", path, type(error).__name__)
            return None
        reply = entry.get("reply") if isinstance(entry, dict) else None
        return reply if isinstance(reply, str) else None

    def put(
        self,
        key: str,
        reply: str,
        *,
        model: str,
        tag: str,
        params: dict[str, Any],
        messages: list[Message],
    ) -> Path:
        """Store ``reply`` atomically; the request is kept in canonical form for inspection."""
        entry = {
            "format": _FORMAT,
            "key": key,
            "model": model,
            "tag": tag,
            "params": params,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": canonical_messages(messages),
            "reply": reply,
        }
        path = self.path(key)
        write_text_atomic(path, json.dumps(entry, ensure_ascii=False, indent=1), fsync=True)
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("??/*.json"))


@dataclass
class CacheStats:
    """Calls answered from disk (hits) and calls passed to the endpoint (misses)."""

    hits: int = 0
    misses: int = 0


class CachedChatClient:
    """A :class:`ChatClient` that answers repeated requests from a :class:`ResponseCache`.

    A hit makes no HTTP request at all. A cached reply that the caller's ``validate`` now rejects
    (e.g. after a parser change) counts as a miss and is replaced by a fresh one.
    """

    def __init__(self, client: ChatClient, cache: ResponseCache) -> None:
        self.client = client
        self.cache = cache
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedChatClient({self.client!r}, {self.cache!r})"

    @property
    def model(self) -> str:
        return self.client.model

    @property
    def generation_params(self) -> dict[str, Any]:
        return self.client.generation_params

    def complete(self, messages: list[Message], *, tag: str = "", validate: Validator | None = None) -> str:
        """The cached reply to this exact request, else the endpoint's, stored before returning."""
        key = cache_key(self.model, messages, self.generation_params, tag)
        cached = self.cache.get(key)
        if cached is not None and _valid(cached, validate):
            with self._lock:
                self.stats.hits += 1
            return cached
        with self._lock:
            self.stats.misses += 1
        reply = self.client.complete(messages, tag=tag, validate=validate)
        self.cache.put(
            key, reply, model=self.model, tag=tag, params=self.generation_params, messages=messages
        )
        return reply

    def report(self) -> dict[str, int]:
        """Counts for run metadata: cache hits and misses, HTTP requests, retries, failures."""
        with self._lock:
            counts = {"cache_hits": self.stats.hits, "cache_misses": self.stats.misses}
        return counts | self.client.report()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CachedChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _valid(reply: str, validate: Validator | None) -> bool:
    if validate is None:
        return True
    try:
        validate(reply)
    except ValueError:
        return False
    return True
