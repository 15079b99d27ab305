"""Running the command-line entry points as a user does: a subprocess, optionally on read-only storage."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE = 24, 1


def _without_dac_override() -> None:
    """In the child before exec: root loses the capability that ignores write permissions, so a
    folder without write permission is read-only for it too (no-op and harmless for other users)."""
    if os.geteuid() == 0:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, 0, 0, 0)


def run_cli(module: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m <module> args…`` from the repository root, with the test's environment plus ``env``."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=300, preexec_fn=_without_dac_override)


def assert_one_line_error(done: subprocess.CompletedProcess[str], prog: str, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, exactly one line on stderr holding every fragment, no traceback."""
    assert done.returncode == 2, done.stderr[-4000:]
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr[-4000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-4000:]
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` and everything below it without write permission (restored afterwards); skips the test
    where that cannot be enforced on the processes :func:`run_cli` starts."""
    probe = folder / ".write-probe"
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for path in paths:
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        check = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}, 'w')"], capture_output=True,
                               preexec_fn=_without_dac_override)
        if check.returncode == 0:
            probe.unlink()
            pytest.skip("this machine lets the test user write into a folder without write permission")
        yield folder
    finally:
        for path in reversed(paths):
            path.chmod(modes[path])
