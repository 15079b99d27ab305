"""The object codec: one record, stored as table rows or as a JSON list, read back to equal objects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models.objects import (
    OBJECT_COLUMNS,
    decode_attributes,
    object_from_mask,
    objects_from_frame,
    objects_from_json,
    objects_to_frame,
    objects_to_json,
)


def _objects():
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:5] = True
    other = np.zeros((6, 8), dtype=bool)
    other[5, 7] = True
    return [object_from_mask(mask, "screw", 0.75, {"length_class": "long", "a": 1}), object_from_mask(other, "nut")]


def test_rows_survive_parquet(tmp_path):
    objects = _objects()
    frame = objects_to_frame("screw_bag/test/good/000", objects)
    assert list(frame.columns) == OBJECT_COLUMNS
    assert frame["attributes"].tolist() == ['{"a": 1, "length_class": "long"}', "{}"]
    frame.to_parquet(tmp_path / "objects.parquet", index=False)
    back = objects_from_frame(pd.read_parquet(tmp_path / "objects.parquet"))
    assert back == {"screw_bag/test/good/000": objects}
    assert np.array_equal(back["screw_bag/test/good/000"][0].mask(), objects[0].mask())


def test_json_list_holds_the_same_records():
    objects = _objects()
    text = objects_to_json(objects)
    first = json.loads(text)[0]
    assert list(first) == [c for c in OBJECT_COLUMNS if c != "image_id"]
    assert first["attributes"] == {"length_class": "long", "a": 1}  # nested, not a JSON string
    assert objects_from_json(text) == objects


def test_attribute_cells_read_back():
    assert decode_attributes('{"clamps": 3}') == {"clamps": 3}
    assert decode_attributes("") == decode_attributes(None) == decode_attributes(float("nan")) == {}
