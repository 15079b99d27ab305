"""Malformed specs fail with the file, the field and what was expected; user directories load."""

from __future__ import annotations

import copy
import logging
import re
import shutil

import pytest
import yaml

from models.spec import (
    SHIPPED_SCENARIOS,
    SkippedSpec,
    SpecError,
    get_spec,
    load_catalog,
    load_spec,
    load_specs,
    spec_from_dict,
)
from models.spec.expressions import ExpressionError, compile_expression
from models.spec.loader import SPEC_DIR
from tests.spec.helpers import DATA

TRAY = yaml.safe_load((DATA / "tray.yaml").read_text())


def broken(change) -> dict:
    data = copy.deepcopy(TRAY)
    change(data)
    return data


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, "user/tray.yaml")
    assert str(info.value).startswith("user/tray.yaml: invalid scenario spec")
    return info.value.problems


def sub(data: dict, sid: str) -> dict:
    return next(s for s in data["subqueries"] if s["id"] == sid)


def rule(data: dict, label: str) -> dict:
    return next(r for r in data["rules"] if r["class"] == label)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.pop("description"), "description", "Field required"),
        (lambda d: sub(d, "red_caps").pop("normal"), "subqueries[0] (red_caps).normal", "Field required"),
        (
            lambda d: sub(d, "red_caps").update(answer_type="float"),
            "subqueries[0] (red_caps).answer_type",
            "'integer', 'boolean', 'choice' or 'int_list' (got 'float')",
        ),
        (
            lambda d: sub(d, "red_caps").update(reasoning_type="vibes"),
            "subqueries[0] (red_caps).reasoning_type",
            "'counting', 'direction', 'distance', 'size' or 'other'",
        ),
        (
            lambda d: rule(d, "missing_red_cap").update(when="green_caps < 4"),
            "rules[0] (missing_red_cap).when",
            "unknown name 'green_caps'",
        ),
        (
            lambda d: rule(d, "missing_red_cap").update(when="red_caps <"),
            "rules[0] (missing_red_cap).when",
            "syntax error",
        ),
        (
            lambda d: sub(d, "red_caps").update(normal="four"),
            "subqueries[0] (red_caps).normal",
            "expected an integer, got 'four' for answer_type integer",
        ),
        (
            lambda d: sub(d, "caps_per_slot").update(normal=[1, 1]),
            "subqueries[2] (caps_per_slot).normal",
            "expected a list of 6 integers",
        ),
        (
            lambda d: sub(d, "colours_in_place").update(normal="yes please"),
            "subqueries[3] (colours_in_place).normal",
            "expected yes/no (a boolean)",
        ),
        (
            lambda d: sub(d, "blue_caps").update(id="red_caps"),
            "subqueries",
            "duplicate subquery id 'red_caps'",
        ),
        (
            lambda d: d["classes"].append(dict(d["classes"][0])),
            "classes",
            "duplicate class name 'missing_red_cap'",
        ),
        (
            lambda d: rule(d, "missing_red_cap").update({"class": "missing_green_cap"}),
            "rules[0] (missing_green_cap).class",
            "unknown class 'missing_green_cap'",
        ),
        (lambda d: d["rules"].pop(0), "classes[0] (missing_red_cap)", "no rule fires this class"),
        (
            lambda d: d["classes"][0].update(answers={"green_caps": 1}),
            "classes[0] (missing_red_cap).answers",
            "unknown subquery 'green_caps'",
        ),
        (
            lambda d: d["classes"][0].update(answers={"red_caps": "three"}),
            "classes[0] (missing_red_cap).answers.red_caps",
            "expected an integer",
        ),
        (
            lambda d: sub(d, "caps_per_slot").pop("length"),
            "subqueries[2] (caps_per_slot).length",
            "expected the list length",
        ),
        (
            lambda d: sub(d, "red_caps").update(choices=["a", "b"]),
            "subqueries[0] (red_caps).choices",
            "only answer_type choice takes choices",
        ),
        (
            lambda d: sub(d, "red_caps").update(objects=["lid"]),
            "subqueries[0] (red_caps).objects",
            "unknown object 'lid'",
        ),
        (
            lambda d: sub(d, "red_caps").update(measure='count_of("lid")'),
            "subqueries[0] (red_caps).measure",
            "must name an object of the spec",
        ),
        (
            lambda d: d["objects"][0].update(attributes=[]),
            "subqueries[0] (red_caps).measure",
            "reads attribute 'colour' of 'cap', which objects[0] (cap).attributes does not declare",
        ),
        (
            lambda d: sub(d, "caps_per_slot").update(measure='attribute_values("tray", "slots")'),
            "subqueries[2] (caps_per_slot).measure",
            "reads attribute 'slots' of 'tray', which objects[1] (tray).attributes does not declare",
        ),
        (
            lambda d: d["objects"][0].update(attributes=["colour", "colour"]),
            "objects[0] (cap).attributes",
            "duplicate attribute 'colour'",
        ),
        (
            lambda d: d["objects"][0].update(attributes=["colour", "Colour!"]),
            "objects[0] (cap).attributes",
            "not an attribute name",
        ),
        (lambda d: d["objects"][0].update(within="shelf"), "objects[0] (cap).within", "must name another object"),
        (lambda d: d["objects"][0].update(within="cap"), "objects[0] (cap).within", "must name another object"),
        (
            lambda d: sub(d, "red_caps").update(measure="__import__('os')"),
            "subqueries[0] (red_caps).measure",
            "only these functions may be called",
        ),
        (
            lambda d: sub(d, "red_caps").update(measure=['count_of("cap")', "count_of(1 +)"]),
            "subqueries[0] (red_caps).measure[1]",
            "syntax error",
        ),
        (
            lambda d: sub(d, "red_caps").update(measure=[]),
            "subqueries[0] (red_caps).measure",
            "expected an expression or a non-empty list",
        ),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d.update(scenario="Cap Tray"), "scenario", "should match pattern"),
        (
            lambda d: rule(d, "missing_red_cap").update(when="red_caps <= 4"),
            "rules",
            "rules fire on the normal answers",
        ),
        (
            lambda d: rule(d, "missing_red_cap").update(when="red_caps"),
            "rules",
            "gave 4, expected True or False",
        ),
        (
            lambda d: d["classes"][0].update(answers={"red_caps": 4}),
            "classes[0] (missing_red_cap).answers",
            "h gives ['normal'] on these answers, expected ['missing_red_cap']",
        ),
        (
            lambda d: rule(d, "extra_red_cap").update(when="red_caps != 4"),
            "classes[0] (missing_red_cap).answers",
            "h gives ['extra_red_cap', 'missing_red_cap']",
        ),
        (
            lambda d: d["combinations"].append(["missing_red_cap"]),
            "combinations[1]",
            "expected at least two different classes",
        ),
    ],
)
def test_malformed_spec(change, field, message):
    problems = problems_of(broken(change))
    assert any(f == field and message in m for f, m in problems), problems


