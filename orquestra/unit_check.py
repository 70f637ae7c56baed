"""An exact check of a run's unit conversion: the quantity the goal gives, converted by Pint, not by a model.

A goal that asks to convert one quantity into another unit ("A film runs for 3 hours and 20 minutes. How
many seconds long is it?") has one right answer, and a small model gets it wrong in ways every other check
can pass: asked for one calculator expression, it writes `3*60+20` for the seconds. So a goal that reads as
a conversion is not worked out by the model at all: the quantity it gives (`3 hours and 20 minutes`, one
quantity written in parts) is converted into the unit it asks for (`how many seconds`, `in degrees
Celsius`) with Pint's units, or with the factor the goal itself gives ("Taking 1 pound as 453.6 grams",
"1 US gallon = 3.785 litres"), which is the one the answer must have used.

Read as a conversion is only a goal whose every figure is that quantity, a factor it gives, or the places
to round to: one with any other figure ("60 km in 1.5 hours; how many km in 4 hours?") asks for more than a
conversion, and is left to `orquestra.answer_check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orquestra.answer_check import AnswerCheck, claimed_figures
from orquestra.checks import numbers_in, states_number
from orquestra.tools import units

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_UNIT = r"[A-Za-z_]\w*(?:\*\*\d)?(?:\s*/\s*[A-Za-z_]\w*(?:\*\*\d)?)?"
# "2.5 pounds", "77 degF", "45 litres", "60 miles / hour" (after `units.read_phrases`).
_QUANTITY = re.compile(rf"(?<![\w.,])(?P<number>{_NUMBER})\s*(?P<unit>{_UNIT})")
# "1 pound as 453.6 grams", "1 gallon = 3.785 litres", "a mile is 1.609 km": one `one` is `factor` of `other`.
_FACTOR = re.compile(
    rf"(?<![\w.,])(?:1|one|an?)\s+(?P<one>{_UNIT})\s*(?:=|is|as|equals|being|is equal to|makes)\s*"
    rf"(?:about\s+|approximately\s+|roughly\s+)?(?P<factor>{_NUMBER})\s*(?P<other>{_UNIT})",
    re.IGNORECASE,
)
# "2.54 cm in an inch", "453.6 grams to the pound": the same, the other way round.
_FACTOR_REVERSED = re.compile(
    rf"(?<![\w.,])(?P<factor>{_NUMBER})\s*(?P<other>{_UNIT})\s+(?:in|to|per)\s+(?:1|one|an?|the|each)\s+"
    rf"(?P<one>{_UNIT})",
    re.IGNORECASE,
)
# "how many seconds", "in degC", "into metres", "to miles": the unit the goal asks for.
_TARGETS = (
    re.compile(rf"\bhow\s+many\s+(?P<unit>{_UNIT})", re.IGNORECASE),
    re.compile(rf"\b(?:in|into|to)\s+(?P<unit>{_UNIT})", re.IGNORECASE),
)
# "rounded to one decimal place", "to 2 significant figures": figures that are no quantity.
_PLACES = re.compile(r"\b(?:to|at)\s+\d+\s+(?:decimal\s+places?|significant\s+(?:figures?|digits?)|d\.?p\.?)\b")
# The parts of one quantity: "3 hours and 20 minutes", "5 feet, 4 inches", "1 h 30 min".
_JOINS = re.compile(r"\s*(?:,|and|,\s*and)?\s*", re.IGNORECASE)
# Words Pint reads as units that a goal uses as words: "at 3 pm", "in a day", "6 as well".
_NOT_UNITS = frozenset({"a", "an", "am", "as", "at", "in", "pm", "point", "pi", "e", "c", "by"})


@dataclass(frozen=True)
class _Quantity:
    value: Any  # a Pint quantity
    written: str
    start: int
    end: int


@dataclass(frozen=True)
class Conversion:
    """What a goal asks: `source` (a Pint quantity) in the unit `target`, with the factor it gives, if any."""

    source: Any
    target: Any
    written: str
    """How the goal writes it: `3 hours and 20 minutes in seconds`."""
    factor: tuple[Any, float, Any] | None = None
    """`(pound, 453.6, gram)`: one of the first unit is that many of the second, as the goal says."""
    factor_written: str = ""
    """How the goal gives the factor: `1 pound as 453.6 grams`."""

    def value(self) -> float | None:
        """The source in the target unit, with the goal's factor where it gives one; None when they do not mix."""
        try:
            converted = self._converted()
        except units.errors():
            return None
        return None if converted is None else float(converted.to(self.target).magnitude)

    def _converted(self) -> Any | None:
        """The source in one of the factor's units, by the factor: the way from the source's unit to the target's.

        Both ways may mix (a factor between two units of volume): then the way is the one whose units the
        source and target are written in, and a factor neither way matches judges nothing.
        """
        if self.factor is None:
            return self.source
        one, factor, other = self.factor
        target = units.quantity(1, self.target)
        ways = []  # (how well the way matches the written units, the converted quantity)
        if self.source.is_compatible_with(one) and _mixes(target, other):
            score = _same(self.source.units, one) + _same(self.target, other)
            ways.append((score, units.quantity(self.source.to(one).magnitude * factor, other)))
        if self.source.is_compatible_with(other) and _mixes(target, one):
            score = _same(self.source.units, other) + _same(self.target, one)
            ways.append((score, units.quantity(self.source.to(other).magnitude / factor, one)))
        ways.sort(key=lambda way: way[0], reverse=True)
        if not ways or (len(ways) > 1 and ways[0][0] == ways[1][0]):
            return None
        return ways[0][1]


