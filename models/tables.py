"""Tables as users see them: small frames rendered as Markdown for Dagster metadata and previews."""

from __future__ import annotations

import pandas as pd


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
