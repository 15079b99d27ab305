"""The CoT data set: boxes cited in the image's pixel range, answers that parse back, ablations,
determinism, the flagged-row policy, in-context examples and the LLaMA-Factory export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from models.instruct.cot import (
    CotConfig,
    ImageRecord,
    answer_agreement,
    build_cot,
    llamafactory_dataset_info,
    original_records,
    unparseable_answers,
    write_jsonl,
)
from models.instruct.reasoning import think
from models.spec import get_spec, parse_answer
from models.vlm.prompt import IMAGE_PLACEHOLDER, SYSTEM_PROMPT, sharegpt_messages
from tests.instruct.instruct_helpers import scene

BOX = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")
SCENES = {  # scenario → (seed, defects) of the images of a small training split
    "pushpins": [(0, ()), (1, ()), (2, ()), (3, ("missing_pushpin",)), (4, ("1_additional_pushpin",))],
    "splicing_connectors": [(0, ()), (1, ()), (2, ("cable_cut",))],
}


def _train(scenario: str, tmp_path) -> tuple[pd.DataFrame, dict]:
    """A training split of generated scenes written as PNGs, and their annotations as grounding."""
    import cv2

    rows, objects = [], {}
    for seed, defects in SCENES[scenario]:
        drawn = scene(scenario, seed, defects)
        image_id = f"{scenario}/train/good/{seed:03d}"
        path = tmp_path / f"{seed:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(drawn.image, cv2.COLOR_RGB2BGR))
        rows.append({"image_id": image_id, "image_path": str(path), "labels": list(defects) or ["normal"]})
        objects[image_id] = list(drawn.objects)
    return pd.DataFrame(rows), objects


def _build(scenario: str, tmp_path, **config) -> tuple[pd.DataFrame, list[ImageRecord]]:
    train, objects = _train(scenario, tmp_path)
    records = original_records(get_spec(scenario), train, objects)
    return build_cot(get_spec(scenario), records, {}, CotConfig(**config)).table, records


def test_rows_cite_boxes_inside_the_image_and_answers_parse_back(tmp_path) -> None:
    table, records = _build("pushpins", tmp_path)
    assert len(table) == 5 * 4 and table["sample_id"].is_unique
    height, width = scene("pushpins").image.shape[:2]
    spec = get_spec("pushpins")
    for row in table.itertuples():
        assert row.target == f"<think>{row.think}</think><answer>{row.answer}</answer>"
        for x0, y0, x1, y1 in (tuple(map(int, m)) for m in BOX.findall(row.think)):
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert parse_answer(spec.subquery(row.subquery_id), row.target).value == json.loads(row.answer_value)
    assert unparseable_answers(spec, table) == []
    truth = {r.image_id: r.answers for r in records}
    assert answer_agreement(table, truth).all()


def test_grid_reasoning_counts_the_row_it_answers(tmp_path) -> None:
    table, _ = _build("pushpins", tmp_path)
    for row in table[table["subquery_id"].str.startswith("row_")].itertuples():
        cells = json.loads(row.answer_value)
        assert f"there are {sum(cells)} yellow pushpin" in row.think
        assert len(BOX.findall(row.think)) == sum(cells) + 1  # the pins and the box
        assert row.think.endswith(f"The distribution is {row.answer}.")


def test_ablation_switches(tmp_path) -> None:
    boxes, _ = _build("splicing_connectors", tmp_path)
    plain, _ = _build("splicing_connectors", tmp_path, reasoning="no_boxes")
    bare, _ = _build("splicing_connectors", tmp_path, reasoning="answer_only")
    assert boxes["think"].str.contains(r"\[\d+,\d+,\d+,\d+\]").any()
    assert boxes["think"].str.contains(r"runs from position \(\d+, \d+\) to \(\d+, \d+\)").any()
    assert not plain["think"].str.contains(r"\[\d+,\d+,\d+,\d+\]|\(\d+, \d+\)").any()
    assert (plain["think"].str.len() > 0).all() and (plain["answer"] == boxes["answer"]).all()
    assert (bare["think"] == "").all()
    assert (bare["target"] == "<answer>" + bare["answer"] + "</answer>").all()
    assert (bare["question"] == boxes["question"]).all()


def test_deterministic_for_a_seed_and_questions_drawn_from_the_paraphrases(tmp_path) -> None:
    train, objects = _train("pushpins", tmp_path)
    spec = get_spec("pushpins")
    records = original_records(spec, train, objects)
    questions = {s.id: [s.text] + [f"{s.text} (variant {k})" for k in range(1, 15)] for s in spec.subqueries}
    first = build_cot(spec, records, questions, CotConfig(seed=0)).table
    again = build_cot(spec, records, questions, CotConfig(seed=0)).table
    other = build_cot(spec, records, questions, CotConfig(seed=1)).table
    pd.testing.assert_frame_equal(first, again)
    assert (first["question_id"] != other["question_id"]).any()
    assert first["question_id"].nunique() > 3
    for row in first.itertuples():
        assert row.question == questions[row.subquery_id][row.question_id]


def _contradicted(records: list[ImageRecord]) -> list[ImageRecord]:
    """The first normal pushpin image with one pin missing from its grounding: 14 pins on a normal label."""
    spec = get_spec("pushpins")
    normal = next(r for r in records if r.labels == ("normal",))
    pin = next(i for i, o in enumerate(normal.objects) if o.label == "pushpin")
    objects = normal.objects[:pin] + normal.objects[pin + 1 :]
    broken = original_records(spec, pd.DataFrame([{"image_id": normal.image_id, "image_path": normal.image_path,
                                                   "labels": ["normal"]}]), {normal.image_id: objects})[0]
    assert broken.flagged and "h gives" in broken.contradictions[-1]
    return [broken if r.image_id == normal.image_id else r for r in records]


def test_flagged_rows_are_dropped_by_default(tmp_path) -> None:
    _, records = _build("pushpins", tmp_path)
    records = _contradicted(records)
    build = build_cot(get_spec("pushpins"), records, {}, CotConfig())
    assert build.flagged_rows == 4 and build.flagged_rate == pytest.approx(4 / 20)
    assert len(build.table) == 16 and not build.table["flagged"].any()
    assert len(build.flagged_images) == 1


def test_keep_label_answer_keeps_flagged_rows_with_consistent_reasoning(tmp_path) -> None:
    _, records = _build("pushpins", tmp_path)
    records = _contradicted(records)
    table = build_cot(get_spec("pushpins"), records, {}, CotConfig(policy="keep_label_answer")).table
    flagged = table[table["flagged"]]
    assert len(table) == 20 and len(flagged) == 4
    assert (flagged["answer"].isin(["[1, 1, 1, 1, 1]", "Yes"])).all()  # the normal label's answers
    assert flagged["flag_reason"].str.contains("objects give").all()
    broken = next(r for r in records if r.flagged)
    for row in flagged.itertuples():
        measured = broken.measured.get(row.subquery_id)
        if measured is not None and measured != json.loads(row.answer_value):
            assert not BOX.search(row.think) and "there are" not in row.think  # nothing that contradicts
        elif measured is not None:
            assert BOX.search(row.think)  # agreeing evidence is still cited
    # A flagged image is never anyone's in-context example.
    assert not table["example_image_id"].isin([broken.image_id]).any()


def test_in_context_examples_are_other_normal_training_images(tmp_path) -> None:
    table, _ = _build("pushpins", tmp_path)
    normal = set(table.loc[table["labels"].map(lambda labels: list(labels) == ["normal"]), "image_id"])
    assert table["example_image_id"].notna().all()
    assert table["example_image_id"].isin(normal).all()
    assert (table["example_image_id"] != table["image_id"]).all()
    targets = table.set_index("sample_id")["target"]
    for row in table.itertuples():
        assert row.example_target == targets[f"{row.example_image_id}#{row.subquery_id}"]


def test_jsonl_is_llamafactory_sharegpt_with_the_fig3_prompt(tmp_path) -> None:
    table, _ = _build("pushpins", tmp_path)
    path = tmp_path / "out" / "pushpins.jsonl"
    export = write_jsonl(path, table)
    assert export.lines == len(table) and export.without_example == 0 and export.media_dir == tmp_path.resolve()
    lines = path.read_text().splitlines()
    assert len(lines) == len(table) and not list(path.parent.glob(".*tmp"))
    record = json.loads(lines[0])
    assert set(record) == {"messages", "images"}
    row = table.iloc[0]
    assert record["messages"] == sharegpt_messages(row["question"], row["example_target"], row["target"])
    assert record["messages"][0]["content"] == SYSTEM_PROMPT  # the trainer's, newline before the example
    user = record["messages"][1]["content"]
    assert user.count(IMAGE_PLACEHOLDER) == len(record["images"]) == 2 and "\n\n" not in user
    # Relative to the media folder (LLaMA-Factory's media_dir): the file and the images can move together.
    assert record["images"] == [Path(row["example_image_path"]).name, Path(row["image_path"]).name]
    info = llamafactory_dataset_info("logicls_pushpins", "pushpins.jsonl")["logicls_pushpins"]
    assert info["formatting"] == "sharegpt" and info["columns"] == {"messages": "messages", "images": "images"}


def test_jsonl_paths_follow_the_chosen_media_folder(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    table, _ = _build("pushpins", tmp_path / "images")
    write_jsonl(tmp_path / "a.jsonl", table, tmp_path)
    record = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert all(p.startswith("images/") for p in record["images"])
    with pytest.raises(ValueError, match="outside the JSONL's media folder"):
        write_jsonl(tmp_path / "b.jsonl", table, tmp_path / "elsewhere")
    lone = table.assign(example_target=None, example_image_path=None)
    assert write_jsonl(tmp_path / "c.jsonl", lone).without_example == len(table)  # the trainer needs an example


def test_unparseable_answers_are_reported(tmp_path) -> None:
    table, _ = _build("pushpins", tmp_path)
    spec = get_spec("pushpins")
    broken = table.copy()
    broken.loc[0, "answer"] = "some pins"
    broken.loc[1, "answer_value"] = json.dumps([2, 1, 1, 1, 1])
    assert len(unparseable_answers(spec, broken)) == 2


@pytest.mark.parametrize("scenario", ["screw_bag", "breakfast_box", "juice_bottle", "splicing_connectors"])
def test_every_subquery_gets_a_reasoning_that_ends_in_its_answer(scenario: str) -> None:
    from models.spec import format_answer, inverse

    spec, drawn = get_spec(scenario), scene(scenario)
    height, width = drawn.image.shape[:2]
    truth = inverse(spec, ["normal"], drawn.objects)
    assert truth.consistent
    boxes = {tuple(o.bbox) for o in drawn.objects}
    for sub in spec.subqueries:
        text = think(spec, sub, truth.answers[sub.id], drawn.objects)
        assert text.endswith(f"{format_answer(sub, truth.answers[sub.id])}.")
        for cited in BOX.findall(text):
            assert tuple(map(int, cited)) in boxes  # only grounded boxes are cited
        for x, y in re.findall(r"\((\d+), (\d+)\)", text):
            assert 0 <= int(x) < width and 0 <= int(y) < height


def test_boxes_are_cited_from_left_to_right(tmp_path) -> None:
    table, _ = _build("pushpins", tmp_path)
    for think_text in table.loc[table["subquery_id"] == "row_1", "think"]:
        lefts = [int(m[0]) for m in BOX.findall(think_text)[1:]]  # after the box itself
        assert lefts == sorted(lefts)


def test_the_drop_policy_reports_per_class_what_it_removed(tmp_path) -> None:
    _, records = _build("pushpins", tmp_path)
    records = _contradicted(records)
    removed = build_cot(get_spec("pushpins"), records, {}, CotConfig()).removed.set_index("class")
    assert removed.loc["normal"].tolist() == [3, 1, 1, pytest.approx(1 / 3)]
    assert removed.loc["missing_pushpin"].tolist() == [1, 0, 0, 0.0]
    assert set(removed.index) == {"normal", "missing_pushpin", "1_additional_pushpin"}
    kept = build_cot(get_spec("pushpins"), records, {}, CotConfig(policy="keep_label_answer")).removed
    assert kept["flagged"].sum() == 1 and kept["removed"].sum() == 0


def test_a_class_thinned_by_the_drop_policy_stops_the_chain(tmp_path) -> None:
    from assets.instruction_data import class_removal_check

    _, records = _build("pushpins", tmp_path)
    build = build_cot(get_spec("pushpins"), _contradicted(records), {}, CotConfig())  # 1 of 3 normal images
    check = class_removal_check(build, 0.2)
    assert not check.passed and check.metadata["classes_over_limit"].value == ["normal"]
    assert class_removal_check(build, 0.5).passed
