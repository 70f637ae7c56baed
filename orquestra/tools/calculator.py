"""Arithmetic and math expressions, evaluated without any I/O or access to Python objects, within bounds.

A calculation runs in a thread of its own (see `orquestra.tools.toolbox`), and a thread cannot be stopped:
so the calculator refuses, before it starts, any step whose result would be too large to be worth computing.
Numbers have at most `MAX_DIGITS` digits, `factorial` and `round` take arguments that keep them there, an
expression has at most `MAX_EXPRESSION_CHARS` characters, and text is not a value at all (so there is no
string repetition or formatting to blow up). Each refusal is a `ToolError` whose message goes to the model.

Quantities may carry units (`(3 hours + 20 minutes) in seconds`; see `orquestra.tools.units`): an
expression that names a word the calculator does not know is read with unit names.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from simpleeval import DEFAULT_OPERATORS, InvalidExpression, NameNotDefined, SimpleEval

from orquestra.exceptions import ToolError
from orquestra.tools import units
from orquestra.tools.context import ToolContext, quoted

MAX_DIGITS = 4_300
"""The most digits of any whole number the calculator computes, as a result or on the way to one (Python's
own limit for turning a number into text)."""
MAX_EXPRESSION_CHARS = 2_000
"""The longest expression evaluated."""


class _TooLarge(ArithmeticError):
    """A step whose result would have more than `MAX_DIGITS` digits."""


_DIGITS_PER_BIT = math.log10(2)


def _digits(bits: float) -> int:
    return int(bits * _DIGITS_PER_BIT) + 1


def _refuse(what: str, bits: float) -> _TooLarge:
    return _TooLarge(f"{what} would have about {_digits(bits)} digits; the calculator works with at most {MAX_DIGITS}")


def _power(base: Any, exponent: Any) -> Any:
    """`base ** exponent`, unless the result is a whole number too long to compute quickly."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if _digits(bits) > MAX_DIGITS:
            raise _refuse(f"{_short(base)} ** {_short(exponent)}", bits)
    return operator.pow(base, exponent)


def _product(left: Any, right: Any) -> Any:
    """`left * right`, unless the product is a whole number too long to compute quickly."""
    _bound_product(left, right)
    return operator.mul(left, right)


def _bound_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if _digits(bits) > MAX_DIGITS:
            raise _refuse("the product", bits)


def _left_shift(value: Any, shift: Any) -> Any:
    """`value << shift`, unless the result is too long to compute quickly."""
    if isinstance(value, int) and isinstance(shift, int) and shift > 0:
        bits = value.bit_length() + shift
        if _digits(bits) > MAX_DIGITS:
            raise _refuse(f"{_short(value)} << {_short(shift)}", bits)
    return operator.lshift(value, shift)


def _factorial(value: Any) -> Any:
    """`math.factorial`, for arguments whose factorial has at most `MAX_DIGITS` digits."""
    if isinstance(value, int) and value > 1:
        bits = math.lgamma(value + 1) / math.log(2)
        if _digits(bits) > MAX_DIGITS:
            raise _refuse(f"factorial({_short(value)})", bits)
    return math.factorial(value)


def _round(value: Any, ndigits: Any = None) -> Any:
    """`round`, refusing a number of places so large that Python would build a power of ten that long."""
    if isinstance(ndigits, int) and abs(ndigits) > MAX_DIGITS:
        raise _TooLarge(f"round to {_short(ndigits)} places: the calculator works up to {MAX_DIGITS} digits")
    return round(value) if ndigits is None else round(value, ndigits)


def _short(number: int) -> str:
    """A whole number as text short enough for a message (Python refuses to write very long ones)."""
    if number.bit_length() < 64:
        return str(number)
    return f"a number of about {_digits(number.bit_length())} digits"


def _unit_power(base: Any, exponent: Any) -> Any:
    """`base ** exponent` where `base` may carry a unit: a unit only to a small power."""
    if units.is_quantity(base) or units.is_unit(base):
        if isinstance(exponent, int | float) and abs(exponent) > units.MAX_UNIT_POWER:
            raise _TooLarge(f"a unit to the power {exponent}: the calculator takes at most {units.MAX_UNIT_POWER}")
        magnitude = getattr(base, "magnitude", 1)
        _power(magnitude, exponent)  # refuses a magnitude too large, as for a plain number
    return _power(base, exponent)


def _unit_product(left: Any, right: Any) -> Any:
    """`left * right` where a plain number times a unit is that quantity (also 77 degF, which has an offset)."""
    if isinstance(left, int | float) and units.is_unit(right):
        return units.quantity(left, right)
    if isinstance(right, int | float) and units.is_unit(left):
        return units.quantity(right, left)
    _bound_product(getattr(left, "magnitude", left), getattr(right, "magnitude", right))
    return operator.mul(left, right)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name) for name in ("sqrt", "log", "log10", "log2", "exp", "sin", "cos", "tan", "floor", "ceil")
} | {"factorial": _factorial, "abs": abs, "round": _round, "min": min, "max": max}

# A right shift only makes a number smaller: simpleeval's own bound on it (no base above 1e308) is not needed.
_OPERATORS = DEFAULT_OPERATORS | {
    ast.Add: operator.add,  # simpleeval's own bounds the length of text and lists, which are not values here
    ast.Pow: _power,
    ast.Mult: _product,
    ast.LShift: _left_shift,
    ast.RShift: operator.rshift,
}

