"""Dependencies point one way: pipelines → assets → resources / models, and the core has no Dagster.

Checked on the source (every import statement, at any depth), as `git grep` would.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIPES_PROCESS = "models/vlm/fine_tuning.py"  # a Pipes process reports through dagster_pipes, not dagster


def _imports(package: str) -> dict[str, set[str]]:
    """Per source file under ``package``: the top-level packages it imports."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = {name.split(".")[0] for name in names} | names
    return found


def test_assets_and_resources_do_not_import_pipelines() -> None:
    for package in ("assets", "resources"):
        offenders = sorted(path for path, names in _imports(package).items() if "pipelines" in names)
        assert offenders == [], f"{package}/ must not import pipelines/: {offenders}"


def test_resources_do_not_import_assets() -> None:
    offenders = sorted(path for path, names in _imports("resources").items() if "assets" in names)
    assert offenders == []


def test_stage_modules_do_not_import_each_other() -> None:
    siblings = {path: sorted(n for n in names if n.startswith("assets.")) for path, names in _imports("assets").items()}
    allowed = {"assets/evaluation.py": ["assets.ablation"]}  # lac_metrics orders Table III's rows
    assert {path: names for path, names in siblings.items() if names} == allowed


def test_the_core_imports_no_dagster() -> None:
    imports = _imports("models")
    outer = {"dagster", "assets", "resources", "pipelines"}
    offenders = sorted(path for path, names in imports.items() if outer & names)
    assert offenders == []
    assert "dagster_pipes" in imports[PIPES_PROCESS]
    others = sorted(path for path, names in imports.items() if "dagster_pipes" in names and path != PIPES_PROCESS)
    assert others == []
