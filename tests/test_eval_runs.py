"""Whole-run evals: checks, the suite file, and `orquestra eval runs` with a scripted team."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orquestra import cli_eval
from orquestra.evals.runs import RunCase, RunLog, failed_checks, load_run_suite
from orquestra.exceptions import UserError
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall

from .test_cli_eval import app

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def passes(answer: str, workspace: Path) -> bool:
    return "yes" in answer


def test_checks_on_the_answer_the_workspace_and_a_function(tmp_path):
    (tmp_path / "out.txt").write_text("the total is 84")
    case = RunCase(id="c", goal="g", answer_contains="84", file={"path": "out.txt", "contains": "84"})
    assert failed_checks(case, "It is 84.", tmp_path) == []
    assert failed_checks(case, "It is 85.", tmp_path) == ["answer lacks '84'"]
    missing = RunCase(id="c", goal="g", file={"path": "nope.txt"})
    assert failed_checks(missing, "", tmp_path) == ["no file 'nope.txt' in the workspace"]
    custom = RunCase(id="c", goal="g", check="tests.test_eval_runs:passes")
    assert failed_checks(custom, "yes", tmp_path) == []
    assert failed_checks(custom, "no", tmp_path) == ["tests.test_eval_runs:passes returned false"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: s\ncases:\n  - {id: a, goal: g}\n", "needs a check"),
        ("name: s\ncases:\n  - {id: a, goal: g, file: {path: ../x}}\n", "field 'cases.0.file.path'"),
        ("name: s\ncases:\n  - {id: a, goal: g, check: 'nowhere_module:f'}\n", "field 'cases.0.check': cannot import"),
        (
            "name: s\ncases:\n  - {id: a, goal: g, answer_contains: '1'}\n  - {id: a, goal: g, answer_contains: '1'}\n",
            "unique",
        ),
    ],
)
def test_run_suite_errors_name_the_file_and_field(tmp_path, content, fragment):
    path = tmp_path / "suite.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        load_run_suite(path)
    assert str(path) in error.value.message and fragment in error.value.message


def test_the_shipped_arithmetic_suite_loads():
    suite = load_run_suite(ROOT / "evals" / "runs" / "arithmetic.yaml")
    assert suite.cases[0].answer_contains == ["84"] and len(suite.cases) >= 4


def arithmetic_brain(messages: Sequence[Message]):
    """Planner, agent and synthesiser for the widget goal: the agent uses the calculator tool."""
    system, last = messages[0].content, messages[-1]
    if "planner of a team" in system:
        return {"tasks": [{"id": "total", "instruction": "Compute 7 * 12", "capability": "math", "depends_on": []}]}
    if last.role == "tool":
        return f"The total is {last.content}."
    if "Your task (total)" in last.content:
        if "train" in last.content:
            return "I do not know."
        return ModelResponse(text="", model="brain", tool_calls=(ToolCall("1", "calculator", {"expression": "7*12"}),))
    return "The answer is 84."


def test_eval_runs_checks_each_goal_and_reports_completion(monkeypatch, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: mini\ncases:\n"
        "  - {id: widgets, goal: 'Widgets cost 7 each. What do 12 cost?', answer_contains: '84'}\n"
        "  - {id: file, goal: 'Write it down.', file: {path: result.txt, contains: '84'}}\n"
    )
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(arithmetic_brain, name="brain"))
    out = tmp_path / "out"
    # A file an earlier attempt left behind must not pass this attempt's check.
    (out / "workspaces" / "file").mkdir(parents=True)
    (out / "workspaces" / "file" / "result.txt").write_text("84")
    result = runner.invoke(
        app(), ["eval", "runs", str(suite), "--out", str(out), "--model", "brain"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "completion rate: 0.500" in result.output and "(1/2)" in result.output
    assert "no file 'result.txt'" in result.output
    assert "false successes: 1 (file)" in result.output  # it said it succeeded, and its check says no
    report = json.loads((out / "report.json").read_text())
    widgets = report["results"][0]
    assert widgets["passed"] and widgets["status"] == "succeeded" and widgets["tasks"] == 1
    assert report["statuses"] == {"succeeded": 2}
    # Resume: nothing runs again.
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(responses=["x"]))
    again = runner.invoke(app(), ["eval", "runs", str(suite), "--out", str(out), "--model", "brain"])
    assert again.exit_code == 0, again.output
    assert "(1/2)" in again.output


def test_a_run_that_errors_is_listed_not_dropped(monkeypatch, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: mini\ncases:\n  - {id: a, goal: 'Say hi', answer_contains: hi}\n")
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(responses=["not a plan"]))
    result = runner.invoke(
        app(), ["eval", "runs", str(suite), "--out", str(tmp_path / "o"), "--model", "x"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    [case] = report["results"]
    assert case["status"] == "error" and not case["passed"] and case["error"]


def test_the_run_log_refuses_files_that_are_not_its_own(tmp_path):
    (tmp_path / "runs.jsonl").write_text("not json\n")
    with pytest.raises(UserError, match="line 1 is not this eval's header; pass --fresh"):
        RunLog(tmp_path, {"suite": "s", "model": "m"}).load()
    (tmp_path / "runs.jsonl").write_text('{"kind": "header", "suite": "s", "model": "m"}\n{"kind": "case"}\n')
    with pytest.raises(UserError, match="line 2 is not a result of this eval"):
        RunLog(tmp_path, {"suite": "s", "model": "m"}).load()


def test_a_run_that_does_not_succeed_records_why(monkeypatch, tmp_path):
    def brain(messages: Sequence[Message]):
        if "planner of a team" in messages[0].content:
            return {"tasks": [{"id": "total", "instruction": "Compute 7 * 12", "capability": "math", "depends_on": []}]}
        return ""  # every agent answers nothing: the check fails every attempt

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: mini\ncases:\n  - {id: a, goal: 'What is 7 times 12?', answer_contains: '84'}\n")
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(brain, name="brain"))
    result = runner.invoke(
        app(), ["eval", "runs", str(suite), "--out", str(tmp_path / "o"), "--model", "brain"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    [case] = json.loads((tmp_path / "o" / "report.json").read_text())["results"]
    assert case["status"] != "succeeded" and not case["passed"]
    assert case["reason"] and case["reason"].split(":")[0] in result.output  # the table's "why" shows it
