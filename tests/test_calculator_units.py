"""The calculator's units: quantities written as people write them, converted by Pint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orquestra.answer_check import _evaluate
from orquestra.tools import ToolContext, ToolError
from orquestra.tools.calculator import calculate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(3 hours + 20 minutes) in seconds", "12000 second"),
        ("3 hours + 20 minutes to seconds", "12000 second"),
        ("77 degF in degC", "25 degree_Celsius"),
        ("77 degrees Fahrenheit in degrees Celsius", "25 degree_Celsius"),
        ("2.5 pounds in grams", "1133.980925 gram"),
        ("round(45 litres in US gallons, 1)", None),  # a conversion is only the expression's ending
        ("42.195 km in metres", "42195 meter"),
        ("2.5 cubic metres in mL", "2500000 milliliter"),
        ("1.8 GB / (12 MB per second) in seconds", "150 second"),
        ("100 km / 2.5 h", "40 kilometer / hour"),  # each number goes with the unit written after it
        ("18 km / 45 minutes in km/h", "24 kilometer / hour"),
        ("(2 m)**2 in square centimetres", "40000 centimeter ** 2"),
        ("km / m", "1000"),  # no unit left: a plain number
        ("2 hours * 0 + 5 minutes in s", "300 second"),
        ("ceil(500 apples / 36 apples) in crates", "14"),  # counts of things, and the answer's label
        ("(95.40 / 3) in dollars", "31.8"),
    ],
)
def test_quantities_with_units_are_converted(tmp_path: Path, expression: str, value: str | None) -> None:
    if value is None:
        with pytest.raises(ToolError, match="cannot evaluate"):
            calculate(ToolContext(tmp_path), expression)
        return
    assert calculate(ToolContext(tmp_path), expression) == value


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("3 m + 2 s", "Cannot convert from 'meter'"),
        ("apples / 36", "'apples' is not a number, a function or a unit the calculator knows"),
        ("x + 1", "'x' is not a number"),
        ("2 m ** 100", "a unit to the power 100"),
        ("(10**4000 * 1 m) ** 2", "digits"),
        ("2 ** 3 m", "invalid syntax"),  # an exponent does not take a unit
        ("5 kg in seconds", "Cannot convert"),
    ],
)
def test_units_that_do_not_fit_are_refused_with_the_reason(tmp_path: Path, expression: str, said: str) -> None:
    with pytest.raises(ToolError, match="cannot evaluate") as refused:
        calculate(ToolContext(tmp_path), expression)
    assert said in refused.value.message


def test_plain_sums_are_read_without_units(tmp_path: Path) -> None:
    # Words in quotes or after a dot are not unit names: these keep the calculator's own refusals.
    with pytest.raises(ToolError, match="is text"):
        calculate(ToolContext(tmp_path), "'x' * 10**10")
    assert calculate(ToolContext(tmp_path), "ceil(230 / 52) + pi * 0") == "5"


def test_the_answer_check_reads_the_number_of_a_quantity() -> None:
    assert _evaluate("(3 hours + 20 minutes) in seconds") == "12000"
    assert _evaluate("apples + 1") is None


def test_a_plain_sum_does_not_import_pint() -> None:
    # Pint's registry takes a noticeable part of a second: only an expression with units pays for it.
    script = (
        "import sys; from pathlib import Path; from orquestra.tools import ToolContext;"
        " from orquestra.tools.calculator import calculate;"
        " print(calculate(ToolContext(Path()), '2 + 3'), 'pint' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["5", "False"]
