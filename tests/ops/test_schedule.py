"""The retraining schedule: runs only the partitions whose inputs (data or code versions) changed."""

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    DataVersion,
    DefaultScheduleStatus,
    Definitions,
    Output,
    StaticPartitionsDefinition,
    asset,
    build_schedule_context,
    define_asset_job,
    instance_for_test,
    materialize,
)

from pipelines.schedules import DEFAULT_RETRAIN_CRON, build_retrain_schedule

PARTITIONS = StaticPartitionsDefinition(["a", "b"])


class UpConfig(Config):
    value: int = 1


@asset(partitions_def=PARTITIONS, code_version="1")
def cot_data(config: UpConfig) -> Output[int]:
    """Stands for the training data: its data version follows its content."""
    return Output(config.value, data_version=DataVersion(str(config.value)))


def _adapter(code_version: str):
    @asset(name="adapter", partitions_def=PARTITIONS, code_version=code_version)
    def adapter(context: AssetExecutionContext, cot_data: int) -> int:
        return cot_data + 1

    return adapter


def _definitions(code_version: str = "1") -> Definitions:
    adapter = _adapter(code_version)
    fine_tuning = define_asset_job("fine_tuning", selection=[adapter])
    return Definitions(assets=[cot_data, adapter], jobs=[fine_tuning],
                       schedules=[build_retrain_schedule(fine_tuning.name)])


def _tick(definitions: Definitions, instance):
    schedule = definitions.resolve_schedule_def("retrain_fine_tuning")
    context = build_schedule_context(instance=instance, repository_def=definitions.get_repository_def())
    return schedule.evaluate_tick(context)


def _materialize(definitions: Definitions, instance, selection: list[str], partition: str, value: int = 1) -> None:
    assets = [definitions.resolve_assets_def(key) for key in ("cot_data", "adapter")]
    result = materialize(
        assets, selection=selection, partition_key=partition, instance=instance,
        run_config={"ops": {"cot_data": {"config": {"value": value}}}} if "cot_data" in selection else None,
    )
    assert result.success


@pytest.fixture()
def instance():
    with instance_for_test() as inst:
        yield inst


def test_nothing_materialized_is_not_a_change(instance) -> None:
    result = _tick(_definitions(), instance)
    assert result.run_requests == []
    assert "No inputs of fine_tuning changed" in result.skip_message


def test_unchanged_inputs_skip_and_a_changed_upstream_requests_its_partition(instance) -> None:
    defs = _definitions()
    for partition in ("a", "b"):
        _materialize(defs, instance, ["cot_data", "adapter"], partition)
    assert _tick(defs, instance).run_requests == []

    _materialize(defs, instance, ["cot_data"], "a", value=1)  # same content again: no change
    assert _tick(defs, instance).run_requests == []

    _materialize(defs, instance, ["cot_data"], "a", value=2)
    requests = _tick(defs, instance).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [("a", "a")]
    assert requests[0].tags["logicls/changes"] == "adapter: cot_data has a new data version"

    _materialize(defs, instance, ["adapter"], "a")  # retrained: up to date again
    assert _tick(defs, instance).run_requests == []


def test_a_new_code_version_requests_every_materialized_partition(instance) -> None:
    _materialize(_definitions(), instance, ["cot_data", "adapter"], "a")
    requests = _tick(_definitions(code_version="2"), instance).run_requests
    assert [r.partition_key for r in requests] == ["a"]  # b was never materialized
    assert requests[0].tags["logicls/changes"] == "adapter: code version 1 -> 2"


def test_project_schedule_is_off_by_default_with_cron_from_env(monkeypatch) -> None:
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("LOGICLS_RETRAIN_CRON", "15 4 * * *")
    schedule = build_definitions().resolve_schedule_def("retrain_train_and_evaluate")
    assert schedule.cron_schedule == "15 4 * * *"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "train_and_evaluate"
    monkeypatch.delenv("LOGICLS_RETRAIN_CRON")
    assert build_definitions().resolve_schedule_def("retrain_train_and_evaluate").cron_schedule == DEFAULT_RETRAIN_CRON


def test_project_schedule_skips_after_a_split_with_unchanged_code(tmp_path, monkeypatch, instance) -> None:
    from pipelines.definitions import build_definitions
    from tests.loco_tree import TreeSpec, build_tree

    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a"], single={"a": 5}))
    monkeypatch.setenv("LOGICLS_DATA_ROOT", str(root))
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "storage"))
    defs = build_definitions()
    job = defs.resolve_job_def("refresh_from_split")
    split_only = [AssetKey("loco_fc_split")]  # the later stages need models this test does not bring
    assert job.execute_in_process(partition_key="pushpins", instance=instance, asset_selection=split_only).success
    schedule = defs.resolve_schedule_def("retrain_train_and_evaluate")
    context = build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
    assert schedule.evaluate_tick(context).run_requests == []
