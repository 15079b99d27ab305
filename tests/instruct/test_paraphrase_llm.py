"""Paraphrases through an OpenAI-compatible endpoint: a real loopback server, the client, the cache."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from models.instruct.paraphrase import PROMPT_VERSION, paraphrase_subquery, rejection_reason
from models.llm import (
    CachedChatClient,
    ChatClient,
    ChatEndpointConfig,
    LLMBudgetExceeded,
    LLMError,
    ResponseCache,
)
from tests.fakes.openai_server import FakeOpenAIServer, Raw, Reply, Status

API_KEY = "sk-paraphrase-5e1d-DO-NOT-LEAK"
TEXT = "How many washers are in the bag?"
INVARIANTS = ["washers", "bag"]
GOOD = [
    "How many washers can you see in the bag?",
    "What is the number of washers in the bag?",
    "Count the washers in the bag. How many are there?",
    "In the bag, how many washers are there?",
    "How many washers does the bag contain?",
    "Tell me how many washers are inside the bag.",
    "What is the count of washers in the bag?",
    "How many washers are present in the bag?",
    "Could you count the washers in the bag?",
    "How many washers lie in the bag?",
    "Please state how many washers the bag holds.",
    "Looking at the bag, how many washers are there?",
]
BAD = [
    TEXT,  # the original
    "how many washers can you see in the bag",  # a duplicate
    "How many nuts are in the bag?",  # lost an object
    "Are there 2 washers in the bag?",  # added a number
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def make_client(server: FakeOpenAIServer, tmp_path) -> Iterator[Callable[..., CachedChatClient]]:
    made: list[CachedChatClient] = []

    def make(**overrides: object) -> CachedChatClient:
        settings = {
            "base_url": server.base_url,
            "model": "para-model",
            "api_key": API_KEY,
            "timeout_s": 2.0,
            "max_retries": 2,
            "backoff_base": 0.001,
            "backoff_max": 0.05,
        } | overrides
        client = CachedChatClient(
            ChatClient(ChatEndpointConfig(**settings)), ResponseCache(tmp_path / "cache")
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def reply_with(first: list[str], later: list[str] | None = None) -> Callable[[dict], str]:
    """A responder: ``first`` for the first round, ``later`` once the prompt lists existing ones."""

    def respond(body: dict) -> str:
        user = body["messages"][-1]["content"]
        return json.dumps(later if later is not None and "exist already" in user else first)

    return respond


def test_paraphrases_arrive_through_the_client_and_are_validated(server, make_client):
    server.responder = reply_with(GOOD + BAD)
    client = make_client()

    paraphrases = paraphrase_subquery(TEXT, INVARIANTS, client=client)

    assert [p.text for p in paraphrases] == GOOD
    assert {(p.source, p.model) for p in paraphrases} == {("llm", "para-model")}
    assert all(rejection_reason(TEXT, p.text, INVARIANTS) is None for p in paraphrases)
    (request,) = server.requests
    prompt = request.json()["messages"][-1]["content"]
    assert TEXT in prompt and json.dumps(INVARIANTS) in prompt and "JSON array" in prompt
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


def test_short_list_is_asked_again_then_topped_up_offline(server, make_client):
    server.responder = reply_with(GOOD[:4] + BAD, GOOD[2:7])  # round 2 repeats two, adds three
    paraphrases = paraphrase_subquery(TEXT, INVARIANTS, n_min=10, client=make_client(), max_rounds=2)

    assert server.calls == 2
    assert "exist already" in server.requests[1].json()["messages"][-1]["content"]
    sources = [p.source for p in paraphrases]
    assert sources == ["llm"] * 7 + ["offline"] * 3
    assert [p.text for p in paraphrases[:7]] == GOOD[:7]
    assert all(p.model is None for p in paraphrases[7:])
    assert len({p.text.lower() for p in paraphrases}) == 10


def test_n_max_caps_a_long_llm_list(server, make_client):
    server.responder = reply_with(GOOD)
    assert len(paraphrase_subquery(TEXT, INVARIANTS, n_min=3, n_max=5, client=make_client())) == 5


def test_second_run_makes_no_request(server, make_client):
    server.responder = reply_with(GOOD[:5], GOOD[5:])
    first = paraphrase_subquery(TEXT, INVARIANTS, client=make_client())
    calls = server.calls
    assert calls == 2

    rerun_client = make_client()
    assert paraphrase_subquery(TEXT, INVARIANTS, client=rerun_client) == first
    assert server.calls == calls
    assert rerun_client.report() == {
        "cache_hits": 2,
        "cache_misses": 0,
        "requests": 0,
        "retries": 0,
        "failures": 0,
    }


def test_500_and_malformed_replies_are_retried(server, make_client):
    server.enqueue(Status(500), Raw(b"{not json"), Reply("Sorry, I can only answer in prose."))
    server.responder = reply_with(GOOD)
    client = make_client(max_retries=3)

    assert len(paraphrase_subquery(TEXT, INVARIANTS, client=client)) == len(GOOD)
    assert server.calls == 4
    assert client.report()["retries"] == 3


def test_failing_endpoint_is_reported_not_replaced_by_offline(server, make_client, caplog):
    for name in ("", "openai", "httpx2", "httpcore2"):
        caplog.set_level(logging.DEBUG, logger=name)
    server.fail_next(3)  # exactly the attempts one call makes
    with pytest.raises(LLMError, match=rf"para-model .*\[{PROMPT_VERSION}\]: gave up after 3 attempt") as err:
        paraphrase_subquery(TEXT, INVARIANTS, client=make_client())
    assert server.calls == 3

    server.responder = lambda body: "no list here, just prose"
    with pytest.raises(LLMError, match="malformed reply: reply holds no JSON array"):
        paraphrase_subquery("How many nuts?", ["nuts"], client=make_client())
    assert server.calls == 6
    assert API_KEY not in caplog.text + str(err.value)


def test_request_budget_stops_the_rounds(server, make_client, tmp_path):
    server.responder = reply_with(GOOD[:3], GOOD[3:6])
    with pytest.raises(LLMBudgetExceeded):
        paraphrase_subquery(TEXT, INVARIANTS, client=make_client(request_budget=1))
    assert server.calls == 1
    # The paid first round is cached: a re-run with a fresh budget of one needs only round two.
    paraphrases = paraphrase_subquery(TEXT, INVARIANTS, client=make_client(request_budget=1), max_rounds=2)
    assert server.calls == 2
    assert [p.source for p in paraphrases] == ["llm"] * 6 + ["offline"] * 4
    cache_text = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert PROMPT_VERSION in cache_text and API_KEY not in cache_text


def test_a_round_with_nothing_valid_is_not_answered_from_the_cache(server, make_client):
    """Each round's request differs (round number, rejects), so a cached bad reply is not replayed."""
    invalid = [b for b in BAD if b != "how many washers can you see in the bag"]
    server.responder = reply_with(invalid, invalid)
    paraphrases = paraphrase_subquery(TEXT, INVARIANTS, client=make_client(), max_rounds=3)

    assert server.calls == 3
    prompts = [r.json()["messages"][-1]["content"] for r in server.requests]
    assert len(set(prompts)) == 3 and "request 3" in prompts[2] and "rejected" in prompts[1]
    assert [p.source for p in paraphrases] == ["offline"] * 10
