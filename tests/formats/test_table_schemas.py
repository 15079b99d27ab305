"""Every table is written with its declared schema, so a table's partitions read together as one data set.

Before, types came from each partition's values: a column that was all ``None`` in one scenario (no
reply had a ``<think>``, no cut-paste edit, no LLM paraphrase) was stored as Arrow ``null``, and
``pyarrow.dataset`` refused to merge it with the scenario where it held text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from dagster import AssetKey, build_output_context
from upath import UPath

from models.envelope import format_target
from models.evaluation.metrics import CLASS_METRIC_COLUMNS, CONFUSION_COLUMNS, ROW_KEYS, TABLE_II_COUNTS
from models.evaluation.predict import (
    ABLATION_COLUMNS,
    PREDICTION_COLUMNS,
    build_questions,
    predict,
    select_examples,
)
from models.grounding.quality import GROUNDING_QUALITY_COLUMNS
from models.grounding.run import GROUNDING_COLUMNS
from models.instruct.augment import AUGMENT_COLUMNS, AugmentConfig, augment_split
from models.instruct.cot import COT_COLUMNS, CotConfig, augmented_records, build_cot, original_records
from models.instruct.paraphrase import PARAPHRASE_COLUMNS, paraphrase_subquery
from models.loco import scan_loco_scenario
from models.objects import objects_from_frame
from models.schemas import TABLE_SCHEMAS
from models.spec import format_answer, get_spec, inverse, paraphrase_invariants
from models.split import SPLIT_COLUMNS, SplitConfig, loco_fc_split
from models.synth import GeneratorConfig, ensure_generated
from models.vlm.resampling import DIFFICULTY_COLUMNS, PROBABILITY_COLUMNS
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource

COLUMN_CONSTANTS = {
    "loco_fc_split": SPLIT_COLUMNS,
    "grounding": GROUNDING_COLUMNS,
    "grounding_quality": GROUNDING_QUALITY_COLUMNS,
    "subquery_paraphrases": PARAPHRASE_COLUMNS,
    "augmented_images": AUGMENT_COLUMNS,
    "cot_dataset": COT_COLUMNS,
    "difficulty_scores": DIFFICULTY_COLUMNS,
    "resampling_probabilities": PROBABILITY_COLUMNS,
    "lac_predictions": PREDICTION_COLUMNS,
    "lac_ablation": ABLATION_COLUMNS,
    "lac_metrics": [*ROW_KEYS, *TABLE_II_COUNTS],
    "lac_class_metrics": CLASS_METRIC_COLUMNS,
    "lac_confusion": CONFUSION_COLUMNS,
}
TINY = GeneratorConfig(scale=0.1, train_good=2, validation_good=1, test_good=1, per_logical_class=1,
                       per_multi_combo=1, structural=1, seed=3)  # fmt: skip


def test_every_parquet_table_asset_declares_its_schema_beside_its_columns():
    from pipelines.definitions import defs

    tables = {key.path[-1] for spec in defs.resolve_all_asset_specs() if "parquet" in spec.kinds
              for key in [spec.key]}  # fmt: skip
    assert tables == set(TABLE_SCHEMAS) == set(COLUMN_CONSTANTS)
    for name, schema in TABLE_SCHEMAS.items():
        assert schema.names == list(COLUMN_CONSTANTS[name]), name


def _store(storage: Path, table: str, scenario: str, frame: pd.DataFrame) -> None:
    """Through the Parquet IO manager, as a materialization writes it."""
    manager = ParquetIOManager(storage=StorageResource(root=str(storage))).create_io_manager(None)
    context = build_output_context(asset_key=AssetKey(table))
    manager.dump_to_path(context, frame, UPath(storage / table / f"{scenario}.parquet"))


def _read_together(storage: Path, table: str) -> pa.Table:
    # The partition files, not the folder: augmented_images keeps its PNGs in <table>/<scenario>/.
    together = ds.dataset(sorted(map(str, (storage / table).glob("*.parquet"))), format="parquet").to_table()
    assert together.schema.remove_metadata() == TABLE_SCHEMAS[table], table
    return together


def _reply(spec, question, well_formed: bool) -> str:
    if not well_formed:
        return "?"  # no envelope and nothing to read: think, answer_text and answer_value are None
    value = inverse(spec, ["normal"]).answers[question.subquery_id]
    return format_target("looked", format_answer(spec.subquery(question.subquery_id), value))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The per-scenario tables of two scenarios whose content differs where it used to matter."""
    work = tmp_path_factory.mktemp("chain")
    storage = work / "storage"
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    contrast = {"pushpins": dict(edits=False, llm=False, well_formed=False, labelled=False),
                "screw_bag": dict(edits=True, llm=True, well_formed=True, labelled=True)}  # fmt: skip
    for scenario, how in contrast.items():
        spec = get_spec(scenario)
        root = ensure_generated(scenario, work / "generated", TINY)
        split = loco_fc_split(scan_loco_scenario(root, scenario), SplitConfig())
        train, test = split[split["split"] == "train"], split[split["split"] == "test"]
        objects = objects_from_frame(pd.read_parquet(work / "generated" / "annotations" / f"{scenario}.parquet"))
        config = AugmentConfig(paste=int(how["edits"]), remove=0, move=0, noise=1, style=0)
        augmented = augment_split(spec, train, objects, storage / "augmented_images" / scenario, config).table
        rows = []
        for sub in spec.subqueries[:2]:
            rows.append((scenario, sub.id, 0, sub.text, "original", None))
            found = paraphrase_subquery(sub.text, paraphrase_invariants(sub), 2, 3)
            rows += [(scenario, sub.id, i, p.text, "llm" if how["llm"] else p.source, "llm-1" if how["llm"] else None)
                     for i, p in enumerate(found, start=1)]  # fmt: skip
        paraphrases = pd.DataFrame(rows, columns=PARAPHRASE_COLUMNS)
        records = original_records(spec, train, objects) + augmented_records(spec, augmented)
        cot = build_cot(spec, records, {}, CotConfig()).table
        questions = build_questions(test, spec, select_examples(cot, spec, train["image_id"]))
        truth = dict(zip(test["image_id"], test["labels"], strict=True)) if how["labelled"] else None
        predictions = predict(spec, questions, lambda qs, how=how, spec=spec: [_reply(spec, q, how["well_formed"])
                                                                            for q in qs],
                              method="icl", model="m", true_labels=truth)  # fmt: skip
        for table, frame in (("loco_fc_split", split), ("augmented_images", augmented),
                             ("subquery_paraphrases", paraphrases), ("cot_dataset", cot),
                             ("lac_predictions", predictions)):  # fmt: skip
            tables.setdefault(table, {})[scenario] = frame
            _store(storage, table, scenario, frame)
    return storage, tables


