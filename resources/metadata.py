"""Small helpers that turn results into Dagster metadata and data versions."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from dagster import DataVersion

from models.images import image_data_uri
from models.tables import markdown_table

__all__ = ["frame_data_version", "image_markdown", "markdown_table"]


def frame_data_version(df: pd.DataFrame) -> DataVersion:
    """A content hash of a table, so downstream staleness follows the data, not the run."""
    payload = df.to_json(orient="split", date_format="iso", default_handler=str)
    return DataVersion(hashlib.sha256(payload.encode()).hexdigest()[:16])


def image_markdown(image_rgb: np.ndarray, caption: str, max_width: int = 480) -> str:
    """An inline PNG (data URI) for `MetadataValue.md`, shrunk so metadata stays small."""
    return f"**{caption}**\n\n![{caption}]({image_data_uri(image_rgb, max_width, 'png')})"
