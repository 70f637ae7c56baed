"""Replanning: goal, graph, results and a verdict in; a checked `GraphPatch` for the pending part out.

The model answers with a `PatchDraft`; its validator applies the patch to the current graph under the same
rules the engine enforces (finished work is frozen) and runs the same checks as a plan, so instructor sends
any problem back to the model. Like the planner, the replanner returns data and changes nothing itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from orquestra.engine import TaskStatus, frozen_ids
from orquestra.exceptions import GraphError, InvalidOutput
from orquestra.exceptions import ReplanError as ReplanError
from orquestra.graph import GraphPatch, Task, TaskGraph, numbered_id
from orquestra.models import Message, Model, Usage
from orquestra.planner import PlannedTask
from orquestra.prompts import render
from orquestra.reflect import Replan
from orquestra.trimming import shorten


class Rewire(BaseModel):
    """A pending task's new list of dependencies."""

    task_id: str
    depends_on: list[str]


class PatchDraft(BaseModel):
    """The model's patch: tasks to add, tasks to remove, tasks to rewire."""

    what: ClassVar[str] = "patch of the plan"
    """What this answer is, in words for error messages."""

    add: list[PlannedTask] = Field(default_factory=list, description="New tasks.")
    remove: list[str] = Field(default_factory=list, description="Ids of pending, skipped or failed tasks to drop.")
    rewire: list[Rewire] = Field(default_factory=list, description="New dependencies for pending or skipped tasks.")

    def to_patch(self, reason: str = "") -> GraphPatch:
        """The `GraphPatch` this draft describes."""
        return GraphPatch(
            add=tuple(Task(**task.model_dump()) for task in self.add),
            remove=tuple(self.remove),
            rewire={item.task_id: tuple(item.depends_on) for item in self.rewire},
            reason=reason,
        )


def patch_model(
    graph: TaskGraph,
    statuses: Mapping[str, TaskStatus],
    capabilities: Collection[str],
    errors: Mapping[str, BaseException] | None = None,
) -> type[PatchDraft]:
    """A `PatchDraft` type for this graph and these statuses: it can only name what the engine will change.

    Its schema lists the tasks that may be removed or rewired and the known capabilities (so constrained
    decoding cannot write anything else), and its validator applies the patch under the engine's own rule
    (`orquestra.engine.frozen_ids`) and runs the plan checks, so a patch that passes here is one the engine
    accepts.
    """
    errors = errors or {}
    # Both lists come from the engine's rule: a task left open by a patch that removes everything may be
    # removed, and one left open by a patch that removes nothing may be rewired.
    may_remove = sorted(set(statuses) - frozen_ids(statuses, errors, removing=statuses))
    may_rewire = sorted(set(statuses) - frozen_ids(statuses, errors))
    may_redo = {task_id for task_id, status in statuses.items() if status is TaskStatus.SUCCEEDED}
    task_type = create_model(
        "PlannedTask",
        __base__=PlannedTask,
        capability=(_one_of(sorted(capabilities)), Field(description="One capability from the list.")),
    )
    rewire_type = create_model(
        "Rewire",
        __base__=Rewire,
        task_id=(_one_of(may_rewire), Field(description="A pending or skipped task.")),
    )

    remove_type: Any = list[_one_of(may_remove)]  # type: ignore[misc]

    def _replaces(data: Any) -> Any:
        # Small models "replace" a task by adding one with its id. A failed or pending one: read that as the
        # replacement it means, the old one removed. A succeeded one: as doing it again, under a fresh id that
        # the open tasks needing it now need instead. (Deterministic repairs, like the plan's.)
        if not isinstance(data, dict):
            return data
        added = [task for task in data.get("add") or () if isinstance(task, dict)]
        remove = list(data.get("remove") or ())
        implied = [task.get("id") for task in added if task.get("id") in may_remove and task.get("id") not in remove]
        redone = _fresh_ids([task.get("id") for task in added if task.get("id") in may_redo], graph.by_id)
        if redone:
            data = _redo(data, redone, graph, [task_id for task_id in may_rewire if task_id not in remove])
        return {**data, "remove": [*remove, *implied]} if implied else data

    def _applies(self: PatchDraft) -> PatchDraft:
        patch = self.to_patch()
        if patch.is_empty():
            raise ValueError("the patch changes nothing")
        new_graph = graph.apply(patch, frozen=frozen_ids(statuses, errors, patch.remove))
        new_graph.check_capabilities(capabilities)
        return self

    validators: dict[str, Any] = {
        "_replaces": model_validator(mode="before")(_replaces),
        "_applies": model_validator(mode="after")(_applies),
    }
    return create_model(
        "CheckedPatch",
        __base__=PatchDraft,
        __validators__=validators,
        add=(list[task_type], Field(default_factory=list, description="New tasks.")),
        remove=(
            remove_type,
            Field(default_factory=list, max_length=len(may_remove), description="Ids of tasks to drop."),
        ),
        rewire=(
            list[rewire_type],
            Field(default_factory=list, max_length=len(may_rewire), description="New dependencies of tasks."),
        ),
    )


