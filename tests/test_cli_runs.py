"""`orquestra runs list/show/export` on a temporary ORQUESTRA_HOME holding real recorded runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from orquestra.cli_runs import runs_app
from orquestra.exceptions import UserError
from orquestra.store import open_store, store_path
from tests.helpers import make_graph, mounted
from tests.test_store import record_run

runner = CliRunner()


@pytest.fixture
async def home() -> Path:
    with open_store() as store:
        await record_run(store, make_graph({"facts": [], "summary": ["facts"]}), "aaaaaa000001", "compare databases")
        await record_run(store, make_graph({"bad_fetch": [], "report": ["bad_fetch"]}), "bbbbbb000002", "fetch it")
        await record_run(
            store, make_graph({"explain": []}), "cccccc000003", "explain [bold red]rich markup[/bold red] to me"
        )
    return store_path()


def app() -> typer.Typer:
    return mounted(runs_app, "runs")


def invoke(*args: str) -> Result:
    return runner.invoke(app(), ["runs", *args], env={"COLUMNS": "200"})


def test_list_shows_the_newest_runs_first_with_task_counts(home: Path) -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("cccccc000003") < out.index("bbbbbb000002") < out.index("aaaaaa000001")
    assert "2/2" in out and "0/2" in out and "failed" in out and "succeeded" in out
    assert "[bold red]rich markup[/bold red]" in out  # printed as written, not interpreted
    assert "3 of 3 runs" in out
    limited = invoke("list", "-n", "1")
    assert "cccccc000003" in limited.output and "aaaaaa000001" not in limited.output


def test_list_on_a_new_home_says_so_and_creates_nothing() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "no runs recorded yet" in result.output
    assert not store_path().exists()


def test_show_prints_status_tasks_outputs_answer_usage_and_events(home: Path) -> None:
    result = invoke("show", "bbbbbb")
    assert result.exit_code == 0, result.output
    out = result.output
    for fragment in (
        "run bbbbbb000002",
        "goal: fetch it",
        "failed (task 'bad_fetch' failed: ValueError: bad_fetch broke)",
        "bad_fetch",
        "skipped",
        "researcher",
        "answer of bbbbbb000002",
        "usage: requests 3",
        "RunStarted",
        "TaskFailed",
        "RunFinished",
    ):
        assert fragment in out, fragment
    shown = invoke("show", "aaaaaa000001").output
    assert "output of summary" in shown and "summary done with ['facts']" in shown


def test_export_writes_json_to_stdout_or_a_file(home: Path, tmp_path: Path) -> None:
    result = invoke("export", "aaaaaa")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["id"] == "aaaaaa000001" and data["run"]["goal"] == "compare databases"
    assert [task["task_id"] for task in data["tasks"]] == ["facts", "summary"]
    assert data["events"][-1]["type"] == "RunFinished"

    target = tmp_path / "run.json"
    written = invoke("export", "cccccc000003", "--output", str(target))
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text(encoding="utf-8"))["run"]["goal"].startswith("explain [bold red]")


@pytest.mark.parametrize("command", ["show", "export"])
def test_an_unknown_or_ambiguous_id_is_a_user_error(home: Path, command: str) -> None:
    unknown = invoke(command, "zzzzzz999")
    assert isinstance(unknown.exception, UserError)
    assert "no recorded run with id 'zzzzzz999'" in unknown.exception.message
    with open_store() as store:
        store.finish("aaaaaa999999", answer="", usage={}, status="succeeded")
    ambiguous = invoke(command, "aaaaaa")
    assert isinstance(ambiguous.exception, UserError) and "ambiguous" in ambiguous.exception.message


def test_show_on_a_new_home_is_a_user_error_and_creates_nothing() -> None:
    result = invoke("show", "aaaaaa000001")
    assert isinstance(result.exception, UserError) and "no runs recorded yet" in result.exception.message
    assert not store_path().exists()
