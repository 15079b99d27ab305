"""Locations that every resource shares, read from the environment at definition load time."""

from __future__ import annotations

import os

from models.storage import PROJECT_ROOT


def storage_dir() -> str:
    """``LOGICLS_STORAGE``, or ``storage/`` in the repository."""
    return os.getenv("LOGICLS_STORAGE") or str(PROJECT_ROOT / "storage")


def data_root() -> str | None:
    """``LOGICLS_DATA_ROOT``, or ``None`` for the generated default data set."""
    return os.getenv("LOGICLS_DATA_ROOT") or None
