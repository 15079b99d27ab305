"""No dead code: every module-level name of the project is used somewhere besides its definition.

A name counts as used when it occurs in another line of code, a test, a benchmark or the docs; a
package ``__init__`` that only re-exports it (import, ``__all__``) does not count. Class members
are checked by hand.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "assets", "resources", "pipelines")
DOCS = ("README.md", "docs/design.md", "Makefile", "workspace.yaml", "pyproject.toml")


def _defined(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("__")]


def _words(path: Path, text: str) -> Counter[str]:
    """Word counts of a file; of a package ``__init__`` only the names its code uses (not re-exports)."""
    if path.name != "__init__.py":
        return Counter(re.findall(r"\w+", text))
    used = Counter()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            used[node.id] += 1
        elif isinstance(node, ast.Attribute):
            used[node.attr] += 1
    return used


def test_every_module_level_name_is_used():
    files = [p for folder in (*PACKAGES, "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    texts = {p: p.read_text(encoding="utf-8") for p in files}
    total = Counter(re.findall(r"\w+", "\n".join((ROOT / d).read_text(encoding="utf-8") for d in DOCS)))
    for path, text in texts.items():
        total += _words(path, text)
    unused = []
    for path, text in texts.items():
        if path.parts[len(ROOT.parts)] in PACKAGES:
            own = 1 if path.name != "__init__.py" else 0  # the definition itself
            unused += [f"{path.relative_to(ROOT)}: {name}" for name in _defined(ast.parse(text))
                       if total[name] - own <= 0]  # fmt: skip
    assert unused == []
