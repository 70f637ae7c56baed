"""Sandboxed Jinja with bounds: a template, a `run_if` or a `map` expression ends soon, with output of a sane size.

Jinja's sandbox keeps templates away from Python's internals, but not from work: ``{{ (9**9)**(9**9) }}``,
``{{ 'x' * 10**10 }}`` or three nested loops over a long output run for hours or exhaust memory.
`BoundedEnvironment` bounds every way a template can make work, by `TemplateLimits`:

- **steps**: each loop iteration, call (of a macro, a method) and filter is a step; a render takes at most
  `max_steps`, and stops once `max_seconds` have passed (the clock is read at every step);
- **sizes**: ``*``, ``**``, ``+``, ``%``, ``~``, the filters and methods that grow text (``center``, ``indent``,
  ``join``, ``replace``, ``format``...) are checked *before* they run: no value, and no rendered output, may pass
  `max_chars` characters, and no integer may pass Python's digit limit (4,300 digits). A format's size counts
  each of its fields as long as the value it shows (``('%(a)s' * 100000) % {'a': long_text}`` is refused), and
  ``sum`` adds numbers only (summing lists copies the total once per item);
- **depth**: macros (and recursive loops) nest at most `max_call_depth` calls deep.

A template also sees no globals (no ``range``, ``lipsum``, ``cycler``, ``joiner``, ``namespace``, ``dict``): only
the variables it is given. A bound broken is a `TemplateLimitError`, a `jinja2.TemplateError` like any other.
Render through `Template.render` or `evaluate`: both run under a fresh budget.
"""

from __future__ import annotations

import math
import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from io import StringIO
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Template
from jinja2.exceptions import TemplateRuntimeError
from jinja2.idtracking import VAR_LOAD_RESOLVE
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_INT_BITS = int(_INT_DIGITS * math.log2(10))
"""The largest integer (in bits) a template may make: Python refuses to print longer ones."""


@dataclass(frozen=True)
class TemplateLimits:
    """The most one render (or one expression) may do."""

    max_chars: int = 1_000_000
    """Characters of the rendered text, and of any one value a template makes."""
    max_steps: int = 100_000
    """Loop iterations, calls and filters."""
    max_seconds: float = 2.0
    """Wall time."""
    max_call_depth: int = 30
    """Macro calls (and recursive loops) inside one another."""


class TemplateLimitError(TemplateRuntimeError):
    """A template that would break one of its `TemplateLimits`."""


@dataclass
class _Budget:
    limits: TemplateLimits
    steps: int = 0
    depth: int = 0
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.limits.max_seconds

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise TemplateLimitError(f"the template takes more than {self.limits.max_steps:,} steps")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"the template runs longer than {self.limits.max_seconds:g} s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("orquestra_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # also what makes Jinja's compile-time constant folding leave bounded work to run time
        raise TemplateLimitError("a bounded template runs only through render() or evaluate()")
    return budget


# ---------------------------------------------------------------------------------------------- sizes


