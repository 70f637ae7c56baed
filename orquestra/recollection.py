"""Between a run and long-term memory: what a finished run leaves behind, and what past runs teach a plan.

After a run, `run_memory` keeps the goal, the final graph, the outcome, a summary per task (with the agent
that did it, for the dispatcher's tie-breaks), the lessons and the answer. Before planning, `examples`
turns the most similar past runs into worked examples for the planner, the successful ones first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from orquestra.dispatch import Assignment
from orquestra.engine import RunResult, RunStatus, TaskStatus
from orquestra.loop import LoopRecord
from orquestra.memory import Recalled, RunMemory, TaskMemory
from orquestra.planner import PlanExample
from orquestra.trimming import shorten

SUMMARY_CHARS = 300


def run_memory(
    goal: str,
    run: RunResult,
    loop: LoopRecord,
    assignments: Mapping[str, Assignment],
    answer: str,
    repairs: Sequence[str] = (),
) -> RunMemory:
    """What memory keeps of a finished run."""
    tasks = []
    for task in run.graph.tasks:
        status = run.statuses[task.id]
        if status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            continue  # never ran: nothing to learn about its agent
        assignment = assignments.get(task.id)
        detail = run.outputs.get(task.id) if status is TaskStatus.SUCCEEDED else run.errors.get(task.id)
        tasks.append(
            TaskMemory(
                task_id=task.id,
                capability=task.capability,
                agent=assignment.agent.name if assignment else "",
                succeeded=status is TaskStatus.SUCCEEDED,
                summary=shorten(str(detail or ""), SUMMARY_CHARS),
            )
        )
    for task_id, error in run.superseded.items():
        assignment = assignments.get(task_id)
        capability = next((g[task_id].capability for g in loop.graphs if task_id in g), "")
        agent = assignment.agent.name if assignment else ""
        tasks.append(TaskMemory(task_id, capability, agent, False, shorten(str(error), SUMMARY_CHARS)))
    return RunMemory(
        run_id=run.run_id,
        goal=goal,
        outcome=run.status.value,
        graph=run.graph,
        tasks=tasks,
        lessons=lessons(run, loop, repairs),
        answer=answer,
        reason=run.reason,
    )


def lessons(run: RunResult, loop: LoopRecord, repairs: Sequence[str] = ()) -> list[str]:
    """What the next plan for a similar goal should know, in plain words."""
    found = [f"the first plan had to change: {replan.reason}; fix: {replan.diff}" for replan in loop.replans]
    if repairs:
        found.append("the planner's draft needed repair: " + "; ".join(repairs[:3]))
    if loop.ended_by:
        found.append(f"the run ended early: {loop.ended_by}")
    if run.status is RunStatus.FAILED:
        found.append(f"the run failed: {run.reason}")
    return [shorten(lesson, 400) for lesson in found]


def examples(recalled: Sequence[Recalled], limit: int = 2) -> list[PlanExample]:
    """Worked examples for the planner from recalled runs: successful ones first, then the most similar."""
    ranked = sorted(recalled, key=lambda item: (item.run.outcome != "succeeded", -item.similarity))
    chosen = []
    for item in ranked[:limit]:
        plan = {
            "tasks": [
                {
                    "id": task.id,
                    "instruction": task.instruction,
                    "capability": task.capability,
                    "depends_on": list(task.depends_on),
                }
                for task in item.run.graph.tasks
            ]
        }
        chosen.append(PlanExample(item.run.goal, json.dumps(plan), "; ".join(item.run.lessons)))
    return chosen
