"""What a spec expression may build is bounded, and checked before anything is allocated."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from models.spec import SpecError, measure, spec_from_dict
from models.spec.expressions import (
    MAX_SEQUENCE_ITEMS,
    MAX_STEPS,
    ExpressionLimitError,
    compile_expression,
)
from models.spec.functions import RULE_FUNCTIONS
from tests.spec.helpers import DATA, make_object

REPO = Path(__file__).resolve().parents[2]
TRAY = yaml.safe_load((DATA / "tray.yaml").read_text())


def evaluate(source: str, **variables):
    expression = compile_expression(source, variables=set(variables), functions=RULE_FUNCTIONS)
    return expression.evaluate(variables, RULE_FUNCTIONS)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("len([0] * 10001) > 0", "sequence of 10,001 items; the limit is 10,000"),
        ("len(2000000000 * [0]) > 0", "sequence of 2,000,000,000 items; the limit is 10,000"),
        ("len('ab' * 5001) > 0", "sequence of 10,002 items"),
        ("len(row + row) > 0", "'\\+' would make a sequence of 12,000 items"),
        ("len([0 for a in row for b in row]) > 0", f"more than {MAX_STEPS:,} items in one evaluation"),
        ("len([row[:] for a in row]) > 0", f"more than {MAX_STEPS:,} items in one evaluation"),
        ("len([sorted(row) for a in row]) > 0", f"more than {MAX_STEPS:,} items in one evaluation"),
        ("3037000500 * 3037000500 > 0", "integer of 64 bits; the limit is 63 bits"),
        ("len('%099999d' % 1) > 0", "'%' string formatting is not part of the language"),
    ],
)
def test_evaluation_over_the_limits_is_refused(source: str, message: str) -> None:
    with pytest.raises(ExpressionLimitError, match=message):
        evaluate(source, row=[0] * 6000)


def test_sum_adds_numbers_only() -> None:
    with pytest.raises(TypeError, match="sum\\(\\) adds numbers"):
        evaluate("len(sum([row, row], [])) > 0", row=[1] * MAX_SEQUENCE_ITEMS)
    assert evaluate("sum(row) == 3 and sum(x for x in row) == 3", row=[1, 1, 1])


def test_an_integer_literal_over_the_bound_is_refused_when_compiled() -> None:
    with pytest.raises(ExpressionLimitError, match="integer of 67 bits"):
        compile_expression("x < 99999999999999999999", variables={"x"}, functions=())


def test_within_the_limits_evaluates_as_before() -> None:
    assert evaluate("len(row[:3] + [1] * 10) == 13 and 7 % 3 == 1 and 'ab' * 2 == 'abab'", row=[1] * 6000)
    assert evaluate("excess(row + row, 1) == 0", row=[1] * 5000)


def _tray_with_rule(when: str) -> dict:
    data = copy.deepcopy(TRAY)
    data["rules"][0]["when"] = f"({when}) or red_caps < 4"
    return data


def test_a_rule_over_the_limit_fails_the_load_naming_spec_rule_and_limit() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_dict(_tray_with_rule("len([0] * 20000) > 0"), "user/tray.yaml")
    text = str(info.value)
    assert "user/tray.yaml: invalid scenario spec" in text
    assert "rules[0] (missing_red_cap)" in text and "the limit is 10,000" in text


def test_a_measure_over_the_limit_stops_naming_spec_measure_and_limit() -> None:
    data = copy.deepcopy(TRAY)
    data["subqueries"][0]["measure"] = "len([0] * 20000)"
    spec = spec_from_dict(data, "user/tray.yaml")
    with pytest.raises(ExpressionLimitError, match=r"cap_tray subqueries \(red_caps\)\.measure .*limit is 10,000"):
        measure(spec, [make_object("cap", 10, 10, colour="red")])
    data = copy.deepcopy(TRAY)
    data["subqueries"][2]["measure"] = 'grid("cap", "tray", 1000, 1000)[0]'
    spec = spec_from_dict(data, "user/tray.yaml")
    with pytest.raises(ExpressionLimitError, match=r"\(caps_per_slot\)\.measure .*1,000,000 cells"):
        measure(spec, [make_object("tray", 100, 50, w=200, h=100)])


def test_sixteen_gigabytes_are_refused_without_allocating(tmp_path: Path) -> None:
    """The issue's example, in a process that cannot allocate 3 GiB: a missing bound shows as MemoryError."""
    spec = tmp_path / "big.yaml"
    spec.write_text(yaml.safe_dump(_tray_with_rule("len([0] * 2000000000) > 0")))
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from models.spec import SpecError, load_spec
        try:
            load_spec({str(spec)!r})
        except SpecError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "big.yaml: invalid scenario spec" in done.stdout
    assert "2,000,000,000 items; the limit is 10,000" in done.stdout, done.stdout
