#!/usr/bin/env python
"""The embedded local model on one standard goal: time to plan, time to finish, tokens, cost, and speed.

Usage: .venv/bin/python evals/perf/bench_local.py [--model local|local:small|local:PATH] [--runs N] [--goal TEXT]
       [--planner auto|single|staged] [--json]

Each run plans the goal, runs the plan with the registry's agents and writes the answer, all on the
embedded model, and reports wall-clock seconds per phase and the tokens counted by the model interface.
The model's own speed (prompt and generation tokens per second) is measured separately on a fixed prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from typing import Any

from orquestra.models import Message
from orquestra.team import AutoTeam

STANDARD_GOAL = (
    "A shop sells widgets at 7 dollars each. Compute the cost of 12 widgets and write one sentence about it."
)


async def one_run(team: AutoTeam, goal: str) -> dict[str, Any]:
    """Plan, run and answer `goal` once; seconds per phase and usage."""
    start = time.perf_counter()
    meter = team.meter()
    plan = await team.plan(goal, meter=meter)
    planned = time.perf_counter()
    outcome = await team.execute(plan.graph, goal=goal, meter=meter)
    ran = time.perf_counter()
    result = await team.finish(goal, plan, outcome)
    run = result.run
    done = time.perf_counter()
    return {
        "plan_s": planned - start,
        "run_s": ran - planned,
        "synthesis_s": done - ran,
        "total_s": done - start,
        "tasks": len(plan.graph),
        "repairs": len(plan.repairs),
        "status": run.status.value,
        "requests": result.usage.requests,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cost": result.usage.cost,
        "answer": result.answer[:200],
    }


async def model_speed(team: AutoTeam) -> dict[str, float]:
    """Prompt tokens per second (a long prompt, a short answer) and generation tokens per second (the reverse)."""
    model = team.model()
    await model.request([Message("user", "Say ok.")])  # load the weights outside the timing
    text = " ".join(f"Item {i} costs {i * 3} dollars and weighs {i} kilograms." for i in range(30))
    start = time.perf_counter()
    read = await model.request([Message("user", f"{text}\nHow many items are listed? Answer with a number.")])
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    written = await model.request([Message("user", "Write the numbers from 1 to 80 in words, separated by commas.")])
    write_s = time.perf_counter() - start
    return {
        "prompt_tokens": read.usage.input_tokens,
        "prompt_per_s": read.usage.input_tokens / read_s,
        "generated_tokens": written.usage.output_tokens,
        "generated_per_s": written.usage.output_tokens / write_s,
    }


async def main() -> None:
    """Run the benchmark and print its figures."""
    logging.getLogger("instructor").setLevel(logging.CRITICAL)  # it logs each re-ask at ERROR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--goal", default=STANDARD_GOAL)
    parser.add_argument("--model", default="local")
    parser.add_argument("--planner", default="auto", choices=("auto", "single", "staged"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # No memory: a recalled earlier run would change the plan, and each run must be like the first.
    team = AutoTeam(model=args.model, planner=args.planner, memory=False)
    speed = await model_speed(team)
    runs = [await one_run(team, args.goal) for _ in range(args.runs)]
    if args.json:
        print(json.dumps({"speed": speed, "runs": runs}, indent=2))
        return
    print(f"model: {team.model().name}; planner: {args.planner}; goal: {args.goal}")
    print(
        f"speed: prompt {speed['prompt_per_s']:.0f} tok/s ({speed['prompt_tokens']:.0f} tokens), "
        f"generation {speed['generated_per_s']:.1f} tok/s ({speed['generated_tokens']:.0f} tokens)"
    )
    for index, run in enumerate(runs, 1):
        print(
            f"run {index}: {run['status']}, {run['tasks']} tasks ({run['repairs']} repairs), "
            f"plan {run['plan_s']:.1f} s, "
            f"run {run['run_s']:.1f} s, answer {run['synthesis_s']:.1f} s, total {run['total_s']:.1f} s, "
            f"{run['requests']} calls, {run['input_tokens']}+{run['output_tokens']} tokens, "
            f"${run['cost']:.4f}"
        )
    for key in ("plan_s", "total_s"):
        print(f"median {key}: {statistics.median(run[key] for run in runs):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
