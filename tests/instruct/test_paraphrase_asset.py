"""`subquery_paraphrases` materialized offline and against a loopback OpenAI-protocol endpoint."""

from __future__ import annotations

import json
import logging
import re

import pandas as pd
import pytest
from dagster import DagsterEventType, EnvVar, materialize
from dagster._core.test_utils import instance_for_test

import resources.retries
from assets.instruction_data import subquery_paraphrases
from models.instruct.paraphrase import offline_paraphrases
from resources.llm import ChatEndpoint, chat_endpoint_from_env
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource
from tests.fakes.openai_server import FakeOpenAIServer, Raw, Status

API_KEY = "sk-asset-test-9f3c-DO-NOT-LEAK"


def _responder(body: dict) -> str:
    """Answers like a good paraphrasing LLM: valid paraphrases of the question it was sent."""
    user = body["messages"][-1]["content"]
    text = re.search(r"paraphrases of this question:\n(.*?)\n\nRules:", user, re.S)[1]
    invariants = json.loads(re.search(r"word for word \(letter case may change\): (\[.*?\])\.", user)[1])
    return json.dumps(offline_paraphrases(text, invariants, 14, seed=7))


def _materialize(tmp_path, endpoint: ChatEndpoint, step_retries: int = 2, **kwargs):
    return materialize(
        [subquery_paraphrases],
        partition_key="pushpins",
        resources={"io_manager": ParquetIOManager(storage=StorageResource(root=str(tmp_path / "storage"))),
                   "paraphraser": endpoint},
        run_config={"ops": {"subquery_paraphrases": {"config": {"endpoint_retries": step_retries}}}},
        **kwargs,
    )


def _step_events(result, kind: DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == kind]


def test_offline_paraphrases(tmp_path) -> None:
    result = _materialize(tmp_path, ChatEndpoint(cache_dir=str(tmp_path / "cache")))
    assert result.success
    table = pd.read_parquet(tmp_path / "storage/subquery_paraphrases/pushpins.parquet")
    counts = table[table["paraphrase_source"] != "original"].groupby("subquery_id").size()
    assert set(counts.index) == {"row_1", "row_2", "row_3", "separators_complete"}
    assert counts.between(10, 20).all()
    assert set(table["paraphrase_source"]) == {"original", "offline"}
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_endpoint_retries_caches_and_keeps_the_key_secret(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("LOGICLS_TEST_PARAPHRASE_KEY", API_KEY)
    with FakeOpenAIServer(responder=_responder) as server:
        server.enqueue(Status(500), Raw(b"{not json"))
        endpoint = ChatEndpoint(base_url=server.base_url, model="para-llm",
                                api_key=EnvVar("LOGICLS_TEST_PARAPHRASE_KEY"),
                                cache_dir=str(tmp_path / "cache"), max_retries=3)
        endpoint = endpoint.model_copy(update={"timeout_s": 5.0})
        with caplog.at_level(logging.DEBUG):
            first = _materialize(tmp_path, endpoint)
            calls_after_first = server.calls
            second = _materialize(tmp_path, endpoint)
        assert first.success and second.success
        assert calls_after_first == 4 + 2  # 4 subqueries, plus a 500 and a malformed reply retried
        assert server.calls == calls_after_first  # the second run is served from the cache
        assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in server.requests)
    table = pd.read_parquet(tmp_path / "storage/subquery_paraphrases/pushpins.parquet")
    assert set(table["paraphrase_source"]) == {"original", "llm"} and set(table["model"].dropna()) == {"para-llm"}
    usage = first.asset_materializations_for_node("subquery_paraphrases")[0].metadata["llm_usage"].value
    assert usage["requests"] == 6 and usage["retries"] == 2
    reused = second.asset_materializations_for_node("subquery_paraphrases")[0].metadata["llm_usage"].value
    assert reused["requests"] == 0 and reused["cache_hits"] == 4
    assert API_KEY not in caplog.text
    for result in (first, second):
        assert API_KEY not in str([e.to_dict() if hasattr(e, "to_dict") else repr(e) for e in result.all_events])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_endpoint_that_keeps_failing_is_reported(tmp_path) -> None:
    with FakeOpenAIServer(responder=lambda body: "not a list at all") as server:
        endpoint = ChatEndpoint(base_url=server.base_url, model="bad-llm", cache_dir=str(tmp_path / "cache"),
                                max_retries=1, timeout_s=5.0)
        with pytest.raises(Exception, match=r"bad-llm") as failure:
            _materialize(tmp_path, endpoint, step_retries=0)
        assert server.calls == 2
    assert "attempt" in str(failure.value)