def test_all_problems_are_reported_at_once():
    def change(d):
        sub(d, "red_caps").update(normal="four")
        rule(d, "extra_red_cap").update(when="purple > 1")

    fields = {f for f, _ in problems_of(broken(change))}
    assert {"subqueries[0] (red_caps).normal", "rules[1] (extra_red_cap).when"} <= fields


def test_file_level_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml: invalid scenario spec\n  - \(file\): not valid YAML"):
        load_spec(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(SpecError, match=r"\(top level\): expected a mapping of spec fields, got list"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "missing.yaml")


def test_user_directory(tmp_path):
    shutil.copy(DATA / "tray.yaml", tmp_path / "tray.yaml")
    (tmp_path / "notes.txt").write_text("not a spec")
    specs = load_specs(tmp_path)
    assert list(specs) == [*SHIPPED_SCENARIOS, "cap_tray"]
    assert load_specs(None).keys() == set(SHIPPED_SCENARIOS)


def _only_skipped(directory) -> SkippedSpec:
    catalog = load_catalog(directory)
    assert len(catalog.skipped) == 1, catalog.skipped
    return catalog.skipped[0]


def test_user_directory_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_specs(tmp_path / "nowhere")
    shutil.copy(DATA / "tray.yaml", tmp_path / "a.yaml")
    shutil.copy(DATA / "tray.yaml", tmp_path / "b.yaml")
    skipped = _only_skipped(tmp_path)
    assert skipped.path.endswith("b.yaml") and skipped.scenario == "cap_tray"
    assert re.search(r"b.yaml: .*'cap_tray' is already defined by .*a.yaml", skipped.error.summary)
    assert "cap_tray" in load_specs(tmp_path)  # from a.yaml


def test_a_user_spec_may_replace_a_shipped_one_only_explicitly(tmp_path):
    shipped = yaml.safe_load((SPEC_DIR / "pushpins.yaml").read_text())
    (tmp_path / "pins.yaml").write_text(yaml.safe_dump(shipped))
    assert re.search(r"'pushpins' is a shipped scenario; .*'overrides: true'", _only_skipped(tmp_path).error.summary)
    assert load_specs(tmp_path)["pushpins"] == load_specs(None)["pushpins"]  # the shipped one stays
    shipped["overrides"] = True
    shipped["description"] = "our own pushpin boxes"
    (tmp_path / "pins.yaml").write_text(yaml.safe_dump(shipped))
    assert load_specs(tmp_path)["pushpins"].description == "our own pushpin boxes"
    tray = dict(TRAY, overrides=True)
    (tmp_path / "pins.yaml").write_text(yaml.safe_dump(tray))
    assert "overrides: there is no shipped scenario 'cap_tray' to override" in _only_skipped(tmp_path).error.summary


def test_a_broken_user_spec_skips_only_its_own_scenario(tmp_path, caplog):
    shutil.copy(DATA / "tray.yaml", tmp_path / "good.yaml")
    broken = (DATA / "tray.yaml").read_text().replace("cap_tray", "bad_tray").replace(
        "answer_type: integer", "answer_type: number", 1)
    (tmp_path / "bad.yaml").write_text(broken)
    with caplog.at_level(logging.WARNING, logger="models.spec.loader"):
        specs = load_specs(tmp_path)
    assert list(specs) == [*SHIPPED_SCENARIOS, "cap_tray"]
    [line] = [r.getMessage() for r in caplog.records]
    assert "scenario 'bad_tray' skipped" in line and "bad.yaml: invalid scenario spec" in line
    assert "subqueries[0] (red_caps).answer_type" in line and "\n" not in line
    with pytest.raises(SpecError, match=r"bad.yaml: invalid scenario spec\n  - subqueries\[0\] \(red_caps\)"):
        get_spec("bad_tray", tmp_path)
    with pytest.raises(KeyError, match="unknown scenario 'nothing'"):
        get_spec("nothing", tmp_path)


def test_a_broken_override_withdraws_the_shipped_scenario(tmp_path):
    shipped = yaml.safe_load((SPEC_DIR / "pushpins.yaml").read_text())
    shipped.update(overrides=True, rules=[])
    (tmp_path / "pins.yaml").write_text(yaml.safe_dump(shipped))
    assert "pushpins" not in load_specs(tmp_path)
    with pytest.raises(SpecError, match=r"pins\.yaml: invalid scenario spec"):
        get_spec("pushpins", tmp_path)


def test_a_spec_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes((DATA / "tray.yaml").read_bytes().replace(b"A black tray", "A n\u00e8gre tray".encode("latin-1")))
    with pytest.raises(SpecError, match=r"latin.yaml: invalid scenario spec\n  - \(file\): not UTF-8 text "
                                        r"\(byte 0xe8 at offset \d+\): save the file as UTF-8"):
        load_spec(path)
    assert _only_skipped(tmp_path).scenario == "latin"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x.__class__", "Attribute is not allowed"),
        ("x ** 99", "Pow is not allowed"),
        ("(lambda: 1)()", "only these functions may be called"),
        ("open('f')", "only these functions may be called"),
        ("__builtins__", "unknown name '__builtins__'"),
        ("[y for y in x if z]", "unknown name 'z'"),
        ("sum(*x)", r"\*args is not allowed"),
        ("b'1'", "constant b'1' is not allowed"),
        ("x := 1", "syntax error"),
    ],
)
def test_expressions_outside_the_language_are_rejected(source, message):
    with pytest.raises(ExpressionError, match=message):
        compile_expression(source, variables={"x"}, functions={"sum"})


def test_comprehensions_and_helpers_evaluate():
    from models.spec.functions import RULE_FUNCTIONS

    expr = compile_expression(
        "sum(max(n - 1, 0) for n in a + b) == excess(a + b, 1)",
        variables={"a", "b"},
        functions=RULE_FUNCTIONS,
    )
    assert expr.names == {"a", "b"}
    assert expr.evaluate({"a": [2, 1, 0], "b": [3, 1, 1]}, RULE_FUNCTIONS) is True
