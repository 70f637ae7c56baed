"""Deterministic repair of a weak model's plan: the fixes a small model needs and re-asking does not give.

Each fix is recorded in plain words, so a run can say what was changed. The repair never invents work: it
renames, re-labels and drops edges, and it drops tasks only beyond the size limit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from typing import Any

from orquestra.graph import Task, TaskGraph, find_cycle

_ID_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def repair_plan(raw_tasks: list[Any], capabilities: Collection[str], max_tasks: int) -> tuple[TaskGraph, list[str]]:
    """Turn the model's task list into a valid graph, fixing what can be fixed; returns the fixes made.

    Fixes, in order: unusable entries dropped, tasks beyond `max_tasks` dropped, ids made valid and
    unique, an unknown capability mapped to the closest known one, self, dangling and duplicate edges
    dropped, and while a cycle remains, its edge that points forward in the list dropped. Raises
    `GraphError` (from `TaskGraph`) if what is left is still not a graph, e.g. no tasks at all.
    """
    fixes: list[str] = []
    entries = [entry for entry in raw_tasks if isinstance(entry, dict) and str(entry.get("instruction", "")).strip()]
    if len(entries) < len(raw_tasks):
        fixes.append(f"dropped {len(raw_tasks) - len(entries)} entries without an instruction")
    if len(entries) > max_tasks:
        fixes.append(f"kept the first {max_tasks} of {len(entries)} tasks")
        entries = entries[:max_tasks]
    ids = _unique_ids(entries, fixes)
    known = sorted(capabilities)
    renamed: dict[str, str] = {}
    for entry, new in zip(entries, ids, strict=True):
        renamed.setdefault(str(entry.get("id", "")), new)  # a duplicated id keeps pointing at its first task
    position = {task_id: index for index, task_id in enumerate(ids)}
    tasks: list[dict[str, Any]] = []
    for entry, task_id in zip(entries, ids, strict=True):
        capability = str(entry.get("capability", "")).strip()
        if capability not in capabilities and known:
            closest = _closest(capability, known)
            fixes.append(f"task '{task_id}': unknown capability '{capability}' mapped to '{closest}'")
            capability = closest
        depends_on: list[str] = []
        for dep in _listed(entry.get("depends_on")):
            target = renamed.get(str(dep), str(dep))
            if target == task_id:
                fixes.append(f"task '{task_id}': dropped its dependency on itself")
            elif target not in position:
                fixes.append(f"task '{task_id}': dropped dependency on unknown task '{dep}'")
            elif target not in depends_on:
                depends_on.append(target)
        tasks.append(
            {
                "id": task_id,
                "instruction": str(entry["instruction"]).strip(),
                "capability": capability,
                "depends_on": depends_on,
                "expected_output": str(entry.get("expected_output") or ""),
            }
        )
    _break_cycles(tasks, position, fixes)
    return TaskGraph(tasks=tuple(Task(**task) for task in tasks)), fixes


def _listed(dependencies: Any) -> list[Any]:
    """The dependencies an entry names: a list, or one id written without its list; anything else names none."""
    if isinstance(dependencies, list | tuple):
        return list(dependencies)
    return [dependencies] if isinstance(dependencies, str) and dependencies else []


def _unique_ids(entries: list[dict[str, Any]], fixes: list[str]) -> list[str]:
    ids: list[str] = []
    for index, entry in enumerate(entries, start=1):
        original = str(entry.get("id", "")).strip()
        base = _ID_CHARS.sub("_", original).strip("_.-")[:60] or f"task_{index}"
        candidate, suffix = base, 2
        while candidate in ids:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        if candidate != original:
            fixes.append(f"task id '{original}' renamed to '{candidate}'")
        ids.append(candidate)
    return ids


def _closest(capability: str, known: list[str]) -> str:
    matches = difflib.get_close_matches(capability.lower(), known, n=1, cutoff=0.0)
    return matches[0] if matches else known[0]


def _break_cycles(tasks: list[dict[str, Any]], position: dict[str, int], fixes: list[str]) -> None:
    by_id = {task["id"]: task for task in tasks}
    while True:
        cycle = find_cycle({task["id"]: task["depends_on"] for task in tasks})
        if not cycle:
            return
        # A cycle always holds an edge to a task later in the list; dropping it keeps the model's order.
        for task_id, dep in zip(cycle, cycle[1:], strict=False):
            if position[dep] > position[task_id]:
                by_id[task_id]["depends_on"].remove(dep)
                fixes.append(f"task '{task_id}': dropped dependency on later task '{dep}' (it closed a cycle)")
                break
