"""ChatClient against a real loopback chat-completions server: replies, retries, errors, budget."""

from __future__ import annotations

import base64
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.llm import (
    ChatEndpointConfig,
    LLMBudgetExceeded,
    LLMError,
    LLMRejected,
    LLMUnavailable,
    image_part,
    text_part,
)
from tests.fakes.openai_server import Raw, Reply, Slow, Status
from tests.llm.conftest import API_KEY

USER = [{"role": "user", "content": "How many washers?"}]


def test_reply_round_trip_sends_bearer_key_model_and_params(server, make_client):
    server.responder = lambda body: f"echo: {body['messages'][-1]['content']}"
    client = make_client(temperature=0.3, max_tokens=77)

    assert client.complete(USER) == "echo: How many washers?"

    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.json()
    assert body["model"] == "fake-model"
    assert (body["temperature"], body["max_tokens"]) == (0.3, 77)
    assert client.report() == {"requests": 1, "retries": 0, "failures": 0}


def test_keyless_endpoint_gets_a_placeholder_bearer(server, make_client):
    make_client(api_key="").complete(USER)
    assert server.requests[0].headers["authorization"] == "Bearer no-key"


def test_5xx_is_retried_with_growing_backoff_then_succeeds(server, make_client, waits):
    server.enqueue(Status(500), Status(503))
    client = make_client(max_retries=3, backoff_base=0.01)

    assert client.complete(USER) == "ok"
    assert server.calls == 3
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02  # base·2^k with jitter in [½, 1]
    assert client.report() == {"requests": 3, "retries": 2, "failures": 0}


def test_persistent_500_is_reported_after_bounded_attempts(server, make_client):
    server.fail_next(10)
    client = make_client(max_retries=2)

    with pytest.raises(LLMError, match=r"gave up after 3 attempt\(s\); last: HTTP 500") as caught:
        client.complete(USER, tag="paraphrase-v1")
    assert server.calls == 3
    assert "fake-model" in str(caught.value) and "[paraphrase-v1]" in str(caught.value)
    assert client.report()["failures"] == 1


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Raw(b"<<garbage>> not json {"), "body is not JSON"),
        (Raw(b'{"object": "chat.completion"}'), "no choices"),
        (Raw(b'{"choices": []}'), "no choices"),
        (Reply(None), "empty content"),
        (Reply("   "), "empty content"),
        (Raw(b"<html>busy</html>", content_type="text/html"), "body is not JSON"),
    ],
)
def test_malformed_reply_is_retried_then_reported(server, make_client, behaviour, reason):
    server.enqueue(behaviour)
    assert make_client().complete(USER) == "ok"
    assert server.calls == 2

    server.enqueue(*[behaviour] * 3)
    with pytest.raises(LLMError, match=f"malformed reply: {reason}"):
        make_client(max_retries=2).complete(USER)
    assert server.calls == 5


def test_reply_rejected_by_validate_is_retried(server, make_client):
    def must_be_json(text: str) -> None:
        json.loads(text)  # JSONDecodeError is a ValueError

    server.enqueue(Reply("Sure! Here you go."))
    server.responder = lambda body: '["a", "b"]'
    assert make_client().complete(USER, validate=must_be_json) == '["a", "b"]'
    assert server.calls == 2

    server.responder = lambda body: "still prose"
    with pytest.raises(LLMError, match="malformed reply: Expecting value"):
        make_client(max_retries=1).complete(USER, validate=must_be_json)


def test_429_honours_retry_after(server, make_client, waits):
    server.enqueue(Status(429, {"Retry-After": "0.25"}), Status(429, {"retry-after-ms": "40"}))
    assert make_client(max_retries=2).complete(USER) == "ok"
    assert waits == [0.25, 0.04]


def test_retry_after_longer_than_backoff_max_fails_at_once(server, make_client, waits):
    server.enqueue(Status(429, {"Retry-After": "3600"}))
    with pytest.raises(LLMError, match=r"after 1 attempt\(s\); last: HTTP 429 \(Retry-After 3600 s\)"):
        make_client(max_retries=5, backoff_max=1.0).complete(USER)
    assert server.calls == 1 and waits == []


def test_timeout_is_retried(server, make_client):
    server.enqueue(Slow(2.0, Reply("late")))
    client = make_client(timeout_s=0.3)
    assert client.complete(USER) == "ok"
    assert server.calls == 2

    server.enqueue(*[Slow(2.0)] * 2)
    with pytest.raises(LLMError, match=r"no reply within 0.3 s"):
        make_client(timeout_s=0.3, max_retries=1).complete(USER)