def text_size(value: Any, limit: int) -> int:
    """About how many characters ``str(value)`` has, counted no further than just past `limit`.

    Nothing is converted: a list that holds the same long text a million times is measured, not printed.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bytes | bytearray):
            total += 4 * len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += len(str(item))
    return total


def _refuse_text(size: int, limits: TemplateLimits, what: str) -> None:
    if size > limits.max_chars:
        raise TemplateLimitError(f"{what} would pass {limits.max_chars:,} characters")


def _check_value(value: Any, limits: TemplateLimits, what: str) -> Any:
    """`value`, if its length (of text or items) is within the limit."""
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset | Mapping):
        _refuse_text(len(value), limits, what)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _INT_BITS:
        raise TemplateLimitError(f"{what} would pass {_INT_DIGITS:,} digits")
    return value


def _check_binop(operator: str, left: Any, right: Any, limits: TemplateLimits) -> None:
    ints = all(isinstance(side, int) for side in (left, right))
    if operator == "**" and ints and right > 1 and abs(left) > 1 and right * math.log2(abs(left)) > _INT_BITS:
        raise TemplateLimitError(f"'**' would make an integer of more than {_INT_DIGITS:,} digits")
    if operator == "*":
        if ints and abs(left).bit_length() + abs(right).bit_length() > _INT_BITS:
            raise TemplateLimitError(f"'*' would make an integer of more than {_INT_DIGITS:,} digits")
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int):
                _refuse_text(len(sequence) * times, limits, "'*'")
    if operator == "+" and all(isinstance(side, str | bytes | list | tuple) for side in (left, right)):
        _refuse_text(len(left) + len(right), limits, "'+'")
    if operator == "%" and isinstance(left, str):
        _check_percent_format(left, limits)
        _refuse_text(_percent_format_size(left, right, limits.max_chars), limits, "'%'")


# One conversion of a ``%`` format: its mapping key, width, precision and conversion character.
_PERCENT_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _check_percent_format(text: str, limits: TemplateLimits) -> None:
    """Refuse a ``%`` format whose width or precision would make a text longer than the limit."""
    for match in _PERCENT_SPEC.finditer(text):
        for number in match.group(2, 3):
            if number == "*":
                raise TemplateLimitError("a '%' format may not take its width from an argument ('*')")
            if number is not None:
                _refuse_text(int(number), limits, "a '%' format's width")


def _percent_format_size(text: str, values: Any, limit: int) -> int:
    """About how long ``text % values`` is: its own text, and each conversion as long as its value or width.

    A key (``%(a)s``) may be used any number of times, so the size is counted per conversion, not per value.
    """
    positional = values if isinstance(values, tuple) else (values,)
    size, index = len(text), 0
    for match in _PERCENT_SPEC.finditer(text):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        if key is not None:
            value = values.get(key) if isinstance(values, Mapping) else None
        else:
            value = positional[index] if index < len(positional) else None
            index += 1
        widths = [int(number) for number in (width, precision) if number not in (None, "*")]
        size += max([text_size(value, limit), *widths])
        if size > limit:
            break
    return size


def _check_brace_format(text: str, limits: TemplateLimits) -> None:
    """Refuse a ``str.format`` text whose field widths would make a text longer than the limit."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format raises the same error, with its own message
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise TemplateLimitError("a format field may not take its width from an argument")
        for number in re.findall(r"\d+", spec or ""):
            _refuse_text(int(number), limits, "a format field's width")


