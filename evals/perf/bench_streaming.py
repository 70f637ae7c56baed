#!/usr/bin/env python
"""Time to first task and makespan, plans streaming into the engine against plan-then-run.

Usage: .venv/bin/python evals/perf/bench_streaming.py [--rounds N] [--task-seconds S] [--agent-seconds S] [--json]
       flock /tmp/orquestra-model.lock .venv/bin/python evals/perf/bench_streaming.py --local   # + embedded model

Scripted: a planner model writes a 6-task plan one word at a time, so that each task takes `--task-seconds`
to write (the whole plan 6 times that), and every agent answers after `--agent-seconds`. Three shapes: six
independent tasks, a chain of six, and a mixed graph (two roots, fan-in, depth four). Each shape runs with
`AutoTeam(stream_plans=True)` and with `stream_plans=False`, alternating which goes first, `--rounds` times;
the figures are medians. Time to first task: from the start of `arun` to the first `TaskStarted`. Makespan:
from the start of `arun` to `RunFinished` (the answer, the same for both, is left out).

`--local` also runs, once each way, the embedded model as planner: first with scripted agents (how the
embedded model's own plan streams), then with the embedded model for everything (the agents' calls queue
behind the planner's on its one thread, so streaming cannot gain there: tasks wait, as ready, for the plan).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

from orquestra import Registry
from orquestra.events import Event, Planned, RunFinished, TaskStarted
from orquestra.models import Message, ScriptedModel
from orquestra.registry import AgentCard
from orquestra.team import AutoTeam

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts.", capabilities=("research",)),
        AgentCard(name="writer", description="Writes.", capabilities=("writing",)),
    ]
)
LOCAL_GOAL = "Find the populations of France and of Spain, compute the difference, and write a short note about it."


def task(task_id: str, depends_on: Sequence[str] = (), capability: str = "research") -> dict[str, Any]:
    return {
        "id": task_id,
        "instruction": f"Work out the part of the answer called {task_id}, from the goal and the results it needs.",
        "capability": capability,
        "depends_on": list(depends_on),
    }


SHAPES: dict[str, dict[str, Any]] = {
    "independent": {"tasks": [task(f"t{i}") for i in range(6)]},
    "chain": {"tasks": [task(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(6)]},
    "mixed": {
        "tasks": [
            task("a"),
            task("b"),
            task("c", ["a"]),
            task("d", ["a", "b"]),
            task("e", ["c"]),
            task("f", ["d", "e"], "writing"),
        ]
    },
}


def words(plan: dict[str, Any]) -> int:
    return len(json.dumps(plan).split())


def scripted_team(plan: dict[str, Any], stream: bool, task_seconds: float, agent_seconds: float) -> AutoTeam:
    token_latency = task_seconds * len(plan["tasks"]) / words(plan)

    def agents(messages: Sequence[Message]) -> str:
        return "Done [f]." if "final answer of a team" in messages[0].content else "A result."

    return AutoTeam(
        registry=REGISTRY,
        model=ScriptedModel(agents, latency=agent_seconds, name="agents"),
        models={"planner": ScriptedModel(lambda messages: plan, token_latency=token_latency, name="planner")},
        planner_model="planner",
        memory=False,
        store=False,
        stream_plans=stream,
    )


async def timed(team: AutoTeam, goal: str) -> dict[str, Any]:
    """Run `goal` once; seconds from the start to the first task, the end of planning, and the end of the run."""
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def mark(event: Event) -> None:
        now = time.perf_counter() - start
        if isinstance(event, TaskStarted):
            marks.setdefault("first_task_s", now)
        elif isinstance(event, Planned):
            marks["planned_s"] = now
        elif isinstance(event, RunFinished):
            marks["makespan_s"] = now

    result = await team.arun(goal, subscribers=[mark])
    return {**marks, "status": result.status.value, "tasks": len(result.graph)}


async def scripted(rounds: int, task_seconds: float, agent_seconds: float) -> list[dict[str, Any]]:
    await timed(scripted_team(SHAPES["chain"], True, 0.01, 0.0), "warm up")  # imports, outside the timing
    rows = []
    for shape, plan in SHAPES.items():
        samples: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for index in range(rounds):
            for stream in (True, False) if index % 2 == 0 else (False, True):
                team = scripted_team(plan, stream, task_seconds, agent_seconds)
                samples[stream].append(await timed(team, f"the {shape} goal"))
        for stream in (True, False):
            runs = samples[stream]
            rows.append(
                {
                    "shape": shape,
                    "mode": "streaming" if stream else "plan-then-run",
                    "first_task_s": statistics.median(run["first_task_s"] for run in runs),
                    "planned_s": statistics.median(run["planned_s"] for run in runs),
                    "makespan_s": statistics.median(run["makespan_s"] for run in runs),
                    "statuses": sorted({run["status"] for run in runs}),
                    "samples": runs,
                }
            )
    return rows


async def local() -> list[dict[str, Any]]:
    logging.getLogger("instructor").setLevel(logging.CRITICAL)  # it logs each re-ask at ERROR
    rows = []
    for agents in ("scripted", "local"):
        for stream in (True, False):
            agent_model = ScriptedModel(lambda messages: "A result.", latency=0.5, name="agents")
            team = AutoTeam(
                model=agent_model if agents == "scripted" else "local",
                planner_model="local",
                memory=False,
                store=False,
                stream_plans=stream,
            )
            await team.model("local").request([Message("user", "Say ok.")])  # load the weights outside the timing
            run = await timed(team, LOCAL_GOAL)
            rows.append({"agents": agents, "mode": "streaming" if stream else "plan-then-run", **run})
    return rows


def main() -> None:
    """Run the benchmark and print its figures."""
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task-seconds", type=float, default=0.5, help="seconds the planner takes per task")
    parser.add_argument("--agent-seconds", type=float, default=0.5, help="seconds each agent call takes")
    parser.add_argument("--local", action="store_true", help="also run on the embedded model (slow)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(scripted(args.rounds, args.task_seconds, args.agent_seconds))
    local_rows = asyncio.run(local()) if args.local else []
    if args.json:
        print(json.dumps({"scripted": rows, "local": local_rows}, indent=2))
        return
    print(
        f"scripted: 6-task plan, {args.task_seconds:g} s per task written, agents {args.agent_seconds:g} s, "
        f"medians of {args.rounds} rounds"
    )
    print(f"{'shape':<12} {'mode':<14} {'first task':>10} {'planned':>8} {'makespan':>9}  status")
    for row in rows:
        print(
            f"{row['shape']:<12} {row['mode']:<14} {row['first_task_s']:>9.2f}s {row['planned_s']:>7.2f}s "
            f"{row['makespan_s']:>8.2f}s  {','.join(row['statuses'])}"
        )
    for shape in SHAPES:
        streaming, batch = (next(r for r in rows if r["shape"] == shape and r["mode"] == m) for m in MODES)
        ratio = streaming["first_task_s"] / batch["first_task_s"]
        gain = streaming["makespan_s"] / batch["makespan_s"]
        verdict = "pass" if ratio <= 0.5 else "FAIL"
        print(f"{shape}: first task {ratio:.2f}x plan-then-run's (target <= 0.5: {verdict}); makespan {gain:.2f}x")
    for row in local_rows:
        print(
            f"embedded planner, {row['agents']} agents, {row['mode']}: {row['tasks']} tasks, "
            f"first task {row['first_task_s']:.1f}s, planned {row['planned_s']:.1f}s, "
            f"makespan {row['makespan_s']:.1f}s, {row['status']}"
        )


MODES = ("streaming", "plan-then-run")

if __name__ == "__main__":
    main()
