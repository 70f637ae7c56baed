"""Quantities with units for the calculator: `(3 hours + 20 minutes) in seconds`, `77 degF in degC`.

Small models convert units badly in their heads (`3*60+20` seconds for 3 hours 20 minutes) but write the
quantities themselves well. So the calculator reads unit names as Pint's units and does the conversion:
a number written before a unit is that quantity (`100 km / 2.5 h` is `(100 km) / (2.5 h)`, as people mean
it), and a unit after a final `in` or `to` is the unit of the result. Pint is imported on first use only:
its registry takes a noticeable part of a second to build.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pint

MAX_UNIT_POWER = 12
"""The highest power a quantity with a unit is raised to: beyond it no unit means anything."""

# Words people write around unit names that Pint spells otherwise.
_PHRASES = [
    (re.compile(r"\bdeg(?:ree)?s?\s+(?:c|celsius|centigrade)\b", re.IGNORECASE), "degC"),
    (re.compile(r"\bdeg(?:ree)?s?\s+(?:f|fahrenheit)\b", re.IGNORECASE), "degF"),
    (re.compile(r"\b(?:celsius|centigrade)\b", re.IGNORECASE), "degC"),
    (re.compile(r"\bfahrenheit\b", re.IGNORECASE), "degF"),
    (re.compile(r"\bU\.?S\.?\s+(?=(?:liquid\s+)?(?:gallon|quart|pint|cup|fluid)\w*)"), ""),  # Pint's are the US ones
    (re.compile(r"\bfluid\s+ounces?\b", re.IGNORECASE), "fluid_ounce"),
    (re.compile(r"\bimperial\s+(gallon|quart|pint)s?\b", re.IGNORECASE), r"imperial_\1"),
    (re.compile(r"\b(?:sq\.?|square)\s+([A-Za-z_]\w*)", re.IGNORECASE), r"\1**2"),
    (re.compile(r"\bcubic\s+([A-Za-z_]\w*)", re.IGNORECASE), r"\1**3"),
    (re.compile(r"\s+per\s+", re.IGNORECASE), " / "),
]
_WORD = re.compile(r"[A-Za-z_]\w*")
# A number followed by a word: the quantity, when the word is a unit (possibly to a power); not an exponent.
_QUANTITY = re.compile(
    r"(?<![\w.])(?<!\*\*)(?<!\*\* )(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([A-Za-z_]\w*(?:\s*\*\*\s*\d+)?)"
)
# "... in seconds", "... to km/h": the unit of the result, at the very end.
_TARGET = re.compile(r"^(?P<body>.*\S)\s+(?:in|to|into|as)\s+(?P<unit>[A-Za-z_][\w\s/*.()]*?)\s*$", re.DOTALL)


@cache
def registry() -> pint.UnitRegistry[Any]:
    """The one registry of units, built on first use (each one has its own units, which do not mix)."""
    import pint

    return pint.UnitRegistry()


def errors() -> tuple[type[Exception], ...]:
    """What Pint raises for a unit it does not know or a conversion between kinds that do not match."""
    import pint

    return (pint.PintError,)


def _unreadable() -> tuple[type[Exception], ...]:
    """What Pint raises for a name it cannot read as a unit."""
    return (*errors(), ValueError, TypeError, AttributeError, SyntaxError)


def unit(name: str) -> Any | None:
    """The unit `name` means (`metres`, `km`, `degF`), or None when it is not a unit."""
    try:
        return registry().Unit(name)
    except _unreadable():
        return None


def is_unit(value: Any) -> bool:
    """Whether `value` is a unit (`metre`) rather than a quantity of one."""
    pint = _pint_if_loaded()
    return pint is not None and isinstance(value, pint.Unit)


def is_quantity(value: Any) -> bool:
    """Whether `value` is a number with a unit."""
    pint = _pint_if_loaded()
    return pint is not None and isinstance(value, pint.Quantity)


def _pint_if_loaded() -> Any | None:
    """Pint, if something has imported it, else None.

    Until then no value can be one of its units or quantities, and a plain sum (`2 + 3`) must not pay for
    importing it.
    """
    return sys.modules.get("pint")


def quantity(number: Any, of: Any) -> Any:
    """`number` of the unit `of`: also for units with an offset (77 degF), which Pint does not multiply."""
    return registry().Quantity(number, of)


def split_target(text: str) -> tuple[str, Any | None]:
    """`text` without a final `in UNIT` or `to UNIT`, and that unit (None when there is no such ending)."""
    match = _TARGET.match(text)
    if match is None:
        return text, None
    wanted = _units(read_phrases(match["unit"]))
    if wanted is None and _WORD.fullmatch(match["unit"].strip()):
        return match["body"], None  # `(95.40 / 3) in dollars`: a word that names no unit is the answer's label
    if wanted is None:
        return text, None
    return match["body"], wanted


def _units(text: str) -> Any | None:
    try:
        return registry().parse_units(text.strip())
    except _unreadable():
        return None


def read_phrases(text: str) -> str:
    """Unit phrases in Pint's names: `degrees Celsius` is degC, `square metres` metres**2, `per` a division."""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


def read_quantities(text: str, known: set[str]) -> str:
    """`text` with each number written before a unit bracketed with it: `100 km / 2.5 h` → `(100*km) / (2.5*h)`.

    A number before a word that is no unit counts things (`36 apples`): the word goes. Words in `known`
    (the calculator's own functions and constants) are left as they are.
    """

    def bracket(match: re.Match[str]) -> str:
        word = _WORD.match(match.group(2))
        assert word is not None
        if word.group(0) in known:
            return match.group(0)
        if unit(word.group(0)) is None:
            return match.group(1)  # `6 cakes`: a count of things that are not a unit is the number
        return f"({match.group(1)}*{match.group(2)})"

    return _QUANTITY.sub(bracket, text)


def words(text: str) -> set[str]:
    """The words of `text` that could name a unit."""
    return set(_WORD.findall(text))


def convert(value: Any, wanted: Any | None) -> Any:
    """`value` in the unit `wanted` (a plain number stays as it is), or a plain number when no unit is left."""
    if is_unit(value):
        value = quantity(1, value)
    if not is_quantity(value):
        return value
    if wanted is not None:
        value = value.to(wanted)
    if value.dimensionless:
        return value.to("dimensionless").magnitude
    return value