def _brace_format_size(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> int:
    """About how long ``text.format(*args, **kwargs)`` is: its own text, and each field as long as its value.

    A field that picks a part of its value (``{0[1]}``, ``{a.b}``) is counted as long as the whole value.
    """
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return len(text)  # str.format raises the same error, with its own message
    size, automatic = 0, 0
    for literal, name, spec, _ in fields:
        size += len(literal)
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base.isdigit() or base == "":
            position = int(base) if base else automatic
            automatic += not base
            value = args[position] if position < len(args) else None
        else:
            value = kwargs.get(base)
        widths = [int(number) for number in re.findall(r"\d+", spec or "")]
        size += max([text_size(value, limit), *widths])
        if size > limit:
            break
    return size


# Filters and str methods that can make a text much longer than their inputs, with the size they would make.


def _grown_size(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> int:
    """About how long the result of filter or method `name` on `value` is; 0 for those that do not grow text."""
    text = value if isinstance(value, str) else ""

    def argument(position: int, key: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(key, default)

    if name in ("center", "ljust", "rjust", "zfill"):
        width = argument(0, "width", 80)
        return max(len(text), width) if isinstance(width, int) else 0
    if name == "indent":
        width = argument(0, "width", 4)
        prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        return len(text) + prefix * (text.count("\n") + 1)
    if name == "expandtabs":
        tabsize = argument(0, "tabsize", 8)
        return len(text) + text.count("\t") * tabsize if isinstance(tabsize, int) else 0
    if name == "replace":
        old, new = argument(0, "old", None), argument(1, "new", None)
        if not isinstance(old, str) or not isinstance(new, str):
            return 0
        count = len(text) + 1 if old == "" else text.count(old)
        most = argument(2, "count", None)
        if isinstance(most, int) and most >= 0:
            count = min(count, most)
        return len(text) + count * max(len(new) - len(old), 0)
    if name == "wordwrap":
        width = argument(0, "width", 79)
        wrap = argument(2, "wrapstring", None)
        breaks = len(text) // max(width, 1) + text.count(" ") + 1 if isinstance(width, int) else 0
        return len(text) + breaks * (len(wrap) if isinstance(wrap, str) else 1)
    if name == "translate":
        table = argument(0, "table", None)
        longest = (
            max((len(item) for item in table.values() if isinstance(item, str)), default=1)
            if isinstance(table, Mapping)
            else 1
        )
        return len(text) * longest
    if name == "tojson":
        indent = argument(0, "indent", None)
        return text_size(value, limit) * (1 + (indent if isinstance(indent, int) and indent > 0 else 0))
    return 0


def _joined_size(separator: str, items: list[Any], limit: int) -> int:
    return len(separator) * max(len(items) - 1, 0) + text_size(items, limit)


# Filters whose result is the text of their value: measured before the text is made.
_STRINGIFYING = frozenset(
    "capitalize center e escape forceescape format indent lower pprint replace safe string striptags title tojson "
    "trim truncate upper urlencode urlize wordcount wordwrap xmlattr".split()
)

# Filters that take a count of items to make: ``batch(10**9, fill_with=0)`` would fill a list that long.
_COUNTING = {"batch": ("linecount", 0), "slice": ("slices", 0)}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, the filter called `name`, as one step of the budget with its sizes checked."""
    passes_state = hasattr(function, "jinja_pass_arg")  # its first argument is the context or the environment

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        limits = budget.limits
        state, (value, *rest) = (args[:1], args[1:]) if passes_state else ((), args)
        what = f"the filter '{name}'"
        if name in _STRINGIFYING:
            _refuse_text(text_size(value, limits.max_chars), limits, what)
        if name == "join":
            value = list(value)  # a generator is read once here, so that it can be measured
            separator = rest[0] if rest else kwargs.get("d", "")
            _refuse_text(
                _joined_size(separator if isinstance(separator, str) else "", value, limits.max_chars), limits, what
            )
        if name == "format" and isinstance(value, str):
            _check_percent_format(value, limits)
            _refuse_text(_percent_format_size(value, kwargs or tuple(rest), limits.max_chars), limits, what)
        if name == "sum":
            start = rest[1] if len(rest) > 1 else kwargs.get("start", 0)
            if not isinstance(start, int | float):
                raise TemplateLimitError(f"{what} adds numbers only (a start of {type(start).__name__} is refused)")
        if name in _COUNTING:
            key, position = _COUNTING[name]
            count = rest[position] if len(rest) > position else kwargs.get(key, 0)
            if isinstance(count, int):
                _refuse_text(count, limits, what)
        _refuse_text(_grown_size(name, value, tuple(rest), kwargs, limits.max_chars), limits, what)
        return _check_value(function(*state, value, *rest, **kwargs), limits, what)

    return bounded


# ---------------------------------------------------------------------------------------------- code generation


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with each ``for`` loop's items counted and each ``~`` measured.

    It also notes the names the template reads from its variables (what `jinja2.meta` finds by running a code
    generator of its own), so that checking and compiling a template take one pass (see `generate`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.undeclared: set[str] = set()

    def enter_frame(self, frame: Frame) -> None:
        """Enter `frame` as Jinja does, noting the names it resolves from the variables (as `jinja2.meta`)."""
        super().enter_frame(frame)
        self.undeclared.update(
            param
            for action, param in frame.symbols.loads.values()
            if action == VAR_LOAD_RESOLVE and param not in self.environment.globals
        )

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        """Iterate through `BoundedEnvironment.bounded_items`, so that each iteration is a step."""
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("bounded_items"), [node.iter], [], None, None, lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """Join through `BoundedEnvironment.bounded_concat`, which measures the parts first."""
        self.write("environment.bounded_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class BoundedTemplate(Template):
    """A template whose `render` runs under a fresh budget of its environment's limits."""

    environment: BoundedEnvironment

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render as Jinja does, within the environment's `TemplateLimits`."""
        with self.environment.budget():
            return super().render(*args, **kwargs)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox without globals, whose templates and expressions keep to `limits`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator
    template_class = BoundedTemplate

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self.limits = limits or TemplateLimits()
        self.globals.clear()  # only the variables a template is given: what the load-time checks know of
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items()}
        self.finalize = self._finalize
        self.policies["json.dumps_function"] = _dumps

    @contextmanager
    def budget(self) -> Iterator[None]:
        """Run what is inside under a fresh budget of `limits` (a render, an expression)."""
        token = _BUDGET.set(_Budget(self.limits))
        try:
            yield
        finally:
            _BUDGET.reset(token)

    def generate(self, tree: nodes.Template) -> tuple[str, set[str]]:
        """The Python source of a parsed template, and the names it reads from its variables, in one pass.

        What `compile` does before Python's compiler runs (`from_code` finishes the work), with the names that
        `jinja2.meta.find_undeclared_variables` would take a second pass to find. The pass may rewrite `tree`
        (each loop gets wrapped): generate a tree once.
        """
        stream = StringIO()
        generator = _BoundedCodeGenerator(self, None, None, stream, optimized=self.optimized)
        generator.visit(tree)
        return stream.getvalue(), generator.undeclared

    def from_code(self, code: str) -> Template:
        """The template of the source `generate` made, as `from_string` makes it after generating."""
        return self.template_class.from_code(self, self._compile(code, "<template>"), self.make_globals(None), None)

    def evaluate(self, expression: Callable[..., Any], variables: Mapping[str, Any]) -> Any:
        """The value of an expression from `compile_expression`, within `limits`; never an undefined value."""
        with self.budget():
            value = expression(**variables)
            if isinstance(value, Undefined):
                str(value)  # a strict undefined raises the error that says why (``'' | first``: no first item)
            return value

    # ---------------------------------------------------------------- hooks of the sandbox

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply an arithmetic operator once its result is known to fit."""
        _check_binop(operator, left, right, self.limits)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a macro, a method or a loop as one step, its result checked; macros nest only so deep."""
        budget = _budget()
        budget.step()
        limits = budget.limits
        name = getattr(__obj, "__name__", "")
        owner = getattr(__obj, "__self__", None)
        what = f"the call of '{name or type(__obj).__name__}'"
        if isinstance(owner, str | bytes):
            if name == "join" and args:
                items = list(args[0])
                args = (items, *args[1:])
                _refuse_text(
                    _joined_size(owner if isinstance(owner, str) else "", items, limits.max_chars), limits, what
                )
            else:
                _refuse_text(_grown_size(name, owner, args, kwargs, limits.max_chars), limits, what)
        if budget.depth >= limits.max_call_depth:
            raise TemplateLimitError(f"calls nest more than {limits.max_call_depth} deep")
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _check_value(result, limits, what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's ``str.format`` (and ``format_map``), refusing what would make a text too long."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text, limits, is_map = value.__self__, self.limits, value.__name__ == "format_map"
        _check_brace_format(text, limits)

        @wraps(wrapper)
        def bounded(*args: Any, **kwargs: Any) -> str:
            fields = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            size = _brace_format_size(text, () if is_map else args, fields, limits.max_chars)
            _refuse_text(size, limits, f"the call of '{value.__name__}'")
            return wrapper(*args, **kwargs)

        return bounded

    # ---------------------------------------------------------------- hooks of the code generator

    def bounded_items(self, items: Iterable[Any]) -> Iterator[Any]:
        """The items of a ``for`` loop, each one a step."""
        for item in items:
            _budget().step()
            yield item

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: the texts of `parts` joined, once their length is known to fit."""
        _refuse_text(text_size(parts, self.limits.max_chars), self.limits, "'~'")
        return "".join(str(part) for part in parts)

    def concat(self, parts: Iterable[str]) -> str:
        """Join rendered text (a template's, a macro's, a block's), refusing it once it passes the limit."""
        total = 0
        kept: list[str] = []
        for part in parts:
            total += len(part)
            _refuse_text(total, self.limits, "the rendered text")
            kept.append(part)
        return "".join(kept)

    def _finalize(self, value: Any) -> Any:
        """Each ``{{ value }}`` is measured before it becomes text."""
        _refuse_text(text_size(value, self.limits.max_chars), self.limits, "an output")
        return value


def _dumps(value: Any, **options: Any) -> str:
    """``tojson`` for the read-only views templates see (`orquestra.frozen`): they are written as objects."""
    import json

    return json.dumps(value, default=_plain, **options)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, frozenset | set):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


__all__ = ["BoundedEnvironment", "BoundedTemplate", "TemplateLimitError", "TemplateLimits", "text_size"]
