"""The task graph: tasks, their checks, the queries a scheduler needs, and patches to the pending part.

A `TaskGraph` is valid by construction: building one runs every structural check (unique ids, known
dependencies, no self-dependency, no cycle, a bounded size), so code that holds a graph never re-checks it.
Checks that need outside knowledge (which capabilities a registry offers) are methods that raise
`GraphError`. Every check runs in time linear in tasks plus edges.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from orquestra.checks import CheckSpec
from orquestra.exceptions import GraphError, PatchRefused, describe_validation_error

MAX_TASKS = 10_000
"""The largest graph the engine accepts; planners use far smaller limits of their own."""

TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", min_length=1, max_length=64)]


class Task(BaseModel):
    """One unit of work: an instruction for an agent with a given capability."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: TaskId = Field(description="Short unique identifier, e.g. 'research_prices'.")
    instruction: str = Field(min_length=1, description="What the agent must do, in plain words.")
    capability: str = Field(min_length=1, description="The capability an agent needs for this task.")
    depends_on: tuple[TaskId, ...] = Field(default=(), description="Ids of the tasks whose outputs this task needs.")
    expected_output: str = Field(default="", description="What a good result looks like.")
    agent: str | None = Field(default=None, description="Pin this task to a named agent.")
    requires_approval: bool = Field(default=False, description="Wait for a person's approval before starting.")
    retries: int | None = Field(
        default=None, ge=0, le=20, description="Retries on transient errors; engine default if unset."
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds one attempt may take; engine default if unset."
    )
    checks: tuple[CheckSpec, ...] = Field(
        default=(), description="Checks the task's answer must pass, beyond the built-in ones and the agent's."
    )


class TaskGraph(BaseModel):
    """A validated directed acyclic graph of tasks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[Task, ...] = Field(description="The tasks, in any order.")

    @model_validator(mode="after")
    def _check_structure(self) -> TaskGraph:
        if not self.tasks:
            raise GraphError("the graph has no tasks")
        if len(self.tasks) > MAX_TASKS:
            raise GraphError(f"the graph has {len(self.tasks)} tasks; at most {MAX_TASKS} are allowed")
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise GraphError(f"duplicate task id '{task.id}'")
            seen.add(task.id)
        for task in self.tasks:
            for dep in task.depends_on:
                if dep == task.id:
                    raise GraphError(f"task '{task.id}' depends on itself")
                if dep not in seen:
                    raise GraphError(f"task '{task.id}' depends on unknown task '{dep}'")
            if len(set(task.depends_on)) != len(task.depends_on):
                raise GraphError(f"task '{task.id}' lists the same dependency twice")
        cycle = find_cycle({task.id: task.depends_on for task in self.tasks})
        if cycle:
            raise GraphError("the graph has a cycle: " + " -> ".join(cycle) + " (each task depends on the next)")
        return self

    # ---------------------------------------------------------------- indexes (built once, lazily)

    @cached_property
    def by_id(self) -> dict[str, Task]:
        """Each task by its id."""
        return {task.id: task for task in self.tasks}

    @cached_property
    def dependents(self) -> dict[str, tuple[str, ...]]:
        """For each task id, the ids of the tasks that depend on it, in graph order."""
        children: dict[str, list[str]] = {task.id: [] for task in self.tasks}
        for task in self.tasks:
            for dep in task.depends_on:
                children[dep].append(task.id)
        return {key: tuple(value) for key, value in children.items()}

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.by_id

    def __getitem__(self, task_id: str) -> Task:
        return self.by_id[task_id]

    # ---------------------------------------------------------------- queries

    def roots(self) -> list[Task]:
        """Tasks with no dependencies."""
        return [task for task in self.tasks if not task.depends_on]

    def sinks(self) -> list[Task]:
        """Tasks no other task depends on: the graph's final results."""
        return [task for task in self.tasks if not self.dependents[task.id]]

    def ready(self, finished: Collection[str]) -> list[Task]:
        """Tasks not yet finished whose dependencies have all finished, in graph order."""
        return [
            task for task in self.tasks if task.id not in finished and all(dep in finished for dep in task.depends_on)
        ]

    def topological_order(self) -> list[str]:
        """Task ids so that each comes after its dependencies; ties keep the graph's own order."""
        position = {task.id: index for index, task in enumerate(self.tasks)}
        waiting = {task.id: len(task.depends_on) for task in self.tasks}
        heap = [position[task.id] for task in self.tasks if not task.depends_on]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            task_id = self.tasks[heapq.heappop(heap)].id
            order.append(task_id)
            for child in self.dependents[task_id]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, position[child])
        return order

    def descendants(self, task_id: str) -> list[str]:
        """Every task that depends on `task_id`, directly or not, in breadth-first order."""
        found: list[str] = []
        seen = {task_id}
        frontier = [task_id]
        while frontier:
            next_frontier: list[str] = []
            for current in frontier:
                for child in self.dependents[current]:
                    if child not in seen:
                        seen.add(child)
                        found.append(child)
                        next_frontier.append(child)
            frontier = next_frontier
        return found

    def critical_path(self, duration: Callable[[Task], float] | None = None) -> list[str]:
        """The longest path through the graph, weighted by `duration` (one per task when not given)."""
        weight = duration or (lambda _task: 1.0)
        best: dict[str, float] = {}
        previous: dict[str, str | None] = {}
        for task_id in self.topological_order():
            task = self.by_id[task_id]
            parent = max(task.depends_on, key=best.__getitem__, default=None)
            best[task_id] = weight(task) + (best[parent] if parent is not None else 0.0)
            previous[task_id] = parent
        end: str | None = max(best, key=best.__getitem__)
        path: list[str] = []
        while end is not None:
            path.append(end)
            end = previous[end]
        return path[::-1]

    # ---------------------------------------------------------------- checks needing outside knowledge

    def check_capabilities(self, known: Collection[str]) -> None:
        """Raise `GraphError` naming the first task whose capability is not in `known`."""
        for task in self.tasks:
            if task.capability not in known:
                offered = ", ".join(sorted(known)) or "none"
                raise GraphError(
                    f"task '{task.id}' needs capability '{task.capability}', which no agent offers (known: {offered})"
                )

    def check_size(self, max_tasks: int) -> None:
        """Raise `GraphError` when the graph has more than `max_tasks` tasks."""
        if len(self.tasks) > max_tasks:
            raise GraphError(f"the graph has {len(self.tasks)} tasks; the limit here is {max_tasks}")

    # ---------------------------------------------------------------- patches

    def apply(self, patch: GraphPatch, frozen: Collection[str] = ()) -> TaskGraph:
        """Return a new graph with `patch` applied.

        `frozen` holds the ids of tasks that have started or finished: a patch that removes, replaces or
        rewires one of them is refused with `PatchRefused`. The result passes every structural check.
        """
        for task_id in patch.touched():
            if task_id in frozen:
                raise PatchRefused(f"the patch changes task '{task_id}', which has already started or finished")
            if task_id not in self.by_id:
                raise GraphError(f"the patch changes task '{task_id}', which is not in the graph")
        for task in patch.add:
            if task.id in self.by_id and task.id not in patch.remove:
                raise GraphError(f"the patch adds task '{task.id}', which is already in the graph")
        replaced = {task.id: task for task in patch.replace}
        removed = set(patch.remove)
        tasks: list[Task] = []
        for task in self.tasks:
            if task.id in removed:
                continue
            task = replaced.get(task.id, task)
            if task.id in patch.rewire:
                task = task.model_copy(update={"depends_on": tuple(patch.rewire[task.id])})
            tasks.append(task)
        tasks.extend(patch.add)
        return _rebuild(tasks)


