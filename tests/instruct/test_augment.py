"""Cut-paste, noise and style augmentation: the edit shows in the pixels and the labels follow h."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import cv2
import numpy as np
import pandas as pd
import pytest

from models.instruct import cutpaste
from models.instruct.augment import (
    AugmentConfig,
    Parent,
    Rejected,
    augment_image,
    edit_object,
    editable_labels,
    h_disagreements,
    reground_agreement,
    relabel,
    valid_label_set,
)
from models.objects import object_from_mask, objects_from_json, objects_to_json
from models.spec import get_spec, measure
from tests.instruct.instruct_helpers import NUT_HUE, PIN_HUE, WASHER_HUE, count_saturated, parent

CONFIG = AugmentConfig()


def _edit(p: Parent, label: str, kind: str, seed: int = 0, allow_multi_anomaly: bool = False):
    """Edit the first ``label`` object of ``p`` and relabel the result through h."""
    spec = get_spec(p.image_id.split("/")[0])
    index = next(i for i, o in enumerate(p.objects) if o.label == label)
    image, objects, _ = edit_object(spec, p, index, kind, CONFIG, np.random.default_rng(seed))
    answers, labels, changed = relabel(spec, p, objects, label, allow_multi_anomaly)
    return image, objects, answers, labels, changed


def test_pasted_washer_is_a_third_washer_in_pixels_and_labels() -> None:
    p = parent("screw_bag")
    assert count_saturated(p.image, WASHER_HUE) == 2
    image, objects, answers, labels, changed = _edit(p, "washer", "paste")
    assert count_saturated(image, WASHER_HUE) == 3
    assert count_saturated(image, NUT_HUE) == 2
    assert sum(o.label == "washer" for o in objects) == 3
    assert answers["washers"] == 3 and labels == {"1_additional_washer"}
    assert changed == {"washers": {"before": 2, "after": 3}}


def test_removed_nut_is_gone_from_pixels_and_labels() -> None:
    p = parent("screw_bag", seed=1)
    image, objects, _, labels, _ = _edit(p, "nut", "remove")
    assert count_saturated(p.image, NUT_HUE) == 2 and count_saturated(image, NUT_HUE) == 1
    assert sum(o.label == "nut" for o in objects) == 1
    assert labels == {"1_missing_nut"}


def test_pasted_object_keeps_its_look_and_lies_on_free_surface() -> None:
    p = parent("screw_bag", seed=2)
    image, objects, *_ = _edit(p, "washer", "paste")
    new, source = objects[-1], next(o for o in p.objects if o.label == "washer")
    assert new.area == source.area
    others = np.zeros(new.mask().shape, bool)
    for o in p.objects:
        others |= o.mask()
    assert not (new.mask() & cutpaste.dilate(others, CONFIG.gap - 1)).any()
    # Poisson cloning keeps the object's colours (no washed-out ghost).
    assert np.abs(image[new.mask()].mean(0) - p.image[source.mask()].mean(0)).max() < 20


def test_pushpin_paste_and_remove_change_the_count_by_one() -> None:
    p = parent("pushpins")
    pasted, _, answers, labels, _ = _edit(p, "pushpin", "paste")
    assert count_saturated(pasted, PIN_HUE) == 16
    assert labels == {"1_additional_pushpin"}
    assert sum(map(sum, (answers["row_1"], answers["row_2"], answers["row_3"]))) == 16
    removed, _, answers, labels, _ = _edit(p, "pushpin", "remove")
    assert count_saturated(removed, PIN_HUE) == 14
    assert labels == {"missing_pushpin"}


def test_moving_a_pin_out_of_its_cell_changes_the_row_distribution() -> None:
    p = parent("pushpins", seed=3)
    for seed in range(10):  # a pin moved to another cell leaves one empty and crowds another: two classes
        image, objects, answers, labels, changed = _edit(p, "pushpin", "move", seed, allow_multi_anomaly=True)
        if labels != {"normal"}:
            break
    assert labels == {"1_additional_pushpin", "missing_pushpin"}
    assert changed and all(k.startswith("row_") for k in changed)
    assert sum(map(sum, (answers["row_1"], answers["row_2"], answers["row_3"]))) == 15
    assert count_saturated(image, PIN_HUE) == 15
    moved = next(o for o in objects if o.label == "pushpin" and "cell" not in o.attributes)
    assert moved.bbox != p.objects[next(i for i, o in enumerate(p.objects) if o.label == "pushpin")].bbox


def test_pins_never_land_on_a_separator() -> None:
    p = parent("pushpins", seed=4)
    box = next(o for o in p.objects if o.label == "box")
    x0, y0, x1, y1 = box.bbox
    cw, ch = (x1 - x0) / 5, (y1 - y0) / 3
    for seed in range(6):
        _, objects, *_ = _edit(p, "pushpin", "paste", seed)
        bx0, by0, bx1, by1 = objects[-1].bbox
        assert int((bx0 - x0) // cw) == int((bx1 - 1 - x0) // cw)  # one column
        assert int((by0 - y0) // ch) == int((by1 - 1 - y0) // ch)  # one row


def test_noise_and_style_keep_objects_answers_and_labels() -> None:
    p = parent("pushpins", defects=("missing_pushpin",))
    other = parent("pushpins", seed=5)
    config = AugmentConfig(paste=0, remove=0, move=0, noise=1, style=1)
    augs = augment_image(get_spec("pushpins"), p, config, lambda rng: (other.image_id, other.image))
    assert [a.kind for a in augs] == ["noise", "style"]
    for aug in augs:
        assert aug.labels == ["missing_pushpin"] and aug.answers == p.answers and aug.objects == p.objects
        assert not np.array_equal(aug.image, p.image) and aug.image.shape == p.image.shape
    assert augs[1].edit == {"style_image_id": other.image_id}


def test_reinhard_moves_colour_statistics_to_the_style_image() -> None:
    content = parent("breakfast_box").image
    style = parent("breakfast_box", seed=1, defects=("missing_cereals",)).image
    out = cutpaste.reinhard(content, style)

    def stats(x: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)
        return np.concatenate([lab.mean(0), lab.std(0)])

    before, after, target = stats(content), stats(out), stats(style)
    assert np.abs(after - target).sum() < 0.25 * np.abs(before - target).sum()


def test_editable_objects_follow_the_measures() -> None:
    assert set(editable_labels(get_spec("pushpins"))) == {"pushpin"}
    assert set(editable_labels(get_spec("screw_bag"))) == {"screw", "nut", "washer"}
    assert set(editable_labels(get_spec("breakfast_box"))) == {"nectarine", "tangerine", "banana chip", "almond"}
    # Whether cable positions correspond cannot be measured, so connectors and cables stay untouched.
    assert editable_labels(get_spec("splicing_connectors")) == {}
    assert editable_labels(get_spec("juice_bottle")) == {}


def test_label_sets_must_be_a_class_normal_or_a_combination() -> None:
    spec = get_spec("screw_bag")
    assert valid_label_set(spec, {"normal"}) and valid_label_set(spec, {"1_additional_nut"})
    assert valid_label_set(spec, {"1_additional_nut", "1_missing_washer"})
    assert not valid_label_set(spec, {"1_additional_nut", "1_additional_washer"})


def test_a_change_no_class_explains_is_rejected() -> None:
    p = parent("breakfast_box")
    nectarine = next(o for o in p.objects if o.label == "nectarine")
    copy = object_from_mask(np.roll(nectarine.mask(), 5, axis=0), "nectarine")
    with pytest.raises(Rejected, match="no class explains"):  # 2 nectarines, 2 tangerines is no class
        relabel(get_spec("breakfast_box"), p, [*p.objects, copy], "nectarine")


def test_contradicted_parent_gets_no_cut_paste() -> None:
    p = parent("pushpins")
    pins = [i for i, o in enumerate(p.objects) if o.label == "pushpin"]
    broken = Parent(p.image_id, p.image, p.labels, [o for i, o in enumerate(p.objects) if i != pins[0]],
                    p.answers, consistent=False)
    rejected: Counter[str] = Counter()
    augs = augment_image(get_spec("pushpins"), broken, AugmentConfig(noise=0, style=0), lambda rng: None, rejected)
    assert augs == [] and rejected["paste: grounding contradicts the labels"] == 1


def test_augmentation_is_deterministic_for_a_seed() -> None:
    spec, p = get_spec("screw_bag"), parent("screw_bag", seed=6)
    style = parent("screw_bag", seed=7)
    runs = [augment_image(spec, p, CONFIG, lambda rng: (style.image_id, style.image)) for _ in range(2)]
    assert [a.aug_id for a in runs[0]] == [a.aug_id for a in runs[1]]
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a.image, b.image) and a.answers == b.answers and a.labels == b.labels
    other = augment_image(spec, p, AugmentConfig(seed=1), lambda rng: (style.image_id, style.image))
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(runs[0], other, strict=False))


def _table(spec_name: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"aug_id": f"{spec_name}/augmented/{i}", "kind": "paste", **r} for i, r in enumerate(rows)])


def test_h_check_finds_labels_that_do_not_follow_the_answers() -> None:
    spec = get_spec("screw_bag")
    answers = spec.normal_answers() | {"washers": 3}
    table = _table("screw_bag", [{"answers": json.dumps(answers), "labels": ["1_additional_washer"]},
                                 {"answers": json.dumps(answers), "labels": ["normal"]}])
    assert len(h_disagreements(spec, table)) == 1


def test_grounding_again_is_compared_on_the_edited_subqueries() -> None:
    spec, p = get_spec("screw_bag"), parent("screw_bag")
    _, objects, answers, labels, _ = _edit(p, "washer", "paste")
    table = _table("screw_bag", [{"objects": objects_to_json(objects), "answers": json.dumps(answers),
                                  "labels": sorted(labels), "edited_label": "washer"}])
    seen = reground_agreement(spec, table, {table["aug_id"][0]: objects_from_json(table["objects"][0])})
    assert seen["answers_agree"].all() and seen["count_agrees"].all()
    missed = reground_agreement(spec, table, {table["aug_id"][0]: p.objects})  # grounding sees 2 washers
    assert not missed["answers_agree"].any() and missed["found_count"].tolist() == [2]
    assert measure(spec, objects)["washers"] == 3


def test_no_multi_anomaly_training_image_unless_asked() -> None:
    """A nut pasted beside a missing washer is {1_additional_nut, 1_missing_washer}: a test-set combination."""
    spec, p = get_spec("screw_bag"), parent("screw_bag", seed=2, defects=("1_missing_washer",))
    index = next(i for i, o in enumerate(p.objects) if o.label == "nut")
    _, objects, _ = edit_object(spec, p, index, "paste", CONFIG, np.random.default_rng(0))
    with pytest.raises(Rejected, match="multi-anomaly"):
        relabel(spec, p, objects, "nut")
    _, labels, _ = relabel(spec, p, objects, "nut", allow_multi_anomaly=True)
    assert labels == {"1_additional_nut", "1_missing_washer"}


def test_augmenting_a_single_anomaly_image_keeps_one_class_by_default() -> None:
    spec, p = get_spec("pushpins"), parent("pushpins", seed=1, defects=("missing_pushpin",))
    config = AugmentConfig(paste=4, remove=0, move=0, noise=0, style=0)
    rejected: Counter[str] = Counter()
    made = augment_image(spec, p, config, lambda rng: None, rejected)
    assert all(len(a.labels) == 1 for a in made)
    assert rejected["paste: a multi-anomaly label set (allow_multi_anomaly is off)"] > 0
    asked = augment_image(spec, p, dataclasses.replace(config, allow_multi_anomaly=True), lambda rng: None)
    assert any(a.labels == ["1_additional_pushpin", "missing_pushpin"] for a in asked)
