"""Arithmetic and math expressions, evaluated without any I/O or access to Python objects."""

from __future__ import annotations

import math
import re

from simpleeval import InvalidExpression, SimpleEval

from orquestra.tools.context import ToolContext, ToolError

_FUNCTIONS = {
    name: getattr(math, name)
    for name in ("sqrt", "log", "log10", "log2", "exp", "sin", "cos", "tan", "floor", "ceil", "factorial")
} | {"abs": abs, "round": round, "min": min, "max": max}

_evaluator = SimpleEval(functions=_FUNCTIONS, names={"pi": math.pi, "e": math.e})


def calculate(context: ToolContext, expression: str) -> str:
    """Evaluate `expression` (numbers, + - * / // % **, parentheses, math functions) and return the value.

    Written the way people (and small models) write sums, it is read as they mean it: `$4.25 * 3`,
    `15% of 64.80`, `1,200 × 3`, `2^10`, `12 * 7 = 84` (the left side). Results are rounded to 12
    significant digits, so that 64.80 * 0.15 reads 9.72 and not 9.719999999999999.
    """
    try:
        value = _evaluator.eval(normalise(expression))
    except (InvalidExpression, SyntaxError, ArithmeticError, TypeError, ValueError) as error:
        raise ToolError(f"cannot evaluate '{expression}': {error}") from None
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
