"""Property-based tests over tool arguments: generated, not listed.

Whatever a model sends (an expression, a path, content, arguments of any JSON shape, a call written as text),
a tool answers with text or a `ToolError`, never another exception, and every case ends within `WALL`
seconds: each runs in a daemon thread the test waits on for no longer, so a hang fails the test instead of
stalling the suite.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orquestra import Registry
from orquestra.models import ToolCall
from orquestra.store_files import TextFiles
from orquestra.tools import ToolContext, ToolError
from orquestra.tools.calculator import calculate
from orquestra.tools.context import ToolLimits
from orquestra.tools.files import read_file, write_file
from orquestra.tools.textcalls import read_text_calls
from orquestra.tools.toolbox import Toolbox, argument_chars

from .helpers import within_wall

T = TypeVar("T")

FUZZ = settings(
    max_examples=150,
    deadline=None,  # the wall bound below is what fails a slow case, and it also stops a hung one
    database=None,  # no example files left in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------- strategies

# Numbers that make work large (a big base, a big exponent, a factorial's argument) weigh as much as any others.
_LARGE = st.sampled_from(["9", "99", "4000000", "10**7", "2**64", "1e308", "-10**6", "'x'", "'%099999999d'"])
_NUMBERS = st.one_of(
    _LARGE,
    _LARGE,
    st.integers(min_value=-1_000, max_value=1_000).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["0", "1", "2", "0.5", "1j", "pi", "e", "True", "None"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
_OPERATORS = ["**", "**", "*", "*", "<<", "+", "-", "/", "//", "%", "^", ">>", "&", "|", "<", "==", " of "]
_FUNCTIONS = ["factorial", "factorial", "round", "sqrt", "log", "exp", "abs", "min", "max", "floor", "undefined"]


def _expressions() -> st.SearchStrategy[str]:
    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        operation = st.tuples(inner, st.sampled_from(_OPERATORS), inner).map(lambda parts: "".join(parts))
        call = st.tuples(st.sampled_from(_FUNCTIONS), st.lists(inner, min_size=1, max_size=3)).map(
            lambda call: f"{call[0]}({', '.join(call[1])})"
        )
        wrapped = st.tuples(st.sampled_from(["({})", "-{}", "{}%"]), inner).map(lambda shape: shape[0].format(shape[1]))
        return st.one_of(operation, operation, operation, call, call, wrapped)

    return st.recursive(_NUMBERS, grow, max_leaves=12)


_SUM_TEXT = st.text(alphabet=" 0123456789.,%$€×÷^()+-*/=ofxe", max_size=2_500)
"""Text of the characters the calculator's normaliser rewrites: its patterns must not backtrack for long."""

_PATHS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["../x", "/etc/passwd", "a/../../b", ".", "", "a\x00b", "~", "//", "notes/", "a" * 300]),
    st.lists(st.sampled_from(["..", ".", "a", "b", "", "ü"]), max_size=8).map("/".join),
)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
_ARGUMENT_NAMES = st.sampled_from(["expression", "path", "content", "context", "", "x"]) | st.text(max_size=8)
_ARGUMENTS = st.dictionaries(_ARGUMENT_NAMES, _JSON | _PATHS | _expressions(), max_size=4)


# ---------------------------------------------------------------- the calculator


def _evaluate(expression: str) -> str | ToolError:
    with tempfile.TemporaryDirectory() as folder:
        try:
            return within_wall(lambda: calculate(ToolContext(Path(folder)), expression))
        except ToolError as error:
            return error


@FUZZ
@given(_expressions())
def test_any_expression_gives_a_value_or_a_tool_error_in_time(expression: str) -> None:
    outcome = _evaluate(expression)
    assert isinstance(outcome, str | ToolError)
    if isinstance(outcome, ToolError):
        assert outcome.message.startswith("cannot evaluate") and len(outcome.message) < 1_000


