"""The response cache: a re-run spends nothing, a crash loses no paid call, keys are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from models.llm import CachedChatClient, LLMError, ResponseCache, cache_key, image_part, text_part
from tests.fakes.openai_server import Raw

QUESTIONS = ["How many washers?", "How many nuts?", "Are there almonds on the cereals?"]


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def test_second_run_makes_no_request(server, make_client, tmp_path):
    server.responder = lambda body: "reply to " + body["messages"][0]["content"]
    first = CachedChatClient(make_client(), ResponseCache(tmp_path))
    replies = [first.complete(ask(q), tag="t-v1") for q in QUESTIONS]
    assert server.calls == 3
    assert first.report() == {"cache_hits": 0, "cache_misses": 3, "requests": 3, "retries": 0, "failures": 0}

    second = CachedChatClient(make_client(), ResponseCache(tmp_path))  # a new run
    assert [second.complete(ask(q), tag="t-v1") for q in QUESTIONS] == replies
    assert server.calls == 3
    assert second.report()["cache_hits"] == 3 and second.report()["requests"] == 0
    assert len(ResponseCache(tmp_path)) == 3


def test_crash_loses_no_paid_call(server, make_client, tmp_path):
    """Replies are on disk as soon as they arrive: after a failure only the failed call is repeated."""
    cached = CachedChatClient(make_client(max_retries=0), ResponseCache(tmp_path))
    cached.complete(ask(QUESTIONS[0]))
    cached.complete(ask(QUESTIONS[1]))
    server.fail_next(1)
    with pytest.raises(LLMError):
        cached.complete(ask(QUESTIONS[2]))
    assert server.calls == 3

    rerun = CachedChatClient(make_client(), ResponseCache(tmp_path))
    for question in QUESTIONS:
        rerun.complete(ask(question))
    assert server.calls == 4
    assert rerun.report()["cache_hits"] == 2


def test_key_covers_model_messages_params_tag_and_image_content():
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)

    def with_image(image) -> list[dict]:
        return [{"role": "user", "content": [text_part("Q"), image_part(image)]}]

    base = cache_key("m", with_image(pixels), {"temperature": 0.7}, "v1")
    assert base == cache_key("m", with_image(Image.fromarray(pixels)), {"temperature": 0.7}, "v1")
    other_pixels = pixels.copy()
    other_pixels[0, 0, 0] = 255
    variants = [
        cache_key("m2", with_image(pixels), {"temperature": 0.7}, "v1"),
        cache_key("m", with_image(other_pixels), {"temperature": 0.7}, "v1"),
        cache_key("m", with_image(pixels), {"temperature": 0.2}, "v1"),
        cache_key("m", with_image(pixels), {"temperature": 0.7}, "v2"),
        cache_key(
            "m",
            [{"role": "user", "content": [text_part("Q2"), image_part(pixels)]}],
            {"temperature": 0.7},
            "v1",
        ),
    ]
    assert len({base, *variants}) == 6


def test_entry_is_inspectable_json_without_images_or_credentials(server, make_client, tmp_path):
    client = make_client(base_url=server.base_url.replace("http://", "http://alice:s3cret-pw@"))
    cache = ResponseCache(tmp_path)
    messages = [{"role": "user", "content": [text_part("Q"), image_part(np.zeros((3, 3), np.uint8))]}]
    CachedChatClient(client, cache).complete(messages, tag="icl-v1")

    (path,) = tmp_path.glob("??/*.json")
    entry = json.loads(path.read_text())
    assert entry["reply"] == "ok" and entry["tag"] == "icl-v1" and entry["model"] == "fake-model"
    assert entry["messages"][0]["content"][1]["image_url"].keys() == {"sha256"}
    text = path.read_text()
    assert "s3cret-pw" not in text and "alice" not in text and "127.0.0.1" not in text
    assert not list(tmp_path.rglob("*.tmp"))


def test_unreadable_entry_is_asked_again_and_replaced(server, make_client, tmp_path, caplog):
    cache = ResponseCache(tmp_path)
    key = cache_key("fake-model", ask("Q"), make_client().generation_params, "")
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text('{"reply": "trunc')

    assert CachedChatClient(make_client(), cache).complete(ask("Q")) == "ok"
    assert server.calls == 1 and "unreadable cache entry" in caplog.text
    assert cache.get(key) == "ok"


def test_cached_reply_that_fails_validation_is_refetched(server, make_client, tmp_path):
    cache = ResponseCache(tmp_path)
    CachedChatClient(make_client(), cache).complete(ask("Q"))
    server.responder = lambda body: "[1]"

    def must_be_list(text: str) -> None:
        if not text.startswith("["):
            raise ValueError("not a list")

    assert CachedChatClient(make_client(), cache).complete(ask("Q"), validate=must_be_list) == "[1]"
    assert server.calls == 2


def test_malformed_replies_are_never_cached(server, make_client, tmp_path):
    server.enqueue(*[Raw(b"garbage")] * 3)
    with pytest.raises(LLMError):
        CachedChatClient(make_client(max_retries=2), ResponseCache(tmp_path)).complete(ask("Q"))
    assert len(ResponseCache(tmp_path)) == 0


def test_vision_request_is_cached_by_image_content(server, make_client, tmp_path):
    """The in-context baseline's request (example image + test image) costs nothing on a re-run."""
    example, test = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    server.responder = lambda body: "<think>two images</think><answer>yes</answer>"

    def icl(test_image: np.ndarray) -> list[dict]:
        parts = [text_part("Case:"), image_part(example), text_part("Test:"), image_part(test_image)]
        return [{"role": "system", "content": "Answer."}, {"role": "user", "content": parts}]

    first = CachedChatClient(make_client(), ResponseCache(tmp_path)).complete(icl(test), tag="icl-v1")
    rerun = CachedChatClient(make_client(), ResponseCache(tmp_path))
    assert rerun.complete(icl(test.copy()), tag="icl-v1") == first
    assert server.calls == 1 and len(server.requests[0].image_urls()) == 2
    rerun.complete(icl(np.full((8, 8, 3), 201, np.uint8)), tag="icl-v1")  # other pixels: a new request
    assert server.calls == 2
