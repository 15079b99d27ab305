"""The in-context baseline over an OpenAI-compatible vision endpoint, against a loopback server: Fig. 3 messages
with both images inline, retries, the key kept secret, and a re-run answered from the cache."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, AssetSpec, DagsterEventType, EnvVar, Failure, materialize
from dagster._core.test_utils import instance_for_test

from assets.evaluation import lac_predictions
from assets.split import loco_fc_split
from models.atomic import write_parquet_atomic
from models.grounding import GROUNDING_COLUMNS
from models.spec import get_spec
from models.vlm.prompt import CASE_HEADER, INSTRUCTION, SYSTEM_PROMPT, TEST_HEADER
from resources.llm import ChatEndpoint, chat_endpoint_from_env
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.partitions import scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel
from tests.evaluation.helpers import cot_table, split_frame
from tests.fakes.openai_server import FakeOpenAIServer, Status

API_KEY = "sk-icl-test-5b1e-DO-NOT-LEAK"
SPEC = get_spec("pushpins")


def _responder(body: dict) -> str:
    """A vision model that sees one pushpin per cell and every separator."""
    question = body["messages"][1]["content"][0]["text"]
    answer = "Yes" if "separators" in question else "[1, 1, 1, 1, 1]"
    return f"<think>I look at the test image.</think><answer>{answer}</answer>"


def _run(storage: Path, root: Path, endpoint: ChatEndpoint, methods: list[str], config: dict | None = None,
         **kwargs):
    return materialize(
        [loco_fc_split, *(AssetSpec(AssetKey(key), partitions_def=scenario_partitions)
                          for key in ("cot_dataset", "grounding")), lac_predictions],
        partition_key="pushpins",
        resources={"storage": (store := StorageResource(root=str(storage))),
                   "io_manager": ParquetIOManager(storage=store),
                   "loco": LocoDataset(data_root=str(root), storage=store),
                   "vlm": VisionLanguageModel(storage=store), "icl_endpoint": endpoint},
        run_config={"ops": {"loco_fc_split": {"config": {"train_ratio": 0.5}},
                            "lac_predictions": {"config": {"methods": methods, **(config or {})}}}},
        **kwargs,
    )


@pytest.fixture
def storage(tmp_path, pushpins_root) -> Path:
    storage = tmp_path / "storage"
    write_parquet_atomic(cot_table(SPEC, split_frame(pushpins_root, "pushpins")),
                         storage / "cot_dataset" / "pushpins.parquet")
    # lac_predictions reads the grounding (for the grounded method, not asked here): nothing found
    write_parquet_atomic(pd.DataFrame(columns=GROUNDING_COLUMNS), storage / "grounding" / "pushpins.parquet")
    return storage


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def test_icl_endpoint_fig3_images_retries_cache_and_secret(storage, pushpins_root, monkeypatch, caplog) -> None:
    monkeypatch.setenv("LOGICLS_TEST_ICL_KEY", API_KEY)
    with FakeOpenAIServer(responder=_responder) as server:
        server.enqueue(Status(503))
        endpoint = ChatEndpoint(base_url=server.base_url, model="vision-llm", api_key=EnvVar("LOGICLS_TEST_ICL_KEY"),
                                cache_dir=str(storage / "cache" / "llm"), temperature=0.0, max_retries=2,
                                timeout_s=5.0)
        with caplog.at_level(logging.DEBUG):
            first = _run(storage, pushpins_root, endpoint, ["icl_api"])
            calls = server.calls
            second = _run(storage, pushpins_root, endpoint, ["icl_api"])
        assert first.success and second.success
        assert calls == 3 * 4 + 1  # 3 test images × 4 subqueries, plus the retried 503
        assert server.calls == calls  # the re-run was answered from the cache
        requests = [r for r in server.requests if r.json()["messages"]]
        assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in requests)
    table = pd.read_parquet(storage / "lac_predictions" / "pushpins.parquet")
    assert set(table["method"]) == {"icl_api"} and set(table["model"]) == {"vision-llm"}
    assert table["parseable"].all() and all(list(p) == ["normal"] for p in table["predicted_labels"])
    by_question = {(r.json()["messages"][1]["content"][0]["text"], r.image_urls()[1]) for r in requests}
    for row in table.itertuples():
        assert (f"{row.question}\n{CASE_HEADER}", f"data:image/png;base64,{_b64(row.image_path)}") in by_question
    body = requests[-1].json()
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT} and body["temperature"] == 0.0
    user = body["messages"][1]["content"]
    assert [p["type"] for p in user] == ["text", "image_url", "text", "image_url", "text"]
    assert user[1]["image_url"]["url"] == f"data:image/png;base64,{_b64(table['example_image_path'].iloc[0])}"
    assert INSTRUCTION in user[2]["text"] and TEST_HEADER in user[2]["text"]
    usage = first.asset_materializations_for_node("lac_predictions")[0].metadata["llm_usage"].value
    assert usage["requests"] == 13 and usage["retries"] == 1
    reused = second.asset_materializations_for_node("lac_predictions")[0].metadata["llm_usage"].value
    assert reused["requests"] == 0 and reused["cache_hits"] == 12
    assert API_KEY not in caplog.text
    for result in (first, second):
        assert API_KEY not in str([e.to_dict() if hasattr(e, "to_dict") else repr(e) for e in result.all_events])
    for path in storage.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_a_key_echoed_in_successful_replies_is_stored_nowhere(storage, pushpins_root, monkeypatch) -> None:
    monkeypatch.setenv("LOGICLS_TEST_ICL_KEY", API_KEY)
    home = storage.parent / "dagster_home"
    home.mkdir()
    with FakeOpenAIServer(responder=lambda body: _responder(body).replace("test image.", f"test image {API_KEY}.")) \
            as server, instance_for_test(temp_dir=str(home)) as instance:
        endpoint = ChatEndpoint(base_url=server.base_url, model="vision-llm", api_key=EnvVar("LOGICLS_TEST_ICL_KEY"),
                                cache_dir=str(storage / "cache" / "llm"), temperature=0.0, timeout_s=5.0)
        result = _run(storage, pushpins_root, endpoint, ["icl_api"], instance=instance)
        assert result.success and server.calls == 12
        records = instance.get_records_for_run(result.run_id).records
        leaked = [r.event_log_entry.dagster_event_type for r in records if API_KEY in r.event_log_entry.to_json()]
        assert records and not leaked
    stored = [p for p in storage.parent.rglob("*") if p.is_file()]  # Parquet, response cache, run storage
    assert not [p.relative_to(storage.parent) for p in stored if API_KEY.encode() in p.read_bytes()]
    table = pd.read_parquet(storage / "lac_predictions" / "pushpins.parquet")
    assert table["raw_output"].str.contains("test image ***.", regex=False).all()


def test_refused_key_fails_at_once_naming_the_variable(storage, pushpins_root, monkeypatch) -> None:
    monkeypatch.setenv("LOGICLS_ICL_API_KEY", API_KEY)
    monkeypatch.setenv("LOGICLS_ICL_MODEL", "vision-llm")
    with FakeOpenAIServer(responder=_responder) as server:
        monkeypatch.setenv("LOGICLS_ICL_BASE_URL", server.base_url)
        server.enqueue(*[Status(401)] * 10)
        endpoint = chat_endpoint_from_env("LOGICLS_ICL", cache_dir=str(storage / "cache" / "llm"), max_retries=2,
                                          timeout_s=5.0)
        result = _run(storage, pushpins_root, endpoint, ["icl_api"],
                      {"endpoint_retries": 2, "api_concurrency": 1}, raise_on_error=False)
        assert server.calls == 1  # no client retry, no step retry, no next question
    assert not result.success
    kinds = [e.event_type for e in result.all_events if e.step_key == "lac_predictions"]
    assert DagsterEventType.STEP_FAILURE in kinds and DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    error = result.failure_data_for_node("lac_predictions").error.to_string()
    assert "HTTP 401" in error and "set LOGICLS_ICL_API_KEY to a valid key" in error and API_KEY not in error


def test_icl_api_alone_without_endpoint_is_an_error(storage, pushpins_root) -> None:
    with pytest.raises(Failure, match="no icl_endpoint is configured"):
        _run(storage, pushpins_root, ChatEndpoint(cache_dir=str(storage / "cache")), ["icl_api"])


def test_finetuned_without_adapter_is_an_error(storage, pushpins_root) -> None:
    with pytest.raises(Failure, match=r"no fine-tuned weights \(LoRA adapter or full checkpoint\) at "
                                      r".*vlm_adapter/pushpins/final"):
        _run(storage, pushpins_root, ChatEndpoint(cache_dir=str(storage / "cache")), ["finetuned"])
