"""What a replan may change: one rule (`frozen_ids`), and the engine and the replanner hold to it alike.

A patch the replanner's schema lets the model write is one the engine applies, and one the engine refuses
cannot be written: a task a person refused stays in the run, whatever the replan would like.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from orquestra import Engine, GraphPatch, Task, TaskGraph
from orquestra.budget_meter import BudgetMeter
from orquestra.engine import Execution, TaskStatus
from orquestra.events import Event, TaskFailed
from orquestra.exceptions import ApprovalRejected, PatchRefused, Refused
from orquestra.loop import DynamicLoop
from orquestra.models import Message, Model, ModelResponse, Usage
from orquestra.reflect import Reflector
from orquestra.replanner import Replanner, patch_model

CAPABILITIES = ["c"]


def offered_for_removal(schema: dict[str, Any]) -> list[str]:
    """The task ids a patch schema lets the model remove."""
    items = schema["properties"]["remove"]["items"]
    return list(items.get("enum", [items["const"]] if "const" in items else []))


class RecordingReplanner(Model):
    """Answers every replan with a new task, keeping the schema each request was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.schemas: list[dict[str, Any]] = []

    async def request(self, messages, *, tools=(), output_schema=None, tool_choice="auto") -> ModelResponse:
        raise AssertionError("the replanner asks for structured answers only")

    async def structured(self, messages: Sequence[Message], output_type: type[BaseModel], *, max_retries: int = 2):
        self.schemas.append(output_type.model_json_schema())
        new = {"id": f"alternative_{len(self.schemas)}", "instruction": "another way", "capability": "c"}
        return output_type.model_validate({"add": [new]}), Usage()


async def test_a_run_with_a_refused_task_gets_a_replan_schema_without_it() -> None:
    refused_failed = asyncio.Event()

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "refused":
            raise Refused("not this week")
        if task.id == "broken":
            await refused_failed.wait()  # fails second, so its replan sees the refused task failed already
            raise RuntimeError("boom")
        return task.id

    def on_event(event: Event) -> None:
        if isinstance(event, TaskFailed) and event.task_id == "refused":
            refused_failed.set()

    model = RecordingReplanner()
    loop = DynamicLoop("goal", Reflector(model), Replanner(model, CAPABILITIES), BudgetMeter())
    engine = Engine(run_task)
    engine.subscribe(on_event)
    engine.subscribe(loop.on_event)
    graph = TaskGraph(tasks=[Task(id=task_id, instruction="x", capability="c") for task_id in ("refused", "broken")])
    execution = engine.start(graph)
    loop.attach(execution)
    result = await execution
    await loop.close()
    assert result.statuses["refused"] is TaskStatus.FAILED and "refused" in result.graph.by_id
    assert len(model.schemas) == 2  # a replan after each failure
    assert all("refused" not in offered_for_removal(schema) for schema in model.schemas)
    assert "broken" in offered_for_removal(model.schemas[-1])  # a plain failure may be replaced


# A run held with a task in every status a patch can meet: each task's id says its status (and error).
LIVE = {
    "pending": TaskStatus.PENDING,
    "ready": TaskStatus.READY,
    "running": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "refused": TaskStatus.FAILED,
    "rejected": TaskStatus.FAILED,
    "skipped": TaskStatus.SKIPPED,
    "cancelled": TaskStatus.CANCELLED,
}
REMOVABLE = {"pending", "failed", "skipped"}
REWIRABLE = {"pending", "skipped"}


async def _settled(execution: Execution, expected: Mapping[str, TaskStatus]) -> None:
    for _ in range(1000):
        if all(execution.statuses.get(task_id) is status for task_id, status in expected.items()):
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the run never reached {dict(expected)}: {execution.statuses}")


@asynccontextmanager
async def held_run(task_id: str) -> AsyncIterator[Execution]:
    """A run holding a task `task_id` in the status its id names (a cancelled one only in a stopping run)."""
    release = asyncio.Event()

    async def gate(task: Task) -> Task:
        if task.id == "ready":
            await release.wait()
        if task.id == "rejected":
            raise ApprovalRejected("task 'rejected' was rejected by dana: no")
        return task

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id in ("failed", "cause"):
            raise RuntimeError("boom")
        if task.id == "refused":
            raise Refused("not this week")
        if task.id == "running":
            await release.wait()
        return task.id

    def task(task_id: str, *depends_on: str) -> Task:
        return Task(id=task_id, instruction="x", capability="c", depends_on=depends_on)

    tasks = [task("running"), task("pending", "running"), task("ready"), task("succeeded"), task("failed")]
    tasks += [task("refused"), task("rejected"), task("cause"), task("skipped", "cause")]
    expected = {key: status for key, status in LIVE.items() if key != "cancelled"}
    if task_id == "cancelled":
        tasks.append(task("cancelled", "running"))
    execution = Engine(run_task, gate=gate).start(TaskGraph(tasks=tasks))
    await _settled(execution, expected)
    if task_id == "cancelled":
        execution.stop("the caller is done")
        await _settled(execution, {"cancelled": TaskStatus.CANCELLED})
    try:
        yield execution
    finally:
        release.set()
        await execution


def _engine_applies(execution: Execution, patch: GraphPatch) -> bool:
    try:
        execution.apply(patch)
    except PatchRefused:
        return False
    except RuntimeError:  # a stopping run takes no patch at all
        return False
    return True


def _replanner_allows(execution: Execution, draft: dict[str, Any]) -> bool:
    checked = patch_model(execution.graph, execution.statuses, CAPABILITIES, execution.errors)
    try:
        checked.model_validate(draft)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("task_id", sorted(LIVE))
@pytest.mark.parametrize("change", ["remove", "rewire"])
async def test_the_engine_and_the_replanner_agree_on_every_status(task_id: str, change: str) -> None:
    if change == "remove":
        patch, draft = GraphPatch(remove=(task_id,)), {"remove": [task_id]}
    else:
        patch, draft = GraphPatch(rewire={task_id: ()}), {"rewire": [{"task_id": task_id, "depends_on": []}]}
    async with held_run(task_id) as execution:
        assert execution.statuses[task_id] is LIVE[task_id]
        allowed = _replanner_allows(execution, draft)  # asked first: the engine's patch changes the run
        assert _engine_applies(execution, patch) is allowed
        assert allowed is (task_id in (REMOVABLE if change == "remove" else REWIRABLE))