def conversion_in(goal: str) -> Conversion | None:
    """The conversion `goal` asks for, or None when it asks for something else, or for it ambiguously."""
    text = units.read_phrases(goal)
    factors = [match for match in (*_FACTOR.finditer(text), *_FACTOR_REVERSED.finditer(text)) if _factor(match)]
    if len(factors) > 1:
        return None
    factor = _factor(factors[0]) if factors else None
    spans = [match.span() for match in factors] + [match.span() for match in _PLACES.finditer(text)]
    quantities = [q for q in _quantities(text) if not any(start <= q.start < end for start, end in spans)]
    source = _one_quantity(text, quantities)
    if source is None or not _all_figures_read(text, [(source.start, source.end), *spans]):
        return None
    targets = {str(unit): (unit, written) for unit, written in _targets(text) if _mixes(source.value, unit)}
    if len(targets) != 1:
        return None
    [(target, written)] = targets.values()
    if source.value.units == target:
        return None  # `how many km` of a distance in km asks for no conversion
    given = factors[0].group(0) if factors else ""
    return Conversion(source.value, target, f"{source.written} in {written}", factor, given)


def check_conversion(goal: str, answer: str) -> AnswerCheck | None:
    """Whether `answer` states the goal's quantity converted as it asks; None when the goal asks no conversion.

    A verdict that judges nothing (`passed` None) is given when the converted value is a figure the goal
    already gives.
    """
    conversion = conversion_in(goal)
    if conversion is None:
        return None
    value = conversion.value()
    if value is None:
        return None
    shown = f"{value:.10g}"
    expression = conversion.written
    if conversion.factor_written:
        expression += f", taking {conversion.factor_written}"
    if states_number(goal, value):
        return AnswerCheck(None, f"{expression} = {shown} is a figure the goal gives", expression, shown)
    if states_number(answer, value):
        return AnswerCheck(True, f"the answer states {shown}, as {expression} gives", expression, shown)
    claimed = claimed_figures(answer, goal)
    said = ", ".join(f"{figure:.12g}" for figure in claimed) or "no figure of its own"
    why = f"the answer states {said}, but converted exactly, {expression} = {shown}"
    return AnswerCheck(False, why, expression, shown, claims=bool(claimed))


def _quantities(text: str) -> list[_Quantity]:
    """Each number of `text` written before a unit, as that quantity."""
    found = []
    for match in _QUANTITY.finditer(text):
        unit = _unit(match["unit"])
        if unit is None:
            continue
        number = float(match["number"].replace(",", ""))
        found.append(_Quantity(units.quantity(number, unit), match.group(0), match.start(), match.end()))
    return found


def _one_quantity(text: str, quantities: list[_Quantity]) -> _Quantity | None:
    """The one quantity the goal gives, maybe in parts (`3 hours and 20 minutes`); None for none or several."""
    if not quantities:
        return None
    whole = quantities[0]
    for part in quantities[1:]:
        between = text[whole.end : part.start]
        if not _JOINS.fullmatch(between) or not _smaller_part(whole.value, part.value):
            return None
        total = whole.value + part.value
        whole = _Quantity(total, text[whole.start : part.end], whole.start, part.end)
    return whole


def _smaller_part(whole: Any, part: Any) -> bool:
    """Whether `part` can follow `whole` in one quantity: the same kind, in a smaller unit, and no offsets."""
    if _offset(whole.units) or _offset(part.units) or not whole.is_compatible_with(part):
        return False
    return bool(units.quantity(1, part.units) < units.quantity(1, whole.units))


def _all_figures_read(text: str, spans: list[tuple[int, int]]) -> bool:
    """Whether every figure of `text` lies in one of `spans`: a goal with others asks for more than a conversion."""
    for match in re.finditer(_NUMBER, text):
        if not any(start <= match.start() < end for start, end in spans):
            return False
    return len(numbers_in(text)) > 0


def _targets(text: str) -> list[tuple[Any, str]]:
    """The units the goal asks for, each with the word that names it."""
    found = []
    for pattern in _TARGETS:
        for match in pattern.finditer(text):
            unit = _unit(match["unit"])
            if unit is not None:
                found.append((unit, match["unit"]))
    return found


def _factor(match: re.Match[str]) -> tuple[Any, float, Any] | None:
    one, other = _unit(match["one"]), _unit(match["other"])
    if one is None or other is None or _offset(one) or _offset(other):
        return None
    return one, float(match["factor"].replace(",", "")), other


def _unit(name: str) -> Any | None:
    """The unit `name` means, when it means one a quantity is measured in (not a word, not a plain ratio)."""
    first = re.match(r"[A-Za-z_]\w*", name)
    if first is None or first.group(0).lower() in _NOT_UNITS:
        return None
    unit = units.unit(name)
    if unit is None:
        unit = units.unit(first.group(0))  # `hours long`, `grams is`: the unit is the first word
    if unit is None or unit.dimensionless:
        return None
    return unit


def _mixes(source: Any, unit: Any) -> bool:
    return bool(source.is_compatible_with(unit))


def _same(unit: Any, other: Any) -> int:
    """1 when `unit` and `other` are one unit, else 0: a score for the way a factor is read."""
    return int(unit == other)


def _offset(unit: Any) -> bool:
    """Whether `unit` starts from its own zero (degC, degF), so that its quantities do not add."""
    return bool(units.quantity(0, unit).to_base_units().magnitude != 0)
