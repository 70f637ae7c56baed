"""Round trips: what `plan --save` writes, `graph show`, `run` and `apply` accept, and so do plain graph files;
`graph show RUN` shows a recorded run's graph with each task's status."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orquestra.engine import Engine, RetryPolicy
from orquestra.graph import Task
from orquestra.graphfile import load_graph, task_format
from orquestra.manifest import ManifestError, load_manifest
from orquestra.store import open_store
from tests.helpers import make_graph

from .fake_providers import FakeOpenAI, json_reply
from .helpers import assert_user_error, orquestra

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "launch-brief.yaml"
PLAN = {
    "tasks": [
        {"id": "facts", "instruction": "Find three facts about {{ widgets }}", "capability": "research"},
        {"id": "note", "instruction": "Write a note from the facts", "capability": "writing", "depends_on": ["facts"]},
    ]
}


@pytest.fixture
def saved_plan(tmp_path: Path) -> Path:
    """What `orquestra plan GOAL --save` writes, planned through the real openai adapter against a fake server."""
    path = tmp_path / "launch.yaml"
    with FakeOpenAI(lambda body: json_reply(PLAN)) as server:
        result = orquestra(
            "plan", "Write a note about widgets", "-m", "openai:gpt-test", "--save", str(path), env=server.env()
        )
    assert result.returncode == 0, result.stderr
    assert "name:" in path.read_text() and "- id:" not in path.read_text()  # a manifest, not a plain graph
    return path


def test_a_saved_plan_is_shown_run_and_applied(saved_plan: Path) -> None:
    tree = orquestra("graph", "show", str(saved_plan))
    assert tree.returncode == 0, tree.stderr
    assert "launch.yaml: 2 tasks" in tree.stdout and "critical path: facts -> note" in tree.stdout
    as_json = json.loads(orquestra("graph", "show", str(saved_plan), "-f", "json").stdout)
    assert [task["id"] for task in as_json["tasks"]] == ["facts", "note"]
    assert as_json["tasks"][1]["depends_on"] == ["facts"]
    assert orquestra("graph", "show", str(saved_plan), "-f", "mermaid").stdout.startswith("flowchart TD\n")
    for command in ("run", "apply"):
        result = orquestra(command, str(saved_plan), "-m", "scripted")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 succeeded" in result.stdout


def test_a_manifest_loads_as_the_graph_its_loader_builds(saved_plan: Path) -> None:
    assert load_graph(saved_plan) == load_manifest(saved_plan).to_graph()


def test_a_plain_graph_file_runs_through_apply_and_run(tmp_path: Path) -> None:
    for command in ("apply", "run"):
        result = orquestra(command, str(EXAMPLE), "-m", "scripted", "--no-outputs")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "5 succeeded" in result.stdout
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([{"id": "ode", "instruction": "Write an ode", "capability": "writing"}]))
    result = orquestra("apply", str(bare), "-m", "scripted")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 succeeded" in result.stdout


def test_a_plain_graph_through_the_manifest_loader_keeps_its_graph(tmp_path: Path) -> None:
    assert load_manifest(EXAMPLE).to_graph() == load_graph(EXAMPLE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- id: a\n  instruction: x\n  capability: research\n- id: b\n  instruction: y\n  capability: juggling\n"
    )
    with pytest.raises(ManifestError, match=r"bad.yaml: line 6: tasks\[1\].capability: no agent offers"):
        load_manifest(bad)


def test_a_broken_manifest_in_graph_show_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntasks:\n  - name: a\n    instruction: x\n    capability: research\n    colour: red\n")
    assert_user_error(orquestra("graph", "show", str(path)), "broken.yaml: line 6: tasks[0].colour: unknown field")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "w", "tasks": [{"name": "a"}]}, "manifest"),
        ({"tasks": [{"id": "a"}]}, "graph"),
        ([{"id": "a"}], "graph"),
        ({"tasks": [{"instruction": "x"}]}, None),
        ({"tasks": []}, None),
        ("text", None),
    ],
)
def test_the_first_task_tells_the_format(data: Any, expected: str | None) -> None:
    assert task_format(data) == expected


# ---------------------------------------------------------------------------------------------- recorded runs


async def _answer(task: Task, inputs: Mapping[str, Any]) -> str:
    if task.id == "bad":
        raise ValueError("bad broke")
    return f"{task.id} done"


def record_run(home: Path, run_id: str) -> None:
    """A run with a succeeded, a failed and a skipped task, recorded in `home`'s run store as the CLI would."""
    graph = make_graph({"good": [], "bad": [], "after_bad": ["bad"]})
    with open_store(home) as store:
        engine = Engine(_answer, retry=RetryPolicy(retries=0))
        engine.subscribe(store.subscriber(run_id, "a goal", model="scripted"))
        result = asyncio.run(engine.run(graph, run_id=run_id))
        store.finish(run_id, answer="", usage={}, graph_json=result.graph.model_dump_json(), status="failed")


def test_graph_show_a_recorded_run_with_each_tasks_status() -> None:
    home = Path(os.environ["ORQUESTRA_HOME"])
    record_run(home, "run0123456789")
    tree = orquestra("graph", "show", "run0123456789")
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert lines[0] == "run run0123456789 (failed): 3 tasks"
    assert any("succeeded  good [research]" in line for line in lines)
    assert any("failed  bad [research]" in line for line in lines)
    assert any("skipped  after_bad [research]" in line for line in lines)

    as_json = json.loads(orquestra("graph", "show", "run012345", "-f", "json").stdout)  # a prefix is enough
    assert as_json["run_id"] == "run0123456789" and as_json["status"] == "failed"
    assert as_json["statuses"] == {"good": "succeeded", "bad": "failed", "after_bad": "skipped"}
    assert [task["id"] for task in as_json["tasks"]] == ["good", "bad", "after_bad"]

    mermaid = orquestra("graph", "show", "run0123456789", "-f", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n") and "    t1 --> t2\n" in mermaid
    assert "classDef failed fill:" in mermaid
    assert "    class t0 succeeded\n" in mermaid and "    class t1 failed\n" in mermaid
    assert "    class t2 skipped\n" in mermaid


def test_a_recorded_runs_json_graph_runs_again(tmp_path: Path) -> None:
    record_run(Path(os.environ["ORQUESTRA_HOME"]), "run0123456789")
    saved = tmp_path / "again.json"
    saved.write_text(orquestra("graph", "show", "run0123456789", "-f", "json").stdout)
    result = orquestra("run", str(saved), "-m", "scripted", "--no-outputs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 succeeded" in result.stdout


def test_a_target_that_is_neither_a_file_nor_a_run_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_user_error(orquestra("graph", "show", "ghost-run"), "ghost-run: no such file", "no runs are recorded")
    record_run(Path(os.environ["ORQUESTRA_HOME"]), "run0123456789")
    assert_user_error(orquestra("graph", "show", "ghost-run"), "ghost-run: no such file", "no recorded run")
    missing = tmp_path / "missing.yaml"
    assert_user_error(orquestra("graph", "show", str(missing)), f"{missing}: no such file")
    assert_user_error(orquestra("graph", "show", str(EXAMPLE), "-f", "svg"), "unknown format 'svg'")
