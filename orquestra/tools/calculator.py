"""Arithmetic and math expressions, evaluated without any I/O or access to Python objects."""

from __future__ import annotations

import math

from simpleeval import InvalidExpression, SimpleEval

from orquestra.tools.context import ToolContext, ToolError

_FUNCTIONS = {
    name: getattr(math, name)
    for name in ("sqrt", "log", "log10", "log2", "exp", "sin", "cos", "tan", "floor", "ceil", "factorial")
} | {"abs": abs, "round": round, "min": min, "max": max}

_evaluator = SimpleEval(functions=_FUNCTIONS, names={"pi": math.pi, "e": math.e})


def calculate(context: ToolContext, expression: str) -> str:
    """Evaluate `expression` (numbers, + - * / // % **, parentheses, math functions) and return the value."""
    try:
        value = _evaluator.eval(expression)
    except (InvalidExpression, SyntaxError, ArithmeticError, TypeError, ValueError) as error:
        raise ToolError(f"cannot evaluate '{expression}': {error}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)