def _fresh_ids(ids: Sequence[Any], taken: Collection[str]) -> dict[str, str]:
    """A new id for each of `ids` (strings), not among `taken` nor each other: 'total' -> 'total_2'."""
    fresh: dict[str, str] = {}
    used = set(taken)
    for task_id in dict.fromkeys(task_id for task_id in ids if isinstance(task_id, str)):
        fresh[task_id] = numbered_id(task_id, used)
        used.add(fresh[task_id])
    return fresh


def _redo(
    data: dict[str, Any], redone: Mapping[str, str], graph: TaskGraph, may_rewire: Collection[str]
) -> dict[str, Any]:
    """`data` with each added task named in `redone` under its fresh id, and what needed the old one rewired.

    Added tasks and open tasks that needed a redone task need its new run instead; a rewire the model wrote
    itself is kept as written.
    """

    def renamed(ids: Any) -> Any:
        return [redone.get(item, item) for item in ids] if isinstance(ids, list) else ids

    tasks = [
        {**task, "id": redone.get(task["id"], task["id"]), "depends_on": renamed(task.get("depends_on", []))}
        if isinstance(task, dict) and isinstance(task.get("id"), str)
        else task
        for task in data.get("add") or ()
    ]
    rewire = [item for item in data.get("rewire") or () if isinstance(item, dict)]
    written = {item.get("task_id") for item in rewire}
    for task_id in sorted(may_rewire):
        needs = list(graph[task_id].depends_on)
        if task_id not in written and any(need in redone for need in needs):
            rewire.append({"task_id": task_id, "depends_on": renamed(needs)})
    return {**data, "add": tasks, "rewire": rewire}


def _one_of(values: Sequence[str]) -> Any:
    """A string type limited to `values` (any string when there are none: the list it sits in must be empty)."""
    return Literal[tuple(values)] if values else str


class Replanner:
    """Turns a `Replan` verdict into a patch, with a model."""

    def __init__(self, model: Model, capabilities: Collection[str], *, retries: int = 1) -> None:
        self.model = model
        self.capabilities = sorted(capabilities)
        self.retries = retries
        self.usage = Usage()

    async def patch(
        self,
        goal: str,
        graph: TaskGraph,
        statuses: Mapping[str, TaskStatus],
        outputs: Mapping[str, Any],
        verdict: Replan,
        *,
        errors: Mapping[str, BaseException] | None = None,
    ) -> GraphPatch:
        """A checked patch for the pending part of `graph`; `ReplanError` when the model cannot give one.

        `errors` are the run's task errors, by task id: a task a person refused may not be removed.
        """
        results = {task_id: shorten(str(output), 800) for task_id, output in outputs.items()}
        prompt = render(
            "loop/replan.j2",
            goal=goal,
            graph=graph,
            statuses=statuses,
            results=results,
            reason=verdict.reason,
            change=verdict.change,
            capabilities=self.capabilities,
        )
        messages = [Message("system", "You revise the plan of a team of AI agents."), Message("user", prompt)]
        output_type = patch_model(graph, statuses, self.capabilities, errors)
        try:
            draft, usage = await self.model.structured(messages, output_type, max_retries=self.retries)
        except (InvalidOutput, GraphError) as error:
            if isinstance(error, InvalidOutput) and isinstance(error.usage, Usage):
                self.usage = self.usage + error.usage
            raise ReplanError(f"no valid patch: {error.message}") from error
        self.usage = self.usage + usage
        return draft.to_patch(verdict.reason)


def describe_patch(before: TaskGraph, patch: GraphPatch) -> str:
    """The patch as a short diff: '+ added (capability)', '- removed', '~ rewired: a, b -> c'."""
    lines = [f"+ {task.id} ({task.capability}): {task.instruction}" for task in patch.add]
    lines += [f"- {task_id}" for task_id in patch.remove]
    lines += [f"* {task.id}: {task.instruction}" for task in patch.replace]
    for task_id, deps in patch.rewire.items():
        old = ", ".join(before[task_id].depends_on) if task_id in before else ""
        lines.append(f"~ {task_id}: needs [{old}] -> [{', '.join(deps)}]")
    return "\n".join(lines)
