"""A chat-completions client for any OpenAI-compatible endpoint, with bounded retries and a budget.

The same code talks to OpenAI, vLLM, Ollama and llama.cpp's server: only ``base_url``, ``model``
and ``api_key`` change. The ``openai`` package does the HTTP and the Bearer header; its own retry
loop is switched off (``max_retries=0``) so that this module decides, in one place, what is worth
retrying, how long to wait, and how every attempt counts against the run's request budget.

Retried: outages, i.e. connection errors, timeouts and HTTP 429/5xx (honouring ``Retry-After``),
plus 408 (Request Timeout) and 409 (Conflict, OpenAI's answer to a lock timeout), which the
``openai`` SDK's own policy also counts as transient; and malformed replies (body not JSON, no
choices, empty content, or content the caller's ``validate`` rejects). Not retried: every other
status (400, 401, 403, 404, 422 ...), which a second identical request cannot fix:
:class:`LLMRejected` fails at once and says what to fix (for 401/403 the environment variable that
holds the key, for 404 the base URL and model). When the attempts are spent, :class:`LLMUnavailable`
(an outage, worth a step retry later) or :class:`LLMError` (malformed replies) says what happened.

The API key never appears in a log line, an exception, a repr or a reply: it lives only inside the
``openai`` client, and every text that came from the server, successful replies included, passes
through :func:`redact` before anything shows, validates or stores it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import openai

from models.llm.content import Message, count_images

log = logging.getLogger(__name__)

Validator = Callable[[str], object]
"""Raises ``ValueError`` when a reply's content is unusable; such a reply is retried."""

_RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
_NO_KEY = "no-key"  # what keyless local servers (vLLM, Ollama) are sent; the SDK refuses an empty key
_EXCERPT = 160
_MIN_SECRET = 8  # shorter "keys" are placeholders (vLLM's EMPTY): redacting them would mangle replies
REDACTED = "***"


class LLMError(RuntimeError):
    """A chat request failed for good; the message says why, without any credential."""


class LLMUnavailable(LLMError):
    """Every attempt met an outage (connection, timeout, HTTP 408/409/429/5xx): try again later."""


