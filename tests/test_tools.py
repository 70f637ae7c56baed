from __future__ import annotations

import pytest

from orquestra.tools import ToolContext, ToolError
from orquestra.tools.calculator import calculate
from orquestra.tools.files import read_file, write_file


@pytest.fixture
def context(tmp_path):
    return ToolContext(workspace=tmp_path / "ws")


@pytest.mark.parametrize(
    ("expression", "value"),
    [("17 * 23", "391"), ("(2 + 3) ** 2", "25"), ("sqrt(144) + 1", "13"), ("10 / 4", "2.5"), ("max(3, 9)", "9")],
)
def test_calculator(context, expression, value):
    assert calculate(context, expression) == value


@pytest.mark.parametrize("expression", ["__import__('os').system('id')", "open('x')", "1 / 0", "2 +"])
def test_calculator_refuses_anything_but_arithmetic(context, expression):
    with pytest.raises(ToolError, match="cannot evaluate"):
        calculate(context, expression)


def test_files_round_trip_inside_the_workspace(context):
    assert write_file(context, "notes/a.md", "hello") == "wrote 5 characters to notes/a.md"
    assert read_file(context, "notes/a.md") == "hello"
    assert (context.workspace / "notes" / "a.md").read_text() == "hello"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "notes/../../x"])
def test_paths_outside_the_workspace_are_refused(context, path):
    with pytest.raises(ToolError, match="outside the run's workspace"):
        write_file(context, path, "x")
    with pytest.raises(ToolError, match="outside the run's workspace"):
        read_file(context, path)


def test_missing_file_is_a_tool_error(context):
    with pytest.raises(ToolError, match="no file 'missing.txt'"):
        read_file(context, "missing.txt")
