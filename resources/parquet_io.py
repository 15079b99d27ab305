"""Parquet storage for table assets: one file per asset (and per partition).

Paths follow ``<storage>/<asset>/<partition>.parquet`` (``<storage>/<asset>.parquet`` when
unpartitioned; `models.storage.StorageLayout.table`), so users can open any intermediate table with
pandas or DuckDB without Dagster.
Every write goes to a temporary file that is renamed into place
(:func:`models.atomic.write_parquet_atomic`), so a crash never leaves a half-written table behind,
and with the table's declared Arrow schema (:data:`models.schemas.TABLE_SCHEMAS`), so every
partition of a table has the same column types and they read together as one data set.
"""

# No `from __future__ import annotations` here: Dagster reads the field types to find the nested `storage`
# resource, and string annotations hide it (a root set in the launchpad would not reach this resource).

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

from models.atomic import write_parquet_atomic
from models.schemas import TABLE_SCHEMAS
from models.tables import markdown_table
from resources.storage import StorageResource

PREVIEW_ROWS = 8
PREVIEW_CELL_CHARS = 80


def table_schema(df: pd.DataFrame) -> TableSchema:
    """Column names and dtypes as Dagster shows them in the UI."""
    return TableSchema(columns=[TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def markdown_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A short Markdown table of the first rows, with long cells cut so the UI stays readable."""
    return markdown_table(df.head(rows), index=False, max_cell_chars=PREVIEW_CELL_CHARS)


def table_metadata(df: pd.DataFrame) -> dict[str, object]:
    """The metadata every table asset carries: row count, column schema and a preview."""
    return {
        "dagster/row_count": MetadataValue.int(len(df)),
        "dagster/column_schema": table_schema(df),
        "preview": MetadataValue.md(markdown_preview(df)),
    }


class ParquetUPathIOManager(UPathIOManager):
    """Stores pandas DataFrames as Parquet and adds table metadata to each materialization."""

    extension: str = ".parquet"

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"Asset {context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "the Parquet IO manager stores pandas DataFrames only."
            )
        write_parquet_atomic(obj, path, schema=TABLE_SCHEMAS.get(context.asset_key.path[-1]))
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