class LLMRejected(LLMError):
    """The endpoint refused the request (HTTP 4xx other than 408/409/429): the same request is refused again.

    ``status`` is the HTTP status; the message names what to fix.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LLMBudgetExceeded(LLMError):
    """The run's request budget is spent; cached replies still cost nothing on a re-run."""


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``: the one scrub of server text."""
    return text.replace(secret, REDACTED) if len(secret) >= _MIN_SECRET else text


@dataclass(frozen=True)
class ChatEndpointConfig:
    """Where and how to ask; ``api_key`` is read at run time from an environment variable, never stored.

    ``api_key_env`` names that variable, so that a refused key is reported as "set <variable>"
    (the key itself is never shown). ``max_retries`` counts retries after the first attempt.
    ``request_budget`` caps HTTP requests (retries included) over the client's life, i.e. one run.
    Waits between attempts grow as ``backoff_base · 2^attempt`` with jitter, capped at
    ``backoff_max``; a ``Retry-After`` longer than ``backoff_max`` ends the attempts at once rather
    than spending them on a closed door.
    """

    base_url: str = field(metadata={"help": "e.g. https://api.openai.com/v1 or http://localhost:8000/v1"})
    model: str = field(metadata={"help": "Model name served at base_url."})
    api_key: str = field(default="", repr=False, metadata={"help": "The key itself (empty: no key)."})
    api_key_env: str = field(default="", metadata={"help": "The environment variable the key came from, named "
                                                           "in errors."})
    timeout_s: float = field(default=60.0, metadata={"help": "Seconds to wait for one reply."})
    max_retries: int = field(default=4, metadata={"help": "Retries of one request after an outage (connection "
                                                          "error, timeout, HTTP 408/409/429/5xx) or a malformed "
                                                          "reply."})
    request_budget: int = field(default=1000, metadata={"help": "HTTP requests allowed per run, retries "
                                                                "included."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature sent with every request."})
    max_tokens: int = field(default=1024, metadata={"help": "Reply length limit sent with every request."})
    backoff_base: float = field(default=1.0, metadata={"help": "Seconds before the first retry; doubled for each "
                                                               "further one (with jitter)."})
    backoff_max: float = field(default=30.0, metadata={"help": "Longest wait between retries; a longer "
                                                               "Retry-After ends the attempts."})

    def __post_init__(self) -> None:
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, got {self.safe_base_url!r}")
        if not self.model:
            raise ValueError("model must be named")
        if self.timeout_s <= 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("timeout_s must be positive and backoff times non-negative")
        if self.max_retries < 0 or self.request_budget < 0 or self.max_tokens <= 0:
            raise ValueError("max_retries and request_budget must be ≥ 0, max_tokens > 0")

    @property
    def safe_base_url(self) -> str:
        """``base_url`` without user info, query or fragment: fit for logs and errors."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @property
    def generation_params(self) -> dict[str, Any]:
        """The sampling settings sent with every request (and hashed into cache keys)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass
class ClientStats:
    """What a run spent: HTTP requests made, retries among them, and calls that gave up."""

    requests: int = 0
    retries: int = 0
    failures: int = 0


class ChatCompleter(Protocol):
    """Anything that answers chat requests: :class:`ChatClient` or a cached wrapper of one."""

    @property
    def model(self) -> str: ...

    @property
    def generation_params(self) -> dict[str, Any]: ...

    def complete(
        self, messages: list[Message], *, tag: str = "", validate: Validator | None = None
    ) -> str: ...


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None, *, outage: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.outage = outage  # False: the endpoint answered, but with a malformed reply


class ChatClient:
    """Sends chat-completion requests to one endpoint; see the module docstring for the policy.

    ``sleep`` and ``rng`` are injectable so tests can observe waits without spending them.
    Thread-safe: the budget and the counters are shared by all threads using one client.
    """

    def __init__(
        self,
        config: ChatEndpointConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = ClientStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._openai = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or _NO_KEY,
            timeout=config.timeout_s,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"ChatClient(model={self.config.model!r}, base_url={self.config.safe_base_url!r})"

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def generation_params(self) -> dict[str, Any]:
        return self.config.generation_params

    def report(self) -> dict[str, int]:
        """Counts for run metadata: HTTP requests, retries among them, calls that gave up."""
        with self._lock:
            return {
                "requests": self.stats.requests,
                "retries": self.stats.retries,
                "failures": self.stats.failures,
            }

    def close(self) -> None:
        self._openai.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: list[Message], *, tag: str = "", validate: Validator | None = None) -> str:
        """The assistant's reply to ``messages``; ``tag`` names the prompt in logs.

        The reply is redacted of the API key here, before validation, so that no cache entry or
        table derived from it can hold the key. Raises :class:`LLMBudgetExceeded` when no request
        is left, :class:`LLMRejected` at once when the endpoint refuses the request,
        :class:`LLMUnavailable` when every attempt met an outage, :class:`LLMError` when every
        attempt got a malformed reply.
        """
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            self._spend(tag)
            try:
                content = self._scrub(self._request(messages, tag))
                _check(content, validate)
                return content
            except _Retryable as error:
                last = error
                delay = self._delay(attempt, error.retry_after)
                if attempt + 1 == attempts or delay is None:
                    break
                log.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.2f s",
                    self._where(tag),
                    attempt + 1,
                    attempts,
                    error.reason,
                    delay,
                )
                with self._lock:
                    self.stats.retries += 1
                self._sleep(delay)
        with self._lock:
            self.stats.failures += 1
        failure = LLMUnavailable if last.outage else LLMError
        raise failure(f"{self._where(tag)}: gave up after {attempt + 1} attempt(s); last: {last.reason}")

    def _spend(self, tag: str) -> None:
        with self._lock:
            if self.stats.requests >= self.config.request_budget:
                raise LLMBudgetExceeded(
                    f"{self._where(tag)}: the request budget of {self.config.request_budget} requests "
                    "for this run is spent; raise request_budget, or re-run (cached replies are free)"
                )
            self.stats.requests += 1

    def _request(self, messages: list[Message], tag: str) -> str:
        log.debug(
            "%s: request with %d message(s), %d image(s)",
            self._where(tag),
            len(messages),
            count_images(messages),
        )
        try:
            raw = self._openai.chat.completions.with_raw_response.create(
                model=self.config.model, messages=messages, **self.config.generation_params
            )
        except openai.APITimeoutError:
            raise _Retryable(f"no reply within {self.config.timeout_s:g} s") from None
        except openai.APIConnectionError as error:
            raise _Retryable(f"connection failed ({type(error.__cause__ or error).__name__})") from None
        except openai.APIStatusError as error:
            raise self._status_error(error, tag) from None
        return _content(raw.http_response.text, self._scrub)

    def _status_error(self, error: openai.APIStatusError, tag: str) -> Exception:
        status = error.status_code
        detail = self._excerpt(error.response.text)
        if status in _RETRY_STATUSES or status >= 500:
            wait = _retry_after(error.response.headers)
            asked = f" (Retry-After {wait:g} s)" if wait is not None else ""
            return _Retryable(f"HTTP {status}{asked}: {detail}", wait)
        return LLMRejected(status, f"{self._where(tag)}: HTTP {status}, not retried: {self._fix(status, detail)}")

    def _fix(self, status: int, detail: str) -> str:
        """What to change for a refused request; names the key's variable, never the key."""
        config = self.config
        variable = config.api_key_env or "the API key"
        if status == 401:
            if not config.api_key:
                return f"no API key was sent ({variable} is unset or empty): set {variable} to a valid key"
            return f"the endpoint refused the API key: set {variable} to a valid key for this endpoint"
        if status == 403:
            return f"the API key may not use model {config.model!r}: check the key in {variable} ({detail})"
        if status == 404:
            return (f"not found: check base_url ({config.safe_base_url}, which serves /chat/completions) "
                    f"and model ({config.model!r}) ({detail})")
        return f"the endpoint rejected the request ({detail})"

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when waiting is pointless."""
        cap = self.config.backoff_max
        if retry_after is not None:
            return retry_after if retry_after <= cap else None
        ceiling = min(cap, self.config.backoff_base * 2**attempt)
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _where(self, tag: str) -> str:
        prompt = f" [{tag}]" if tag else ""
        return f"{self.config.model} at {self.config.safe_base_url}{prompt}"

    def _scrub(self, text: str) -> str:
        return redact(text, self.config.api_key)

    def _excerpt(self, text: str) -> str:
        return _shorten(self._scrub(text))


def _content(body: str, scrub: Callable[[str], str]) -> str:
    """The first choice's message text, or :class:`_Retryable` saying what is wrong with ``body``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise _Retryable(f"malformed reply: body is not JSON ({_shorten(scrub(body))!r})", outage=False) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Retryable(f"malformed reply: no choices ({_shorten(scrub(body))!r})", outage=False)
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # some servers return content parts even for text
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise _Retryable("malformed reply: empty content", outage=False)
    return content


def _check(content: str, validate: Validator | None) -> None:
    if validate is None:
        return
    try:
        validate(content)
    except ValueError as error:
        raise _Retryable(f"malformed reply: {_shorten(str(error))}", outage=False) from None


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 1] + "…"
