"""docs/design.md's table columns are the code's: every row of its "Tables" section is checked."""

from __future__ import annotations

import re
from pathlib import Path

from models.objects import OBJECT_COLUMNS
from models.schemas import TABLE_SCHEMAS

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _section(title: str) -> str:
    return DESIGN.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _outside_parentheses(text: str) -> str:
    """``text`` without parenthesised notes that are not inside back-ticks (value lists, remarks)."""
    out, depth, in_code = [], 0, False
    for char in text:
        if depth == 0 and char == "`":
            in_code = not in_code
        if not in_code and char == "(":
            depth += 1
        if depth == 0:
            out.append(char)
        if not in_code and char == ")" and depth:
            depth -= 1
    return "".join(out)


def _top_level_items(code: str) -> list[str]:
    """Comma-separated items of a back-ticked span, commas inside (…) or […] not splitting."""
    items, depth, current = [], 0, ""
    for char in code:
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


def _column_names(cell: str) -> list[str]:
    names = []
    for code in re.findall(r"`([^`]*)`", _outside_parentheses(cell)):
        for item in _top_level_items(code):
            match = _NAME.match(item.strip())
            if match and (match.end() == len(item.strip()) or item.strip()[match.end()] in " ("):
                names.append(match.group())
    return names


def design_columns() -> dict[str, list[str]]:
    """Asset name → the columns its row lists (folder and file assets have none)."""
    objects = _column_names(_section("Object schema (grounding and generator annotations share it)")
                            .split("Grounding adds", 1)[0])
    tables = {}
    rows = [line for line in _section("Tables").splitlines() if line.startswith("| `")]
    for line in rows:
        asset_cell, columns_cell = (c.strip() for c in line.strip().strip("|").split("|", 1))
        name = re.match(r"`(\w+)`", asset_cell).group(1)
        if "(a folder)" in asset_cell or "(a file)" in asset_cell:
            continue
        columns = _column_names(columns_cell)
        if columns_cell.startswith("object schema"):
            columns = [*objects, *columns]
        if columns and columns[0] in tables:  # "the columns of `lac_predictions` plus …"
            columns = [*tables[columns[0]], *columns[1:]]
        tables[name] = columns
    return tables


def test_design_lists_every_table_with_the_code_columns():
    documented = design_columns()
    assert set(documented) == set(TABLE_SCHEMAS)
    for name, schema in TABLE_SCHEMAS.items():
        assert documented[name] == schema.names, name


def test_design_object_schema_is_the_code_one():
    section = _section("Object schema (grounding and generator annotations share it)")
    assert _column_names(section.split("Grounding adds", 1)[0]) == OBJECT_COLUMNS
