"""`checks:` in manifests: on tasks and inline agents, failing and retrying, and kept by `plan --save`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orquestra.checks import CheckSpec
from orquestra.engine import RunStatus, TaskStatus
from orquestra.events import Event, ResultChecked
from orquestra.graph import Task, TaskGraph
from orquestra.manifest import ManifestError, apply_manifest, dump_manifest, graph_to_manifest, load_manifest
from orquestra.models import ScriptedModel
from orquestra.registry import Registry
from orquestra.team import AutoTeam

FLOW = """\
name: Launch note
agents:
  - name: writer_agent
    model: scripted
    checks:
      - not_contains: "lorem"
tasks:
  - name: note
    agent: writer_agent
    instruction: "Write the launch note; give the date as YYYY-MM-DD."
    checks:
      - matches: "\\\\d{4}-\\\\d{2}-\\\\d{2}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


async def test_task_and_agent_checks_of_a_manifest_apply(tmp_path):
    manifest = load_manifest(write(tmp_path, FLOW), Registry.load())
    answers = iter(["We launch soon, lorem ipsum.", "We launch on 2027-03-01."])
    model = ScriptedModel(lambda messages: next(answers))
    events: list[Event] = []
    result = await apply_manifest(manifest, team=AutoTeam(model=model, memory=False), subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.run.outputs["note"] == "We launch on 2027-03-01."
    (first, second) = [event for event in events if isinstance(event, ResultChecked)]
    assert first.failures == (
        "not_contains 'lorem': the answer contains 'lorem'",
        "matches '\\\\d{4}-\\\\d{2}-\\\\d{2}': the answer does not match '\\\\d{4}-\\\\d{2}-\\\\d{2}'",
    )
    assert second.passed


async def test_a_manifest_task_whose_answers_keep_failing_fails(tmp_path):
    manifest = load_manifest(write(tmp_path, FLOW), Registry.load())
    model = ScriptedModel(lambda messages: "No date yet.")
    result = await apply_manifest(manifest, team=AutoTeam(model=model, memory=False))
    assert result.run.statuses["note"] is TaskStatus.FAILED
    assert "does not match" in result.run.reason


def test_a_bad_check_is_an_error_naming_the_line(tmp_path):
    bad = FLOW.replace('      - not_contains: "lorem"', "      - {contains: a, min_chars: 3}")
    with pytest.raises(ManifestError, match=r"flow.yaml.*line 6.*give exactly one of"):
        load_manifest(write(tmp_path, bad), Registry.load())


def test_saved_plans_keep_their_checks(tmp_path):
    graph = TaskGraph(
        tasks=[
            Task(
                id="report",
                instruction="Write the report to report.md",
                capability="writing",
                checks=(CheckSpec(file="report.md", contains="Summary"), CheckSpec(min_chars=20)),
            )
        ]
    )
    path = tmp_path / "plan.yaml"
    dump_manifest(graph_to_manifest(graph), path)
    assert load_manifest(path, Registry.load()).to_graph() == graph
