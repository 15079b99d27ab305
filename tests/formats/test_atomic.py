"""One atomic writer for files and tables, the IO manager's included."""

from __future__ import annotations

import pandas as pd
import pytest

import resources.parquet_io
from models import atomic
from models.atomic import write_bytes_atomic, write_parquet_atomic


def test_the_io_manager_writes_through_the_one_writer():
    assert resources.parquet_io.write_parquet_atomic is atomic.write_parquet_atomic


class Unwritable:
    """A value pyarrow cannot store: the write fails half-way."""


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    table = tmp_path / "t" / "pushpins.parquet"
    write_parquet_atomic(pd.DataFrame({"a": [1]}), table)
    with pytest.raises(Exception, match="Unwritable"):
        write_parquet_atomic(pd.DataFrame({"a": [Unwritable()]}), table)
    assert pd.read_parquet(table)["a"].tolist() == [1]
    blob = write_bytes_atomic(tmp_path / "b.bin", b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(blob, "not bytes")  # type: ignore[arg-type]
    assert blob.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.bin", "pushpins.parquet", "t"]