class GraphPatch(BaseModel):
    """A change to the pending part of a graph: tasks to add, remove, replace, or rewire."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    add: tuple[Task, ...] = Field(default=(), description="New tasks.")
    remove: tuple[str, ...] = Field(default=(), description="Ids of pending tasks to drop.")
    replace: tuple[Task, ...] = Field(default=(), description="Pending tasks to replace, matched by id.")
    rewire: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="New dependency lists for pending tasks, by task id."
    )
    reason: str = Field(default="", description="Why the graph changes.")

    def touched(self) -> list[str]:
        """Ids of existing tasks this patch changes (removes, replaces or rewires)."""
        return [*self.remove, *(task.id for task in self.replace), *self.rewire]

    def is_empty(self) -> bool:
        """True when the patch changes nothing."""
        return not (self.add or self.remove or self.replace or self.rewire)


def numbered_id(task_id: str, taken: Collection[str]) -> str:
    """`task_id` numbered past every id in `taken`: 'total' -> 'total_2' (or 'total_3', ...)."""
    number = 2
    while f"{task_id}_{number}" in taken:
        number += 1
    return f"{task_id}_{number}"


def _rebuild(tasks: Iterable[Task]) -> TaskGraph:
    """Build a graph, turning pydantic's wrapper back into the `GraphError` our checks raised."""
    try:
        return TaskGraph(tasks=tuple(tasks))
    except ValidationError as error:
        raise GraphError(describe_validation_error(error)) from None


def find_cycle(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle in {task id: its dependencies}, as ids ending where it starts (each depends on the next).

    Returns an empty list when there is none. Dependencies on ids not in `parents` are ignored.
    """
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    for start in parents:
        if start in state:
            continue
        path: list[str] = [start]
        iterators = [iter(parents[start])]
        state[start] = 1
        while iterators:
            dep = next(iterators[-1], None)
            if dep is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            elif dep not in state and dep in parents:
                state[dep] = 1
                path.append(dep)
                iterators.append(iter(parents[dep]))
    return []


class Ancestry:
    """Which tasks are upstream of which (their transitive dependencies), in an acyclic {task id: dependencies}.

    Each task's ancestors are one bit set (a Python int), built in topological order without recursion: at
    most n²/8 bytes for n tasks (12 MB for `MAX_TASKS`), where a set of names per task would take gigabytes.
    Dependencies on ids not in `parents` are ignored.
    """

    def __init__(self, parents: Mapping[str, Sequence[str]]) -> None:
        self._ids = list(parents)
        self._bit = {task_id: 1 << index for index, task_id in enumerate(self._ids)}
        children: dict[str, list[str]] = {task_id: [] for task_id in parents}
        waiting = {task_id: 0 for task_id in parents}
        for task_id, deps in parents.items():
            for dep in deps:
                if dep in children:
                    children[dep].append(task_id)
                    waiting[task_id] += 1
        self._ancestors = {task_id: 0 for task_id in parents}
        ready = [task_id for task_id, count in waiting.items() if count == 0]
        while ready:
            task_id = ready.pop()
            mask = self._ancestors[task_id] | self._bit[task_id]
            for child in children[task_id]:
                self._ancestors[child] |= mask
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)

    def is_upstream(self, ancestor: str, task_id: str) -> bool:
        """Whether `task_id` depends on `ancestor`, directly or not."""
        bit = self._bit.get(ancestor)
        return bit is not None and bool(self._ancestors.get(task_id, 0) & bit)