def test_connection_error_is_retried_then_reported(make_client):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(LLMError, match=r"after 3 attempt\(s\); last: connection failed"):
        client.complete(USER)
    assert client.report()["requests"] == 3


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_refused_requests_fail_at_once(server, make_client, waits, code):
    server.enqueue(*[Status(code, message=f"refused {API_KEY}")] * 4)
    with pytest.raises(LLMRejected, match=rf"HTTP {code}, not retried") as caught:
        make_client(max_retries=3, api_key_env="LOGICLS_PARAPHRASE_API_KEY").complete(USER)
    assert server.calls == 1 and waits == []
    assert caught.value.status == code and API_KEY not in str(caught.value)
    assert not isinstance(caught.value, LLMUnavailable)  # no step retry either


def test_refused_key_names_the_variable_to_fix(server, make_client):
    server.enqueue(Status(401), Status(401), Status(403, message="model not allowed"))
    with pytest.raises(LLMRejected, match="refused the API key: set LOGICLS_ICL_API_KEY to a valid key"):
        make_client(api_key_env="LOGICLS_ICL_API_KEY").complete(USER)
    with pytest.raises(LLMRejected, match=r"no API key was sent \(LOGICLS_ICL_API_KEY is unset or empty\)"):
        make_client(api_key="", api_key_env="LOGICLS_ICL_API_KEY").complete(USER)
    with pytest.raises(LLMRejected, match="may not use model 'fake-model': check the key in LOGICLS_ICL_API_KEY"):
        make_client(api_key_env="LOGICLS_ICL_API_KEY").complete(USER)
    assert server.calls == 3


def test_not_found_names_base_url_and_model(server, make_client):
    server.enqueue(Status(404, message="The model `gpt-5x` does not exist"))
    with pytest.raises(LLMRejected) as caught:
        make_client(model="gpt-5x").complete(USER)
    assert f"check base_url ({server.base_url}" in str(caught.value) and "model ('gpt-5x')" in str(caught.value)
    assert server.calls == 1


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504])
def test_outages_are_retried_then_reported_as_unavailable(server, make_client, code):
    server.enqueue(Status(code))
    assert make_client(max_retries=1).complete(USER) == "ok"
    server.enqueue(Status(code), Status(code))
    with pytest.raises(LLMUnavailable, match=rf"gave up after 2 attempt\(s\); last: HTTP {code}"):
        make_client(max_retries=1).complete(USER)
    assert server.calls == 4


def test_malformed_replies_are_retried_but_are_no_outage(server, make_client):
    server.enqueue(Raw(b"{not json"), Reply(None))
    with pytest.raises(LLMError, match="malformed reply: empty content") as caught:
        make_client(max_retries=1).complete(USER)
    assert not isinstance(caught.value, LLMUnavailable) and server.calls == 2


def test_request_budget_counts_retries_and_stops_before_sending(server, make_client):
    client = make_client(request_budget=3, max_retries=2)
    server.enqueue(Status(500))
    client.complete(USER)  # two requests
    client.complete(USER)  # the third
    with pytest.raises(LLMBudgetExceeded, match="request budget of 3 requests for this run is spent"):
        client.complete(USER)
    assert server.calls == 3


def test_budget_exhausted_mid_retries_is_reported_as_budget(server, make_client):
    server.fail_next(5)
    with pytest.raises(LLMBudgetExceeded):
        make_client(request_budget=2, max_retries=4).complete(USER)
    assert server.calls == 2


def test_vision_request_with_two_images_round_trips(server, make_client, tmp_path: Path):
    example = np.zeros((6, 8, 3), np.uint8)
    example[2:4, 3:5] = (255, 200, 0)
    test_path = tmp_path / "test.png"
    Image.fromarray(np.full((5, 7), 128, np.uint8)).save(test_path)
    server.responder = lambda body: f"saw {len(server.requests[-1].image_urls())} images"
    messages = [
        {"role": "system", "content": "Answer with <think></think><answer></answer>."},
        {
            "role": "user",
            "content": [
                text_part("Case:"),
                image_part(example),
                text_part("Test:"),
                image_part(test_path, detail="high"),
            ],
        },
    ]

    assert make_client().complete(messages) == "saw 2 images"

    first, second = server.requests[0].image_urls()
    assert first.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(first.split(",", 1)[1]))))
    assert np.array_equal(decoded, example)
    assert base64.b64decode(second.split(",", 1)[1]) == test_path.read_bytes()  # files sent as they are
    parts = server.requests[0].json()["messages"][1]["content"]
    assert parts[3]["image_url"]["detail"] == "high"


def test_image_part_rejects_unusable_arrays():
    with pytest.raises(ValueError, match="uint8"):
        image_part(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        image_part(np.zeros((4, 4, 2), np.uint8))


def test_config_hides_key_and_url_credentials():
    config = ChatEndpointConfig(
        base_url="https://user:pw@llm.example.com:8443/v1?token=abc", model="m", api_key=API_KEY
    )
    assert API_KEY not in repr(config) and API_KEY not in str(config)
    assert config.safe_base_url == "https://llm.example.com:8443/v1"
    with pytest.raises(ValueError, match="http"):
        ChatEndpointConfig(base_url="llm.example.com/v1", model="m")
