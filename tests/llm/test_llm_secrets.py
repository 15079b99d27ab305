"""The API key is sent as a Bearer header and appears nowhere else: logs, errors, reprs, files."""

from __future__ import annotations

import logging
import traceback

import pytest

from models.llm import CachedChatClient, LLMError, ResponseCache, redact
from tests.fakes.openai_server import Raw, Reply, Status
from tests.llm.conftest import API_KEY

LOGGERS = ["", "models", "openai", "httpx", "httpx2", "httpcore", "httpcore2"]


def test_key_appears_in_no_log_error_repr_or_cache_file(server, make_client, tmp_path, caplog):
    # A hostile endpoint that echoes the key in its error bodies and replies must not make us leak it.
    server.enqueue(
        Status(500, message=f"bad key {API_KEY}"),
        Raw(f"garbage {API_KEY}".encode()),
        Reply(None),
    )
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    client = make_client(max_retries=3)
    cached = CachedChatClient(client, ResponseCache(tmp_path))

    cached.complete([{"role": "user", "content": "How many washers?"}], tag="v1")
    errors = []
    for behaviour in (Status(503, message=API_KEY), Status(400, message=API_KEY), Status(401)):
        server.enqueue(*[behaviour] * 4)
        with pytest.raises(LLMError) as caught:
            cached.complete([{"role": "user", "content": f"Q {behaviour.code}"}])
        errors.append(caught.value)

    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in server.requests)
    assert any(r.levelno == logging.DEBUG and r.name.startswith(("openai", "http")) for r in caplog.records)
    assert API_KEY not in caplog.text
    for error in errors:
        assert API_KEY not in str(error) and API_KEY not in repr(error)
        assert API_KEY not in "".join(traceback.format_exception(error))  # chained errors included
    assert "***" in str(errors[1])  # the echoed key was scrubbed from the 400's excerpt
    assert API_KEY not in repr(client) + repr(cached) + repr(client.config)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and not any(API_KEY in p.read_text() for p in files)


def test_a_key_echoed_in_a_successful_reply_is_redacted_before_anyone_sees_it(server, make_client, tmp_path):
    server.responder = lambda body: f'["Your key is {API_KEY}", "fine"]'
    seen = []
    cached = CachedChatClient(make_client(), ResponseCache(tmp_path))

    reply = cached.complete([{"role": "user", "content": "Paraphrase"}], tag="v1", validate=seen.append)
    assert reply == '["Your key is ***", "fine"]' and seen == [reply]  # validated as it is stored
    assert cached.complete([{"role": "user", "content": "Paraphrase"}], tag="v1") == reply  # from the cache
    (entry,) = tmp_path.rglob("*.json")
    assert API_KEY not in entry.read_text() and "Your key is ***" in entry.read_text()


def test_redact_leaves_placeholder_keys_alone():
    assert redact(f"a {API_KEY} b {API_KEY}", API_KEY) == "a *** b ***"
    assert redact("EMPTY replies stay EMPTY", "EMPTY") == "EMPTY replies stay EMPTY"  # vLLM's placeholder
    assert redact("text", "") == "text"