@settings(FUZZ, max_examples=200)
@given(
    st.one_of(st.tuples(_LARGE, st.sampled_from(_OPERATORS), _LARGE), st.tuples(st.sampled_from(_FUNCTIONS), _LARGE))
)
def test_large_operands_through_every_operator_and_function_end_in_time(case: tuple[str, ...]) -> None:
    expression = f"{case[0]}({case[1]})" if len(case) == 2 else " ".join(case)
    assert isinstance(_evaluate(expression), str | ToolError)


@FUZZ
@given(st.one_of(_SUM_TEXT, st.text(max_size=300)))
def test_any_text_gives_a_value_or_a_tool_error_in_time(text: str) -> None:
    assert isinstance(_evaluate(text), str | ToolError)


@FUZZ
@given(st.sampled_from(["-", "+", "~", "not "]), st.integers(min_value=1, max_value=3_000), _NUMBERS)
def test_deeply_nested_expressions_are_refused_not_crashed(prefix: str, depth: int, number: str) -> None:
    for expression in (prefix * depth + number, "(" * depth + number + ")" * depth, "+".join([number] * depth)):
        assert isinstance(_evaluate(expression), str | ToolError)


# ---------------------------------------------------------------- the file tools


@FUZZ
@given(_PATHS, st.text(max_size=500) | st.sampled_from(["\ud800", "x" * 2_000]))
def test_file_tools_answer_any_path_and_content_and_stay_in_the_workspace(path: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        context = ToolContext(root / "ws", ToolLimits(max_write_chars=1_000, max_read_chars=300))
        for tool in (lambda: write_file(context, path, content), lambda: read_file(context, path)):
            try:
                assert isinstance(within_wall(tool), str)
            except ToolError as error:
                assert error.message and len(error.message) < 1_000
        assert {entry.name for entry in root.iterdir()} <= {"ws"}  # nothing written beside the workspace


# ---------------------------------------------------------------- the toolbox, with arguments of any shape


@FUZZ
@given(st.sampled_from(["calculator", "read_file", "write_file", "missing"]), _ARGUMENTS)
def test_the_toolbox_answers_any_arguments_with_text(name: str, arguments: dict[str, Any]) -> None:
    limits = ToolLimits(max_argument_chars=400, max_write_chars=200, max_read_chars=200, max_result_chars=500)
    with tempfile.TemporaryDirectory() as folder:
        toolbox = Toolbox(Registry.load().tools.values(), ToolContext(Path(folder) / "ws", limits))
        result = within_wall(lambda: asyncio.run(toolbox.call(ToolCall("c1", name, arguments))))
        kept = toolbox.recordable(arguments)
    assert isinstance(result, str) and len(result) <= 1_000
    if name != "missing" and argument_chars(arguments) > limits.max_argument_chars:
        assert result.startswith("error: the arguments of") and argument_chars(kept) < argument_chars(arguments)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        _JSON.map(json.dumps),
        st.tuples(st.sampled_from(["[", '{"a":', "calculator(", "calculator(x="]), st.integers(1, 5_000)).map(
            lambda shape: shape[0] * shape[1]
        ),
        _expressions().map(lambda text: f"calculator({text})"),
        _ARGUMENTS.map(lambda arguments: json.dumps({"tool": "calculator", "arguments": arguments})),
    )
)
def test_calls_written_as_text_are_read_or_refused_and_any_call_found_runs(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        toolbox = Toolbox(Registry.load().tools.values(), ToolContext(Path(folder) / "ws"))
        found = within_wall(lambda: read_text_calls(text, toolbox.schemas()))
        for call in found.calls:
            assert isinstance(within_wall(lambda call=call: asyncio.run(toolbox.call(call))), str)
    assert all(isinstance(problem, str) for problem in found.problems)


# ---------------------------------------------------------------- texts stored by reference


@FUZZ
@given(_JSON)
def test_texts_stored_by_reference_read_back_as_they_were(data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = TextFiles(Path(folder), inline_chars=8)
        assert files.restore("run1", files.spill("run1", data)) == data
        text = json.dumps(data)
        assert files.restore_text("run1", files.spill_text("run1", text)) == text
