"""How a run ends: one status per kind of ending, and a replan schema that only names what the engine changes."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from orquestra import Task, TaskGraph
from orquestra.engine import Engine, RunStatus, TaskStatus, frozen_ids
from orquestra.exceptions import BudgetExceeded, PatchRefused, Refused, StopRun
from orquestra.graph import GraphPatch
from orquestra.replanner import patch_model

GRAPH = TaskGraph(
    tasks=[
        Task(id="done", instruction="x", capability="research"),
        Task(id="running", instruction="x", capability="research"),
        Task(id="waiting", instruction="x", capability="writing", depends_on=["done", "running"]),
        Task(id="broken", instruction="x", capability="research"),
        Task(id="refused", instruction="x", capability="research"),
    ]
)
STATUSES = {
    "done": TaskStatus.SUCCEEDED,
    "running": TaskStatus.RUNNING,
    "waiting": TaskStatus.PENDING,
    "broken": TaskStatus.FAILED,
    "refused": TaskStatus.FAILED,
}
ERRORS: dict[str, BaseException] = {"broken": RuntimeError("boom"), "refused": Refused("not this week")}


def test_the_patch_schema_lists_only_what_may_change():
    schema = patch_model(GRAPH, STATUSES, ["research", "writing"], ERRORS).model_json_schema()
    remove = schema["properties"]["remove"]
    assert remove["items"]["enum"] == ["broken", "waiting"]
    rewire = schema["$defs"]["Rewire"]["properties"]["task_id"]
    assert rewire["const"] == "waiting"  # one choice: pydantic writes it as a const
    capability = schema["$defs"]["PlannedTask"]["properties"]["capability"]
    assert capability["enum"] == ["research", "writing"]


@pytest.mark.parametrize(
    ("draft", "problem"),
    [
        ({"remove": ["running"]}, "Input should be 'broken' or 'waiting'"),
        ({"remove": ["refused"]}, "Input should be 'broken' or 'waiting'"),
        ({"rewire": [{"task_id": "done", "depends_on": []}]}, "Input should be 'waiting'"),
        ({}, "the patch changes nothing"),
    ],
)
def test_a_patch_the_engine_would_refuse_fails_validation(draft, problem):
    with pytest.raises(ValidationError, match=problem):
        patch_model(GRAPH, STATUSES, ["research", "writing"], ERRORS).model_validate(draft)


def test_the_engine_and_the_replanner_share_one_rule():
    assert frozen_ids(STATUSES, ERRORS) == {"done", "running", "broken", "refused"}
    assert frozen_ids(STATUSES, ERRORS, removing=["broken", "refused"]) == {"done", "running", "refused"}


async def test_a_patch_touching_a_started_task_is_refused_by_the_engine():
    release = asyncio.Event()

    async def run_task(task, inputs):
        await release.wait()
        return task.id

    graph = TaskGraph(
        tasks=[Task(id="a", instruction="x", capability="c"), Task(id="b", instruction="x", capability="c")]
    )
    execution = Engine(run_task).start(graph)
    await asyncio.sleep(0)
    with pytest.raises(PatchRefused, match="task 'a', which has already started"):
        execution.apply(GraphPatch(remove=("a",)))
    release.set()
    assert (await execution).status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StopRun("caller's reason"), RunStatus.STOPPED),
        (BudgetExceeded("the tokens budget is spent"), RunStatus.OUT_OF_BUDGET),
    ],
)
async def test_a_task_that_stops_the_run_sets_its_status(error, status):
    async def run_task(task, inputs):
        raise error

    result = await Engine(run_task).run(TaskGraph(tasks=[Task(id="a", instruction="x", capability="c")]))
    assert result.status is status
    assert result.reason == error.message


@pytest.mark.parametrize(
    ("status", "with_failure", "expected"),
    [
        (RunStatus.GAVE_UP, True, RunStatus.GAVE_UP),
        (RunStatus.OUT_OF_BUDGET, True, RunStatus.OUT_OF_BUDGET),
        (RunStatus.STOPPED, True, RunStatus.FAILED),
        (RunStatus.SUCCEEDED, False, RunStatus.SUCCEEDED),
        (RunStatus.SUCCEEDED, True, RunStatus.FAILED),
    ],
)
async def test_a_stop_outranks_failures_only_when_it_says_more(status, with_failure, expected):
    async def run_task(task, inputs):
        if task.id == "bad":
            raise RuntimeError("boom")
        await asyncio.sleep(0.05)
        return "ok"

    tasks = [
        Task(id="slow", instruction="x", capability="c"),
        Task(id="later", instruction="x", capability="c", depends_on=["slow"]),
    ]
    if with_failure:
        tasks.append(Task(id="bad", instruction="x", capability="c"))
    execution = Engine(run_task).start(TaskGraph(tasks=tasks))
    await asyncio.sleep(0.01)
    execution.stop("because", status)
    result = await execution
    assert result.status is expected
    assert result.statuses["later"] is TaskStatus.CANCELLED
    if expected is not RunStatus.FAILED:
        assert result.reason.startswith("because")


def test_adding_a_task_with_a_failed_tasks_id_replaces_it():
    checked = patch_model(GRAPH, STATUSES, ["research", "writing"], ERRORS)
    draft = checked.model_validate({"add": [{"id": "broken", "instruction": "again", "capability": "research"}]})
    assert draft.remove == ["broken"]
    with pytest.raises(ValidationError, match="already in the graph"):  # a running task is not replaced
        checked.model_validate({"add": [{"id": "running", "instruction": "again", "capability": "research"}]})


def test_adding_a_task_with_a_succeeded_tasks_id_does_it_again_under_a_fresh_id():
    checked = patch_model(GRAPH, STATUSES, ["research", "writing"], ERRORS)
    draft = checked.model_validate(
        {
            "add": [
                {"id": "done", "instruction": "again, from the goal", "capability": "research"},
                {"id": "check", "instruction": "check it", "capability": "writing", "depends_on": ["done"]},
            ]
        }
    )
    assert [(task.id, task.depends_on) for task in draft.add] == [("done_2", []), ("check", ["done_2"])]
    assert [(item.task_id, item.depends_on) for item in draft.rewire] == [("waiting", ["done_2", "running"])]
    applied = GRAPH.apply(draft.to_patch(), frozen=frozen_ids(STATUSES, ERRORS))
    assert applied["done"].instruction == "x" and applied["waiting"].depends_on == ("done_2", "running")
    # A rewire the model wrote itself is kept as written.
    kept = checked.model_validate(
        {
            "add": [{"id": "done", "instruction": "again", "capability": "research"}],
            "rewire": [{"task_id": "waiting", "depends_on": ["running"]}],
        }
    )
    assert [(item.task_id, item.depends_on) for item in kept.rewire] == [("waiting", ["running"])]
