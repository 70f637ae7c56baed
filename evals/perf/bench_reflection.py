#!/usr/bin/env python
"""Model calls per run with and without model reflection, on the same scripted scenarios.

Usage: .venv/bin/python evals/perf/bench_reflection.py

Each scenario is a plan and scripted agent answers; the scripted model plays planner, agents, reflector,
replanner and synthesiser, and always answers "continue" when asked to judge. The table shows the calls of
each kind per run in each reflection mode ("failure" asks the model nothing; deterministic checks only).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from orquestra import Registry
from orquestra.models import Message, ScriptedModel
from orquestra.registry import AgentCard
from orquestra.team import AutoTeam

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts.", capabilities=("research",)),
        AgentCard(name="writer", description="Writes.", capabilities=("writing",)),
    ]
)


def task(task_id: str, capability: str = "research", depends_on: Sequence[str] = ()) -> dict[str, Any]:
    return {"id": task_id, "instruction": f"do {task_id}", "capability": capability, "depends_on": list(depends_on)}


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "diamond (4 tasks)": (
        {"tasks": [task("a"), task("b"), task("c", "writing", ["a", "b"]), task("d", "writing", ["c"])]},
        {},
    ),
    "chain (6 tasks)": ({"tasks": [task(f"s{i}", depends_on=[f"s{i - 1}"] if i else []) for i in range(6)]}, {}),
    "fan-out (1 -> 6 -> 1)": (
        {
            "tasks": [
                task("root"),
                *(task(f"m{i}", depends_on=["root"]) for i in range(6)),
                task("join", "writing", [f"m{i}" for i in range(6)]),
            ]
        },
        {},
    ),
    "missing data (replan)": (
        {"tasks": [task("price"), task("note", "writing", ["price"])]},
        {"price": "The price is missing."},
    ),
}
PATCH = {"add": [task("ask_vendor")], "remove": [], "rewire": [{"task_id": "note", "depends_on": ["ask_vendor"]}]}


def brain(plan: dict[str, Any], special: dict[str, str], calls: Counter[str]) -> Any:
    def answer(messages: Sequence[Message]) -> Any:
        system, last = messages[0].content, messages[-1].content
        for marker, kind in (
            ("planner of a team", "plan"),
            ("revise the plan", "replan"),
            ("judge the progress", "reflect"),
            ("final answer of a team", "answer"),
        ):
            if marker in system:
                calls[kind] += 1
                if kind == "plan":
                    return plan
                if kind == "replan":
                    return PATCH
                if kind == "reflect":
                    return {"decision": "continue", "reason": "on track"}
                return "final answer"
        calls["agent"] += 1
        for task_id, reply in special.items():
            if f"Your task ({task_id})" in last:
                return reply
        return "done"

    return answer


async def measure(mode: str, plan: dict[str, Any], special: dict[str, str]) -> Counter[str]:
    calls: Counter[str] = Counter()
    team = AutoTeam(
        registry=REGISTRY, model=ScriptedModel(brain(plan, special, calls), name="brain"), reflection=mode, memory=False
    )
    await team.arun("a goal")
    return calls


async def main() -> None:
    """Print the calls per run for each scenario and mode."""
    header = ("plan", "agent", "reflect", "replan", "answer", "total")
    print(f"{'scenario':24} {'mode':11} " + " ".join(f"{name:>7}" for name in header))
    for name, (plan, special) in SCENARIOS.items():
        for mode in ("failure", "wave", "every-task"):
            c = await measure(mode, plan, special)
            total = sum(c.values())
            figures = (*(c[kind] for kind in header[:-1]), total)
            print(f"{name:24} {mode:11} " + " ".join(f"{figure:>7}" for figure in figures))


if __name__ == "__main__":
    asyncio.run(main())
