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


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("$4.25 * 3 * 1.08", "13.77"),
        ("15% of 64.80", "9.72"),
        ("64.80 * 15%", "9.72"),
        ("$64.80 * 15% / 100", "9.72"),
        ("84.50 * (1 - 20%)", "67.6"),
        ("2000 * (1 + 3%)**2", "2121.8"),
        ("1,200 × 3", "3600"),
        ("2^10", "1024"),
        ("12 * 7 = 84", "84"),
        ("17 % 5", "2"),
        ("max(1,200)", "200"),
        ("0.1 + 0.2", "0.3"),
    ],
)
def test_the_calculator_reads_sums_as_people_write_them(tmp_path, expression, value):
    assert calculate(ToolContext(tmp_path), expression) == value


def test_a_missing_file_error_lists_the_workspace(tmp_path):
    (tmp_path / "facts.md").write_text("x")
    with pytest.raises(ToolError, match="no file 'notes/summary.md' in the workspace; the files there are: facts.md"):
        read_file(ToolContext(tmp_path), "notes/summary.md")