# Arithmetic only: names, numbers, operators, comparisons, conditionals and the functions above. Attributes,
# subscripts and f-strings reach Python objects and their methods ('x'.ljust(10**9)); they are not needed.
_ARITHMETIC = (ast.Name, ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.keyword)


_CONSTANTS = {"pi": math.pi, "e": math.e}
_UNIT_OPERATORS = _OPERATORS | {ast.Pow: _unit_power, ast.Mult: _unit_product}
_KNOWN_WORDS = set(_FUNCTIONS) | set(_CONSTANTS) | {"if", "else", "and", "or", "not", "True", "False"}


def _evaluator(with_units: bool) -> SimpleEval:
    """A fresh evaluator: calls run in threads, possibly at once, and an evaluator keeps per-call state."""
    if with_units:
        evaluator = SimpleEval(operators=_UNIT_OPERATORS, functions=_FUNCTIONS, names=_name_or_unit)
    else:
        evaluator = SimpleEval(operators=_OPERATORS, functions=_FUNCTIONS, names=_CONSTANTS)
    evaluator.nodes = {node: evaluator.nodes[node] for node in _ARITHMETIC} | {ast.Constant: _number}
    return evaluator


def _tree(text: str) -> ast.Expression | None:
    """`text`'s syntax tree, or None when it is not Python (`3 hours` has units; `2 +` is refused later)."""
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _names_in(tree: ast.Expression | None, text: str) -> set[str]:
    """The names `text` uses: of its syntax `tree` when it has one (not words in quotes), else its words."""
    if tree is None:
        return units.words(text)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _name_or_unit(node: ast.Name) -> Any:
    if node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    found = units.unit(node.id)
    if found is None:
        raise NameNotDefined(node.id, "")
    return found


def _number(node: ast.Constant) -> Any:
    if isinstance(node.value, str | bytes):
        raise InvalidExpression(f"{quoted(str(node.value))} is text; the calculator works with numbers only")
    return node.value


def calculate(context: ToolContext, expression: str) -> str:
    """Evaluate `expression` (numbers, + - * / // % **, parentheses, math functions) and return the value.

    Written the way people (and small models) write sums, it is read as they mean it: `$4.25 * 3`,
    `15% of 64.80`, `1,200 × 3`, `2^10`, `12 * 7 = 84` (the left side). Results are rounded to 12
    significant digits, so that 64.80 * 0.15 reads 9.72 and not 9.719999999999999.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(
            f"cannot evaluate an expression of {len(expression)} characters: the calculator takes at most"
            f" {MAX_EXPRESSION_CHARS}; split it into smaller steps"
        )
    text = normalise(expression)
    tree = _tree(text)
    with_units = bool(_names_in(tree, text) - _KNOWN_WORDS)
    try:
        wanted = None
        if with_units:
            text, wanted = units.split_target(units.read_phrases(text))
            text = units.read_quantities(text, _KNOWN_WORDS)
            unknown = sorted(word for word in units.words(text) - _KNOWN_WORDS if units.unit(word) is None)
            if unknown:
                raise ToolError(
                    f"cannot evaluate {quoted(expression)}: {', '.join(map(quoted, unknown))} is not a number,"
                    " a function or a unit the calculator knows"
                )
        if with_units or tree is None:  # the text read with units, or parsed again to say why it is not Python
            tree = ast.parse(text, mode="eval")
        value = _evaluator(with_units).eval("", previously_parsed=tree.body)
        if with_units:
            value = units.convert(value, wanted)
        text = _text(value)
    except RecursionError:
        raise ToolError(f"cannot evaluate {quoted(expression)}: it is nested too deeply; split it into steps") from None
    except (InvalidExpression, SyntaxError, ArithmeticError, TypeError, ValueError, MemoryError) as error:
        raise ToolError(f"cannot evaluate {quoted(expression)}: {error}") from None
    except units.errors() as error:  # a unit Pint does not know, or one that does not convert to the other
        raise ToolError(f"cannot evaluate {quoted(expression)}: {error}") from None
    return text


def _text(value: Any) -> str:
    """The value as the model reads it: floats to 12 significant digits, whole floats without '.0'."""
    if units.is_quantity(value):
        return f"{_text(value.magnitude)} {value.units}"
    if isinstance(value, int) and _digits(value.bit_length()) > MAX_DIGITS:
        raise _refuse("the result", value.bit_length())
    if isinstance(value, float) and math.isfinite(value):
        value = float(f"{value:.12g}")
        if value.is_integer() and abs(value) < 1e15:
            value = int(value)
    return str(value)


_SYMBOLS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "^": "**", "$": None, "€": None, "£": None})
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_PERCENT_OVER_100 = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*/\s*100(?![\d.])")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\d(.])")
_OF = re.compile(r"(?<=[\d)])\s+of\s+(?=[\d(])", re.IGNORECASE)
_CALL = re.compile(r"[A-Za-z_]\w*\s*\(")


def normalise(expression: str) -> str:
    """`expression` in the calculator's own syntax: currency signs, separators, percentages and 'of' read."""
    text = expression.translate(_SYMBOLS).strip()
    left, equals, _ = text.partition("=")
    if equals and not text.startswith("=") and "==" not in text:
        text = left  # "12 * 7 = 84": the sum, not the claim about it
    if not _CALL.search(text):  # inside max(1,200) a comma separates arguments
        text = _THOUSANDS.sub(lambda match: match.group(1).replace(",", ""), text)
    text = _PERCENT_OVER_100.sub(r"\1 / 100", text)  # "15% / 100": the sign and the division say it twice
    text = _PERCENT.sub(r"(\1/100)", text)
    return _OF.sub(" * ", text)
