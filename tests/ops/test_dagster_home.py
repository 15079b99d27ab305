"""An exported DAGSTER_HOME wins over the default that `make setup` writes into .env: in the recipes, which
`source .env`, and in the dagster CLI, which loads .env from the working directory over the environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """What `make home` needs of the repository, in a scratch directory (its .env is the one under test)."""
    root = tmp_path / "project"
    (root / "deploy/local").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", root)
    shutil.copy(REPO / "deploy/local/dagster.yaml", root / "deploy/local")
    return root


def _env(home: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    return env if home is None else {**env, "DAGSTER_HOME": str(home)}


def _make_home(project: Path, env: dict[str, str]) -> str:
    return subprocess.run(["make", "-s", "home"], cwd=project, env=env, check=True, capture_output=True,
                          text=True).stdout


def _sourced_home(project: Path, env: dict[str, str]) -> str:
    """DAGSTER_HOME as the Makefile's recipes see it (``set -a; source .env; set +a``)."""
    command = 'set -a; source .env; set +a; printf %s "$DAGSTER_HOME"'
    return subprocess.run(["bash", "-c", command], cwd=project, env=env, check=True, capture_output=True,
                          text=True).stdout


def _cli_home(project: Path, env: dict[str, str]) -> str:
    """DAGSTER_HOME as a dagster command run from the project root sees it."""
    info = subprocess.run([str(DAGSTER), "instance", "info"], cwd=project, env=env, check=True, capture_output=True,
                          text=True).stdout
    return re.search(r"^\$DAGSTER_HOME: (.*)$", info, re.MULTILINE).group(1)


def test_an_exported_dagster_home_wins_over_the_env_file(project: Path, tmp_path: Path) -> None:
    default, mine = project / "storage/dagster_home", tmp_path / "mine"
    mine.mkdir()
    _make_home(project, _env())
    assert (default / "dagster.yaml").is_file()
    assert _sourced_home(project, _env()) == str(default)
    assert _sourced_home(project, _env(mine)) == str(mine)
    assert _cli_home(project, _env(mine)) == str(mine)


def test_an_older_env_file_is_rewritten_in_place(project: Path) -> None:
    env_file = project / ".env"
    env_file.write_text("LOGICLS_ICL_API_KEY=secret\nDAGSTER_HOME=/old/home\n")
    env_file.chmod(0o600)
    _make_home(project, _env())
    assert env_file.read_text() == "LOGICLS_ICL_API_KEY=secret\nDAGSTER_HOME=${DAGSTER_HOME:-/old/home}\n"
    assert env_file.stat().st_mode & 0o777 == 0o600
    _make_home(project, _env())  # nothing more to rewrite
    assert env_file.read_text().count("${DAGSTER_HOME:-") == 1


def test_an_exported_home_gets_the_project_config_unless_it_has_its_own(project: Path, tmp_path: Path) -> None:
    mine, own = tmp_path / "mine", tmp_path / "own"
    _make_home(project, _env(mine))
    assert "default_limit:" in (mine / "dagster.yaml").read_text()
    assert not (project / "storage/dagster_home").exists()
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert "keeps its own dagster.yaml" in _make_home(project, _env(own))
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
