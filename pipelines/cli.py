"""What the command-line entry points share: bad input is one line on stderr and exit code 2.

Each entry point hands its work to :func:`run`, the one place that turns the errors bad input raises
(a usage error, an unknown or broken scenario, a file that cannot be read, storage that cannot be
written, a ``ValueError`` from the models' validation) into one line naming the file or flag and the
fix. Anything else is a bug and keeps its traceback. Warnings (e.g. a user spec that was skipped) go
to stderr as one line each, through :mod:`logging`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from models.spec import SpecError

EXIT_BAD_INPUT = 2
# Errors of the file system that the user fixes (permissions, a read-only or full disk, a wrong path).
_STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EISDIR, errno.ENOTDIR}
_ATOMIC_TEMP = re.compile(r"^\..+\.tmp$")  # the temporary sibling of models.atomic's writes


class BadInput(Exception):
    """Bad input, said in one line: the file or flag, what is wrong, and the fix."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line (the usage itself is in ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see --help)")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(prog: str, work: Callable[[], Iterable[str]], storage_hint: str) -> int:
    """Run ``work`` and print the lines it gives on stdout; bad input is one line on stderr and exit 2.

    ``storage_hint`` is the fix for storage that cannot be written (which setting or flag to change).
    """
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s %(name)s: %(message)s")
    try:
        lines = list(work())
    except Exception as error:  # only the known kinds are answered; the rest keep their traceback
        message = _one_line(error, storage_hint)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in lines:
        print(line)
    return 0


def _one_line(error: Exception, storage_hint: str) -> str | None:
    """The one-line message for a kind of bad input, or None for anything else (a bug)."""
    if isinstance(error, SpecError):
        text = error.summary
    elif isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS and error.filename:
        text = f"{_shown(error.filename)}: {error.strerror}; {storage_hint}"
    elif isinstance(error, KeyError):
        text = str(error.args[0]) if error.args else repr(error)
    elif isinstance(error, BadInput | FileNotFoundError | ValueError):
        text = str(error)
    else:
        return None
    return " ".join(text.split())


def _shown(filename: str) -> Path:
    """The path to name: the folder, when the file is the temporary sibling of an atomic write."""
    path = Path(filename)
    return path.parent if _ATOMIC_TEMP.match(path.name) else path
