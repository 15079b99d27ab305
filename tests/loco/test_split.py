"""The LOCO FC re-split against the paper's Table I, on a tree with the real counts and defect types."""

from __future__ import annotations

import pandas as pd
import pytest

from models.loco import scan_loco_scenario
from models.split import SplitConfig, loco_fc_split, split_counts, table_one_row
from tests.loco_tree import LOGICAL_CLASSES, TABLE_I, TreeSpec, build_tree, real_sized_spec


@pytest.fixture(scope="module")
def real_sized_root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("loco")
    for scenario in TABLE_I:
        build_tree(root, real_sized_spec(scenario))
    return root


@pytest.mark.parametrize("scenario", sorted(TABLE_I))
def test_table_one_counts(real_sized_root, scenario: str) -> None:
    frame = loco_fc_split(scan_loco_scenario(real_sized_root, scenario), SplitConfig())
    got = table_one_row(frame)
    want = TABLE_I[scenario]
    assert got["train_normal"] == want["train_normal"]
    assert got["test_normal"] == want["test_normal"]
    assert got["test_multi"] == want["test_multi"]
    assert got["train_single"] + got["test_single"] == want["train_single"] + want["test_single"]
    single = frame[frame["n_defect_types"] == 1]
    for label, group in single.groupby(single["labels"].str[0]):
        n_train = int((group["split"] == "train").sum())
        assert abs(n_train - 0.8 * len(group)) <= 1, (label, n_train, len(group))
    assert set(frame["loco_folder"]) <= {"train/good", "test/good", "test/logical_anomalies"}
    assert not frame["image_id"].duplicated().any()
    assert set(single["labels"].str[0]) == set(LOGICAL_CLASSES[scenario])


def test_multi_anomaly_images_go_to_test_with_both_classes(real_sized_root) -> None:
    frame = loco_fc_split(scan_loco_scenario(real_sized_root, "screw_bag"), SplitConfig())
    multi = frame[frame["n_defect_types"] > 1]
    assert len(multi) == 24 and set(multi["split"]) == {"test"}
    assert {tuple(sorted(x)) for x in multi["labels"]} == {
        ("1_additional_nut", "1_missing_washer"), ("1_additional_washer", "1_missing_nut"),
        ("1_additional_long_screw", "1_missing_short_screw"), ("1_additional_short_screw", "1_missing_long_screw"),
    }


def test_split_is_seeded_and_stratified(tmp_path) -> None:
    spec = TreeSpec("pushpins", ["a", "b"], single={"a": 10, "b": 5})
    found = scan_loco_scenario(build_tree(tmp_path, spec), "pushpins")
    first = loco_fc_split(found, SplitConfig(seed=1))
    pd.testing.assert_frame_equal(first, loco_fc_split(found, SplitConfig(seed=1)))
    assert not first.equals(loco_fc_split(found, SplitConfig(seed=2)))
    counts = split_counts(first)
    assert counts.loc["a"].tolist() == [8, 2] and counts.loc["b"].tolist() == [4, 1]
    half = split_counts(loco_fc_split(found, SplitConfig(train_ratio=0.5)))
    assert half.loc["a"].tolist() == [5, 5]


def test_columns_and_types(tmp_path) -> None:
    spec = TreeSpec("pushpins", ["a"], single={"a": 3}, multi=[(("a",), 0)])
    frame = loco_fc_split(scan_loco_scenario(build_tree(tmp_path, spec), "pushpins"), SplitConfig())
    assert list(frame.columns) == [
        "image_id", "scenario", "split", "labels", "n_defect_types", "loco_folder", "image_path", "mask_paths",
        "width", "height",
    ]
    normal = frame[frame["loco_folder"] == "train/good"].iloc[0]
    assert list(normal["labels"]) == ["normal"] and list(normal["mask_paths"]) == []
    assert normal["image_id"] == "pushpins/train/good/000"
    anomalous = frame.set_index("image_id").loc["pushpins/test/logical_anomalies/002"]
    assert anomalous["mask_paths"][0].endswith("ground_truth/logical_anomalies/002/000.png")
    assert (anomalous["width"], anomalous["height"]) == (12, 8)


def test_a_class_of_one_or_two_images_reaches_the_test_set(tmp_path) -> None:
    """round(0.8 · 2) = 2 would put both images of a class in train: min_test_per_class keeps one for test."""
    spec = TreeSpec("pushpins", ["one", "two", "ten"], single={"one": 1, "two": 2, "ten": 10})
    found = scan_loco_scenario(build_tree(tmp_path, spec), "pushpins")
    counts = split_counts(loco_fc_split(found, SplitConfig()))
    assert counts.loc["two"].tolist() == [1, 1]
    assert counts.loc["one"].tolist() == [1, 0]  # its only image stays where the model can learn the class
    assert counts.loc["ten"].tolist() == [8, 2]  # the ratio decides when it leaves enough for test
    ratio_only = split_counts(loco_fc_split(found, SplitConfig(min_test_per_class=0)))
    assert ratio_only.loc["two"].tolist() == [2, 0]
    three = split_counts(loco_fc_split(found, SplitConfig(min_test_per_class=3)))
    assert three.loc["ten"].tolist() == [7, 3] and three.loc["two"].tolist() == [1, 1]


def test_a_scenario_ratio_gives_pushpins_table_one_row(real_sized_root) -> None:
    config = SplitConfig(scenario_train_ratios={"pushpins": 0.4})
    pushpins = table_one_row(loco_fc_split(scan_loco_scenario(real_sized_root, "pushpins"), config))
    assert (pushpins["train_single"], pushpins["test_single"]) == (32, 48)  # Table I's pushpins row
    screws = table_one_row(loco_fc_split(scan_loco_scenario(real_sized_root, "screw_bag"), config))
    assert screws == table_one_row(loco_fc_split(scan_loco_scenario(real_sized_root, "screw_bag"), SplitConfig()))
    assert config.ratio_for("screw_bag") == 0.8


@pytest.mark.parametrize("bad", [{"train_ratio": 1.5}, {"scenario_train_ratios": {"pushpins": -0.1}},
                                 {"min_test_per_class": -1}])
def test_split_settings_are_checked(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SplitConfig(**bad)


def test_the_counts_check_follows_the_scenario_ratio(tmp_path) -> None:
    from assets.split import split_checks

    spec = TreeSpec("pushpins", ["a", "b"], single={"a": 10, "b": 2})
    found = scan_loco_scenario(build_tree(tmp_path, spec), "pushpins")
    config = SplitConfig(scenario_train_ratios={"pushpins": 0.4})
    checks = {c.check_name: c for c in split_checks(loco_fc_split(found, config), found, config)}
    assert checks["split_counts"].passed
    wrong = {c.check_name: c for c in split_checks(loco_fc_split(found, SplitConfig()), found, config)}
    assert not wrong["split_counts"].passed
