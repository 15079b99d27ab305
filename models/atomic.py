"""Atomic file writes: a reader (or a crash) never sees half a file.

Every table, cache entry, image and report the project writes goes through a temporary sibling that
is renamed into place, so an interrupted run leaves the old file or the whole new one. The
temporary sibling is ``.<name>.<random>.tmp`` in the target's folder (the same file system, so the
rename is atomic; ``pipelines.cli`` recognises the name and reports the real file).

Files get the mode a plain ``open()`` gives (``0666`` less the umask, ``0644`` usually): a second
user, or a pod running as another user, reads what the first one wrote. ``tempfile.mkstemp`` (and
libraries built on it, safetensors among them) creates ``0600`` files; :func:`default_modes` gives
what such a library wrote the usual mode.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from models.tables import arrow_table

PathT = TypeVar("PathT", Path, UPath)


def temporary_sibling(target: PathT) -> PathT:
    """A fresh hidden name next to ``target`` for the file that will replace it."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def replacing(target: PathT) -> Iterator[PathT]:
    """Yield a temporary sibling of ``target`` to write; when the block ends without an error it
    replaces ``target`` in one rename, otherwise it is removed. Works for local paths and for any
    fsspec ``UPath`` (where a rename is as atomic as the store allows)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        yield tmp
        if isinstance(tmp, Path):
            os.replace(tmp, target)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
        umask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):  # not Linux: read it by setting it (and back)
        umask = os.umask(0o022)
        os.umask(umask)
    return umask


def default_modes(path: str | Path) -> Path:
    """Give the file ``path``, or the folder ``path`` and everything under it, the mode ``open()`` and
    ``mkdir()`` would (a ``tempfile.mkdtemp`` folder renamed into place is ``0700`` otherwise)."""
    root = Path(path)
    umask = _umask()
    for entry in [root] if root.is_file() else [root, *root.rglob("*")]:
        entry.chmod((0o777 if entry.is_dir() else 0o666) & ~umask)
    return root


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    ``fsync`` also forces the bytes to disk before the rename (for paid-for replies that must survive
    a power loss, not only a crash).
    """
    target = Path(path)
    with replacing(target) as tmp, open(tmp, "xb") as file:
        file.write(data)
        if fsync:
            file.flush()
            os.fsync(file.fileno())
    return target


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike[str], schema: pa.Schema | None = None) -> UPath:
    """Write ``df`` as Parquet (no index) to ``path``, a local path or an fsspec URL, atomically.

    With ``schema`` (:data:`models.schemas.TABLE_SCHEMAS`) the declared columns are stored with the
    declared types (:func:`models.tables.arrow_table`), whatever pandas would infer from the values.
    """
    target = UPath(path)
    with replacing(target) as tmp, tmp.open("wb") as file:
        if schema is None:
            df.to_parquet(file, index=False)
        else:
            pq.write_table(arrow_table(df, schema), file)
    return target
