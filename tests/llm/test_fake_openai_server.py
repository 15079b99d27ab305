"""The loopback server itself: the protocol details other tests rely on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.fakes.openai_server import Raw, Reply, Slow, Status


def post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_scripted_behaviours_in_order_then_responder(server):
    url = f"{server.base_url}/chat/completions"
    server.responder = lambda body: body["model"] + "!"
    server.enqueue(Status(429, {"Retry-After": "2"}), Raw(b"junk"), Slow(0.05, Reply("slow")))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    status, headers, _ = post(url, body, {"Authorization": "Bearer k"})
    assert (status, headers["Retry-After"]) == (429, "2")
    assert post(url, body)[2] == b"junk"
    assert json.loads(post(url, body)[2])["choices"][0]["message"]["content"] == "slow"
    assert json.loads(post(url, body)[2])["choices"][0]["message"]["content"] == "m!"
    assert server.calls == 4 and server.requests[0].headers["authorization"] == "Bearer k"


@pytest.mark.parametrize("path", ["/v1/completions", "/chat/completions"])
def test_unknown_routes_are_404_recorded_and_leave_the_script_alone(server, path):
    server.enqueue(Status(500))
    assert post(server.base_url.removesuffix("/v1") + path, {"model": "m"})[0] == 404
    assert server.requests[-1].path == path
    assert post(f"{server.base_url}/chat/completions", {"model": "m", "messages": []})[0] == 500
