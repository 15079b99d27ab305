"""Parquet storage for table assets: one file per asset (and per partition).

Paths follow ``<storage>/<asset>/<partition>.parquet`` (``<storage>/<asset>.parquet`` when
unpartitioned; `models.storage.StorageLayout.table`), so users can open any intermediate table with
pandas or DuckDB without Dagster.
Every write goes to a temporary file that is renamed into place, so a crash never leaves a
half-written table behind.
"""

# No `from __future__ import annotations` here: Dagster reads the field types to find the nested `storage`
# resource, and string annotations hide it (a root set in the launchpad would not reach this resource).

import os
import uuid

import pandas as pd
from dagster import (
    ConfigurableIOManagerFactory,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
    UPathIOManager,
)
from upath import UPath

from resources.storage import StorageResource

PREVIEW_ROWS = 8
PREVIEW_CELL_CHARS = 80


def table_schema(df: pd.DataFrame) -> TableSchema:
    """Column names and dtypes as Dagster shows them in the UI."""
    return TableSchema(columns=[TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def markdown_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A short Markdown table of the first rows, with long cells cut so the UI stays readable."""

    def cell(value: object) -> str:
        text = str(value).replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"

    head = df.head(rows)
    lines = ["| " + " | ".join(str(c) for c in head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return "\n".join(lines)


def table_metadata(df: pd.DataFrame) -> dict[str, object]:
    """The metadata every table asset carries: row count, column schema and a preview."""
    return {
        "dagster/row_count": MetadataValue.int(len(df)),
        "dagster/column_schema": table_schema(df),
        "preview": MetadataValue.md(markdown_preview(df)),
    }


def write_parquet_atomic(df: pd.DataFrame, path: os.PathLike[str] | str) -> None:
    """Write ``df`` to ``path`` through a temporary sibling and a rename."""
    target = UPath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as fh:
            df.to_parquet(fh, index=False)
        tmp.rename(target)
    finally:
        if tmp.exists():
            tmp.unlink()


class ParquetUPathIOManager(UPathIOManager):
    """Stores pandas DataFrames as Parquet and adds table metadata to each materialization."""

    extension: str = ".parquet"

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"Asset {context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "the Parquet IO manager stores pandas DataFrames only."
            )
        write_parquet_atomic(obj, path)
        context.add_output_metadata(table_metadata(obj))

    def load_from_path(self, context: InputContext, path: UPath) -> pd.DataFrame:
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: materialize {context.upstream_output.asset_key.to_user_string()} "
                "(for this partition) first."
            )
        with path.open("rb") as fh:
            return pd.read_parquet(fh)


class ParquetIOManager(ConfigurableIOManagerFactory):
    """Parquet tables in the storage folder (`models.storage.StorageLayout.tables`)."""

    storage: StorageResource

    def create_io_manager(self, context: InitResourceContext) -> ParquetUPathIOManager:
        return ParquetUPathIOManager(base_path=UPath(self.storage.layout.tables))
