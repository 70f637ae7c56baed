"""`orquestra eval planning` and `eval runs` end to end on fixture suites with a scripted model."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner, Result

from orquestra import cli_eval
from orquestra.cli_eval import eval_app
from orquestra.evals.adapters import load_taskbench
from orquestra.exceptions import UserError
from orquestra.models import ScriptedModel
from tests.helpers import mounted

from .test_eval_planning import FIXTURES, fake_embed, planner_brain

runner = CliRunner()
SUITE = FIXTURES / "suite-taskbench.yaml"


def app() -> typer.Typer:
    return mounted(eval_app, "eval")


def invoke(*args: str) -> Result:
    return runner.invoke(app(), ["eval", *args], env={"COLUMNS": "200"})


@pytest.fixture
def brain(monkeypatch) -> ScriptedModel:
    cases = load_taskbench(FIXTURES / "data" / "taskbench" / "huggingface")
    model = ScriptedModel(planner_brain(cases, broken=["13951357"], garbled=["30123865"]), name="brain")
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: model)
    monkeypatch.setattr(cli_eval, "build_embedder", lambda: fake_embed)
    return model


def test_planning_plans_scores_and_writes_the_reports(brain, tmp_path):
    out = tmp_path / "out"
    result = invoke("planning", str(SUITE), "--model", "brain", "--baseline", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "fixture-taskbench with brain" in text and "orquestra" in text and "baseline" in text
    assert "node F1, pooled" in text and "published anchors" in text and "protocols differ" in text
    assert "errored" in text
    report = json.loads((out / "report.json").read_text())
    assert set(report["planners"]) == {"orquestra", "baseline"}
    assert report["planners"]["orquestra"]["cases"] == 7 and report["planners"]["orquestra"]["errors"] == 2
    assert len(report["cases"]) == 14 and "node_f1" in report["metrics"]
    errored = {(e["planner"], e["case_id"]) for e in report["errors"]}
    assert ("orquestra", "13951357") in errored and ("baseline", "13951357") in errored
    markdown = (out / "report.md").read_text()
    assert "## By shape" in markdown and "## Metric definitions" in markdown and "13951357" in markdown
    assert "## Published anchors" in markdown and "Some-Model" in markdown
    assert len((out / "results.jsonl").read_text().splitlines()) == 15  # header + 14 results


def test_planning_resumes_and_limit_and_html(brain, tmp_path):
    out = tmp_path / "out"
    assert invoke("planning", str(SUITE), "--limit", "3", "--out", str(out), "--model", "brain").exit_code == 0
    assert len(brain.calls) >= 3
    calls = len(brain.calls)
    result = invoke("planning", str(SUITE), "--out", str(out), "--model", "brain", "--format", "html")
    assert result.exit_code == 0, result.output
    assert len(brain.calls) > calls and not any(
        "Object Detection" in c[-1].content and "identify and label" in c[-1].content for c in brain.calls[calls:]
    )
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<h2>By gold size</h2>" in page
    assert json.loads((out / "report.json").read_text())["planners"]["orquestra"]["cases"] == 7
    # Everything done: a rerun plans nothing.
    calls = len(brain.calls)
    assert invoke("planning", str(SUITE), "--out", str(out), "--model", "brain").exit_code == 0
    assert len(brain.calls) == calls


def test_ctrl_c_keeps_finished_cases_and_exits_130(monkeypatch, tmp_path):
    cases = load_taskbench(FIXTURES / "data" / "taskbench" / "huggingface")
    inner = planner_brain(cases)
    answered = []

    def respond(messages):
        if len(answered) == 2:
            raise KeyboardInterrupt
        answered.append(1)
        return inner(messages)

    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(respond, name="brain"))
    out = tmp_path / "out"
    result = invoke("planning", str(SUITE), "--out", str(out), "--concurrency", "1", "--model", "brain")
    assert result.exit_code == 130, result.output
    assert "run the same command again to resume" in result.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 3  # header + two finished cases


def test_free_text_suite_reports_f1_chain_and_graph(monkeypatch, tmp_path):
    from orquestra.evals.adapters import load_worfbench

    cases = load_worfbench([FIXTURES / "worfbench" / "mini.jsonl"])
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(planner_brain(cases)))
    monkeypatch.setattr(cli_eval, "build_embedder", lambda: fake_embed)
    result = invoke("planning", str(FIXTURES / "suite-worfbench.yaml"), "--out", str(tmp_path), "--model", "x")
    assert result.exit_code == 0, result.output
    assert "f1_chain" in result.output and "hallucination" not in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["planners"]["orquestra"]["f1_chain"]["estimate"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["planning", "nowhere.yaml"], "no such file"),
        (["planning", str(SUITE), "--data", "/nonexistent-folder"], "--data"),
        (["planning", str(SUITE), "--format", "pdf"], "--format"),
        (["runs", "nowhere.yaml"], "no such file"),
    ],
)
def test_user_mistakes_are_user_errors(args, fragment):
    result = invoke(*args)
    assert isinstance(result.exception, UserError) and fragment in result.exception.message


def test_the_eval_command_is_mounted_and_a_missing_suite_is_one_line(tmp_path):
    from .test_cli import assert_user_error, orquestra

    assert_user_error(orquestra("eval", "planning", str(tmp_path / "missing.yaml")), "missing.yaml", "no such file")


def test_a_sample_is_the_same_cases_every_time_in_suite_order(brain, tmp_path):
    ids = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        result = invoke("planning", str(SUITE), "--sample", "3", "--out", str(out), "--model", "brain")
        assert result.exit_code == 0, result.output
        ids.append([case["case_id"] for case in json.loads((out / "report.json").read_text())["cases"]])
    assert ids[0] == ids[1] and len(ids[0]) == 3
    order = [case.id for case in load_taskbench(FIXTURES / "data" / "taskbench" / "huggingface")]
    assert ids[0] == sorted(ids[0], key=order.index)
    clash = invoke("planning", str(SUITE), "--sample", "3", "--limit", "2", "--model", "brain")
    assert isinstance(clash.exception, UserError) and "--sample and --limit exclude" in str(clash.exception)
