"""Tables as users see them: Markdown for Dagster metadata and previews, Arrow with declared types."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def markdown_table(df: pd.DataFrame, index: bool = True, max_cell_chars: int | None = None) -> str:
    """A Markdown table of a small frame (counts, metrics, a preview) for ``MetadataValue.md``.

    ``index`` keeps the index as leading column(s). Cells are one line with ``|`` escaped, so any
    text renders as one cell; ``max_cell_chars`` cuts longer cells with an ellipsis.
    """
    frame = df.reset_index() if index else df

    def cell(value: object) -> str:
        text = str(value).replace("|", "\\|").replace("\n", " ")
        if max_cell_chars is None or len(text) <= max_cell_chars:
            return text
        return text[: max_cell_chars - 1] + "…"

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def arrow_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``df`` as an Arrow table whose declared columns have the declared types.

    Columns ``schema`` does not declare keep the types Arrow infers, and the column order stays
    ``df``'s. A declared column that ``df`` lacks is not added: the builders write every column of
    their table (tests pin it); a stand-in with fewer columns (a test's) is stored as it is.
    """
    extra = [str(c) for c in df.columns if c not in schema.names]
    inferred = pa.Schema.from_pandas(df[extra], preserve_index=False) if extra else pa.schema([])
    fields = [schema.field(c) if c in schema.names else inferred.field(c) for c in map(str, df.columns)]
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)
