from __future__ import annotations

from collections.abc import Iterable

from orquestra import Task, TaskGraph


def make_graph(edges: dict[str, Iterable[str]], capability: str = "research") -> TaskGraph:
    """A graph from {task id: its dependencies}, in the dict's order."""
    return TaskGraph(
        tasks=[
            Task(id=task_id, instruction=f"do {task_id}", capability=capability, depends_on=tuple(deps))
            for task_id, deps in edges.items()
        ]
    )
