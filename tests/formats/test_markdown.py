"""One Markdown-table helper for asset metadata and the IO manager's previews."""

from __future__ import annotations

import pandas as pd

from models.tables import markdown_table
from resources.metadata import markdown_table as metadata_table
from resources.parquet_io import markdown_preview


def test_metadata_tables_and_previews_are_one_helper():
    assert metadata_table is markdown_table
    frame = pd.DataFrame({"kind": ["paste", "a|b"], "images": [3, 4]}).set_index("kind")
    assert markdown_table(frame) == "| kind | images |\n|---|---|\n| paste | 3 |\n| a\\|b | 4 |"
    long = pd.DataFrame({"text": ["x" * 100, "two\nlines"]})
    assert markdown_preview(long) == f"| text |\n|---|\n| {'x' * 79}… |\n| two lines |"
