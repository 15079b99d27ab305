"""The evaluation assets in-process on small LOCO trees: lac_predictions with the tiny model (fine-tuned adapter and
in-context base) and the grounded method for every scenario, lac_metrics over them (recomputable with
scikit-learn), lac_report."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, AssetSpec, materialize
from sklearn.metrics import f1_score

from assets.ablation import lac_ablation
from assets.evaluation import lac_metrics, lac_predictions, lac_report
from assets.split import loco_fc_split
from models.atomic import write_parquet_atomic
from models.objects import object_from_mask, objects_to_frame
from models.spec import get_spec
from models.storage import StorageLayout
from resources.llm import ChatEndpoint
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.partitions import SCENARIO_SPECS, scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel
from tests.evaluation.helpers import cot_table, small_tree, split_frame

SCENARIOS = list(SCENARIO_SPECS)
METRICS_ASSETS = [lac_predictions.to_source_asset(), lac_ablation.to_source_asset(), lac_metrics]
MAX_NEW_TOKENS = 12


def _source(key: str) -> AssetSpec:
    return AssetSpec(key=AssetKey(key), partitions_def=scenario_partitions)


def _resources(storage: Path, root: Path) -> dict[str, object]:
    store = StorageResource(root=str(storage))
    return {
        "storage": store,
        "io_manager": ParquetIOManager(storage=store),
        "loco": LocoDataset(data_root=str(root), storage=store),
        "vlm": VisionLanguageModel(storage=store),
        "icl_endpoint": ChatEndpoint(cache_dir=str(storage / "cache")),
    }


def _grounding(split: pd.DataFrame, spec) -> pd.DataFrame:
    """One box per image labelled with the scenario's first object, in the grounding table's schema."""
    frames = []
    for image in split.itertuples(index=False):
        mask = np.zeros((image.height, image.width), dtype=bool)
        mask[5:30, 8:40] = True
        frames.append(objects_to_frame(image.image_id, [object_from_mask(mask, spec.objects[0].name, 0.9)]))
    return pd.concat(frames, ignore_index=True).assign(backend="test", width=64, height=48)


@pytest.fixture(scope="module")
def chain(tmp_path_factory, random_adapter_dir) -> dict[str, object]:
    """Every scenario: split materialized, cot_dataset and grounding written, adapter in place, predictions run."""
    tmp = tmp_path_factory.mktemp("chain")
    root, storage = tmp / "loco", tmp / "storage"
    results = {}
    for scenario in SCENARIOS:
        spec = get_spec(scenario)
        small_tree(root, scenario, singles_per_class=2)
        split = split_frame(root, scenario)
        write_parquet_atomic(cot_table(spec, split), storage / "cot_dataset" / f"{scenario}.parquet")
        write_parquet_atomic(_grounding(split, spec), storage / "grounding" / f"{scenario}.parquet")
        shutil.copytree(random_adapter_dir, StorageLayout(storage).adapter_dir(scenario))
        results[scenario] = materialize(
            [loco_fc_split, _source("cot_dataset"), _source("grounding"), lac_predictions],
            partition_key=scenario,
            resources=_resources(storage, root),
            run_config={"ops": {"loco_fc_split": {"config": {"train_ratio": 0.5}},
                                "lac_predictions": {"config": {"max_new_tokens": MAX_NEW_TOKENS,
                                                               "batch_size": 6}}}},
        )
    return {"root": root, "storage": storage, "results": results}


def _predictions(storage: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((storage / "lac_predictions").glob("*.parquet"))],
                     ignore_index=True)


def test_lac_predictions_rows_and_metadata(chain) -> None:
    storage = chain["storage"]
    for scenario, result in chain["results"].items():
        assert result.success
        table = pd.read_parquet(storage / "lac_predictions" / f"{scenario}.parquet")
        n_sub = len(get_spec(scenario).subqueries)
        assert len(table) == 3 * n_sub * 3  # 3 test images (1 good, 2 anomalies), both local methods and grounded
        assert set(table["method"]) == {"finetuned", "icl", "grounded"}
        assert set(table["model"]) == {"tiny-qwen2.5-vl-seed0", "test"}  # grounded: the grounding backend
        asked = table[table["method"] != "grounded"]
        assert set(asked["example_image_id"]) == {f"{scenario}/train/good/000"}
        assert asked["measured"].isna().all()
        grounded = table[table["method"] == "grounded"]
        assert grounded["example_image_id"].isna().all() and grounded["measured"].map(type).eq(bool).all()
        assert grounded["parseable"].all()
        meta = result.asset_materializations_for_node("lac_predictions")[0].metadata
        assert meta["methods_skipped"].value == ["icl_api"] and meta["max_new_tokens"].value == MAX_NEW_TOKENS
        assert "| finetuned |" in meta["per_method"].value and "truth" in meta["predictions"].value
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["answers_parseable"].severity.value == "WARN"  # random tiny weights rarely parse
    pushpins = pd.read_parquet(storage / "lac_predictions" / "pushpins.parquet")
    by_method = pushpins.set_index(["method", "image_id", "subquery_id"])["raw_output"]
    assert (by_method["finetuned"] != by_method["icl"]).any()  # the adapter changes the answers


def test_lac_metrics_over_every_scenario_recomputable_with_sklearn(chain) -> None:
    storage = chain["storage"]
    result = materialize(METRICS_ASSETS, resources=_resources(storage, chain["root"]))
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["metrics_cover_every_scenario"].passed
    table = pd.read_parquet(storage / "lac_metrics.parquet")
    assert table[["method", "configuration"]].values.tolist() == [["grounded", "default"], ["finetuned", "default"],
                                                                  ["icl", "default"]]
    assert (table["scenarios"] == 5).all()
    predictions = _predictions(storage)
    for row in table.to_dict("records"):
        images = predictions[predictions["method"] == row["method"]].drop_duplicates("image_id")
        binary, macro = [], []
        for scenario in SCENARIOS:
            part = images[images["scenario"] == scenario]
            true = [set(t) - {"normal"} for t in part["true_labels"]]
            pred = [set(p) - {"normal"} for p in part["predicted_labels"]]
            binary.append(f1_score([bool(t) for t in true], [bool(p) for p in pred], zero_division=0))
            used = sorted(set().union(*true, *pred))
            macro.append(f1_score(
                [[c in t for c in used] for t in true], [[c in p for c in used] for p in pred],
                average="macro", zero_division=0) if used else 0.0)
            assert row[f"{scenario}/binary_f1"] == pytest.approx(100 * binary[-1])
            assert row[f"{scenario}/macro_f1"] == pytest.approx(100 * macro[-1])
        assert row["average/binary_f1"] == pytest.approx(100 * np.mean(binary))
        assert row["average/macro_f1"] == pytest.approx(100 * np.mean(macro))
    per_class = pd.read_parquet(storage / "lac_class_metrics.parquet")
    assert set(per_class["scenario"]) == set(SCENARIOS)
    assert len(per_class) == 3 * sum(len(s.classes) for s in SCENARIO_SPECS.values())
    confusion = pd.read_parquet(storage / "lac_confusion.parquet")
    assert confusion.groupby("method")["images"].sum().tolist() == [15, 15, 15]
    meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("lac_metrics")}
    assert "average/binary_f1" in meta["lac_metrics"]["table_ii"].value
    assert "data:image/png;base64," in meta["lac_metrics"]["plot"].value
    assert "RANDOM weights" in json.dumps(meta["lac_metrics"]["notes"].value)
    assert "false_alarm" in meta["lac_confusion"]["outcomes"].value


def test_lac_metrics_check_blocks_when_a_scenario_is_missing(chain, tmp_path) -> None:
    storage = tmp_path / "storage"
    (storage / "lac_predictions").mkdir(parents=True)
    for path in sorted((chain["storage"] / "lac_predictions").glob("*.parquet"))[1:]:
        shutil.copy(path, storage / "lac_predictions" / path.name)
    result = materialize(METRICS_ASSETS, resources=_resources(storage, chain["root"]),
                         raise_on_error=False)
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}["metrics_cover_every_scenario"]
    assert not result.success and not check.passed  # blocking: the run fails
    assert check.metadata["scenarios_without_predictions"].value == [SCENARIOS[0]]
    assert check.metadata["rows_missing_scenarios"].value["tiny-qwen2.5-vl-seed0 / icl"] == [SCENARIOS[0]]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.srcs, self.hrefs, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.srcs += [attrs["src"]] if "src" in attrs else []
        self.hrefs += [attrs["href"]] if "href" in attrs else []

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_lac_report_is_self_contained_and_covers_every_image_and_subquery(chain) -> None:
    storage, scenario = chain["storage"], "pushpins"
    result = materialize([lac_predictions.to_source_asset(), _source("grounding"), lac_report],
                         partition_key=scenario, resources=_resources(storage, chain["root"]))
    assert result.success
    path = StorageLayout(storage).report(scenario)
    meta = result.asset_materializations_for_node("lac_report")[0].metadata
    assert meta["report"].value == str(path) and meta["report_url"].value.startswith("file://")
    parser = _Collector()
    parser.feed(path.read_text())
    text = " ".join(parser.text)
    predictions = pd.read_parquet(storage / "lac_predictions" / f"{scenario}.parquet")
    for image_id in predictions["image_id"].unique():
        assert image_id.replace("/", "__") in parser.ids
    for sub in get_spec(scenario).subqueries:
        assert sub.id in text and " ".join(sub.text.split()) in " ".join(text.split())
    assert len(parser.srcs) == 3 + 1 and all(s.startswith("data:image/jpeg;base64,") for s in parser.srcs)
    assert all(h.startswith("#") for h in parser.hrefs)  # nothing outside the page
    assert "RANDOM weights" in text and "Truth:" in text
