"""Small helpers that turn results into Dagster metadata and data versions."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from dagster import DataVersion

from models.images import image_data_uri


def frame_data_version(df: pd.DataFrame) -> DataVersion:
    """A content hash of a table, so downstream staleness follows the data, not the run."""
    payload = df.to_json(orient="split", date_format="iso", default_handler=str)
    return DataVersion(hashlib.sha256(payload.encode()).hexdigest()[:16])


def markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    """A Markdown table of a small frame (counts, metrics) for `MetadataValue.md`."""
    frame = df.reset_index() if index else df
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def image_markdown(image_rgb: np.ndarray, caption: str, max_width: int = 480) -> str:
    """An inline PNG (data URI) for `MetadataValue.md`, shrunk so metadata stays small."""
    return f"**{caption}**\n\n![{caption}]({image_data_uri(image_rgb, max_width, 'png')})"