@pytest.fixture
def project_endpoint(monkeypatch, tmp_path):
    """The paraphraser as the project builds it from LOGICLS_PARAPHRASE_*, on a loopback server."""
    monkeypatch.setattr(resources.retries, "ENDPOINT_RETRY_WAIT_S", 0.0)
    monkeypatch.setenv("LOGICLS_PARAPHRASE_API_KEY", API_KEY)
    monkeypatch.setenv("LOGICLS_PARAPHRASE_MODEL", "para-llm")
    with FakeOpenAIServer(responder=_responder) as server:
        monkeypatch.setenv("LOGICLS_PARAPHRASE_BASE_URL", server.base_url)
        yield server, chat_endpoint_from_env("LOGICLS_PARAPHRASE", cache_dir=str(tmp_path / "cache"),
                                             max_retries=3, timeout_s=5.0)


def test_refused_key_fails_at_once_naming_the_variable(tmp_path, project_endpoint) -> None:
    server, endpoint = project_endpoint
    server.enqueue(*[Status(401, message=f"invalid key {API_KEY}")] * 10)
    result = _materialize(tmp_path, endpoint, step_retries=2, raise_on_error=False)
    assert not result.success
    assert server.calls == 1  # no client retry, no step retry
    assert not _step_events(result, DagsterEventType.STEP_UP_FOR_RETRY)
    (failure,) = _step_events(result, DagsterEventType.STEP_FAILURE)
    error = failure.step_failure_data.error.to_string()
    assert "HTTP 401" in error and "set LOGICLS_PARAPHRASE_API_KEY to a valid key" in error
    assert API_KEY not in error


def test_outage_is_still_retried_by_the_step(tmp_path, project_endpoint) -> None:
    server, endpoint = project_endpoint
    server.enqueue(*[Status(503)] * 4)  # the client's four attempts of the first try
    result = _materialize(tmp_path, endpoint, step_retries=2)
    assert result.success
    assert len(_step_events(result, DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert server.calls == 4 + 4  # the outage, then the 4 subqueries on the retry


def test_a_key_echoed_in_successful_replies_is_stored_nowhere(tmp_path, project_endpoint) -> None:
    server, endpoint = project_endpoint

    def echo(body: dict) -> str:  # a hostile or buggy endpoint: every reply carries the caller's key
        first, *rest = json.loads(_responder(body))
        return json.dumps([f"{first} ({API_KEY})", *rest])

    server.responder = echo
    (tmp_path / "dagster_home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        result = _materialize(tmp_path, endpoint, instance=instance)
        assert result.success and server.calls == 4
        records = instance.get_records_for_run(result.run_id).records
        assert records and not any(API_KEY in r.event_log_entry.to_json() for r in records)
        materialization = instance.get_latest_materialization_event(subquery_paraphrases.key)
        assert API_KEY not in str(materialization.asset_materialization.metadata)
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]  # Parquet, response cache, run storage
    assert any(p.suffix == ".json" for p in stored)
    assert not [p.relative_to(tmp_path) for p in stored if API_KEY.encode() in p.read_bytes()]
    table = pd.read_parquet(tmp_path / "storage/subquery_paraphrases/pushpins.parquet")
    assert table["text"].str.endswith("(***)").any()  # the redacted reply is what was kept