def test_the_contrast_is_real(chain):
    _, tables = chain
    predictions = tables["lac_predictions"]
    assert predictions["pushpins"][["think", "answer_text", "answer_value", "true_labels"]].isna().all().all()
    assert predictions["screw_bag"][["think", "answer_text", "answer_value"]].notna().all().all()
    assert tables["augmented_images"]["pushpins"]["edited_label"].isna().all()
    assert tables["augmented_images"]["screw_bag"]["edited_label"].notna().any()
    assert tables["subquery_paraphrases"]["pushpins"]["model"].isna().all()


@pytest.mark.parametrize("table", ["loco_fc_split", "augmented_images", "subquery_paraphrases", "cot_dataset",
                                   "lac_predictions"])
def test_partitions_of_two_scenarios_read_as_one_data_set(chain, table):
    storage, tables = chain
    together = _read_together(storage, table)
    assert together.num_rows == sum(len(f) for f in tables[table].values())
    back = pd.read_parquet(storage / table / "screw_bag.parquet")
    assert list(back.columns) == list(tables[table]["screw_bag"].columns)


def _value(kind: pa.DataType):
    """A typical non-null value of an Arrow type."""
    if pa.types.is_list(kind):
        return [_value(kind.value_type)]
    if pa.types.is_struct(kind):
        return {field.name: _value(field.type) for field in kind}
    return {pa.string(): "x", pa.int64(): 1, pa.float64(): 0.5, pa.bool_(): True}[kind]


@pytest.mark.parametrize("table", sorted(TABLE_SCHEMAS))
def test_every_table_keeps_its_types_when_a_partition_is_all_missing(tmp_path, table):
    schema = TABLE_SCHEMAS[table]
    full = pd.DataFrame([{f.name: _value(f.type) for f in schema}])
    empty = pd.DataFrame([{f.name: None for f in schema}])
    for scenario, frame in (("breakfast_box", empty), ("pushpins", full)):  # the all-missing one is read first
        _store(tmp_path, table, scenario, frame)
    assert _read_together(tmp_path, table).num_rows == 2


def test_undeclared_columns_keep_inferred_types():
    from models.tables import arrow_table

    frame = pd.DataFrame({"model": ["m"], "method": ["icl"], "configuration": [None], "pushpins/binary_f1": [50.0],
                          "scenarios": [1], "images": [np.int64(4)]})  # fmt: skip
    table = arrow_table(frame, TABLE_SCHEMAS["lac_metrics"])
    assert table.schema.field("pushpins/binary_f1").type == pa.float64()
    assert table.schema.field("configuration").type == pa.string()
    assert table.column_names == list(frame.columns)
