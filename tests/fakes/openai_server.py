"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions protocol, for tests.

Why a real server rather than a mocked transport: it exercises everything between our code and
the wire (the ``openai`` client's URL joining, headers, JSON encoding of image parts, timeouts,
status handling), so a test that passes here also passes against vLLM, Ollama or OpenAI itself.

Behaviour is scripted per call: queue :class:`Reply`, :class:`Status`, :class:`Raw` or
:class:`Slow` items with :meth:`FakeOpenAIServer.enqueue`; once the queue is empty every call is
answered by ``responder`` (a callable from the request's JSON body to the reply's content).
Every request is recorded with its headers so tests can check what was sent.

Use it as a context manager or through the ``openai_server`` fixture::

    with FakeOpenAIServer(responder=lambda body: "hi") as server:
        client = OpenAI(base_url=server.base_url, api_key="k")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Responder = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class Reply:
    """A well-formed 200 chat completion whose message content is ``content`` (``None``: empty)."""

    content: str | None


@dataclass(frozen=True)
class Status:
    """An error status (500, 429, 503 ...) with a JSON error body and optional extra headers."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "scripted failure"


@dataclass(frozen=True)
class Raw:
    """Any body at all, e.g. garbage under ``application/json``, or JSON without ``choices``."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Slow:
    """Wait ``delay_s`` (cut short when the server closes), then behave as ``then``."""

    delay_s: float
    then: Reply | Status | Raw | None = None


Behaviour = Reply | Status | Raw | Slow


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived: header names lower-cased, body as bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def image_urls(self) -> list[str]:
        """The ``image_url.url`` of every image content part, in message order."""
        urls = []
        for message in self.json().get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                urls += [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        return urls


def _completion(model: str, content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeOpenAIServer:
    """Loopback chat-completions server on an ephemeral port, served from a daemon thread."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder: Responder = responder or (lambda body: "ok")
        self._script: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._requests)

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Script the next calls, in order; afterwards ``responder`` answers again."""
        with self._lock:
            self._script.extend(behaviours)

    def fail_next(self, k: int, code: int = 500) -> None:
        """The next ``k`` calls get ``code``."""
        self.enqueue(*[Status(code)] * k)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, request: RecordedRequest, scripted: bool) -> Behaviour | None:
        """Record ``request``; for a chat-completions call, also take the next scripted behaviour."""
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if scripted and self._script else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: a test's captured output should hold only what the code under test logs."""

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send_json(200, {"object": "list", "data": []})
                else:
                    self._send_json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                chat = self.path.rstrip("/") == "/v1/chat/completions"
                behaviour = server._record(RecordedRequest("POST", self.path, headers, body), chat)
                if chat:
                    self._behave(behaviour, body)
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})

            def _behave(self, behaviour: Behaviour | None, body: bytes) -> None:
                if isinstance(behaviour, Slow):
                    server._closing.wait(behaviour.delay_s)
                    behaviour = behaviour.then
                request = json.loads(body)
                model = request.get("model", "fake")
                if behaviour is None:
                    self._send_json(200, _completion(model, server.responder(request)))
                elif isinstance(behaviour, Reply):
                    self._send_json(200, _completion(model, behaviour.content))
                elif isinstance(behaviour, Status):
                    error = {"error": {"message": behaviour.message, "type": "fake", "code": None}}
                    self._send_json(behaviour.code, error, behaviour.headers)
                else:
                    self._send(behaviour.status, behaviour.body, behaviour.content_type, {})

            def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(obj).encode(), "application/json", headers or {})

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing left to tell it

        return Handler


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A started :class:`FakeOpenAIServer`, closed after the test."""
    with FakeOpenAIServer() as server:
        yield server
