#!/usr/bin/env python
"""The embedded local model on one standard goal: time to plan, time to finish, tokens, cost, and speed.

Usage: .venv/bin/python evals/perf/bench_local.py [--runs N] [--goal TEXT] [--json]

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
from orquestra.team import Team

STANDARD_GOAL = (
    "A shop sells widgets at 7 dollars each. Compute the cost of 12 widgets and write one sentence about it."
)


async def one_run(team: Team, goal: str) -> dict[str, Any]:
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


async def model_speed(team: Team) -> dict[str, float]:
    """Prompt and generation tokens per second on a fixed prompt of about 300 tokens."""
    model = team.model("local")
    text = " ".join(f"Item {i} costs {i * 3} dollars and weighs {i} kilograms." for i in range(30))
    messages = [Message("user", f"{text}\nList the five heaviest items with their prices, one per line.")]
    await model.request([Message("user", "Say ok.")])  # load the weights outside the timing
    start = time.perf_counter()
    response = await model.request(messages)
    elapsed = time.perf_counter() - start
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "generated_tokens": usage.output_tokens,
        "seconds": elapsed,
        "tokens_per_s": usage.total_tokens / elapsed,
        "generated_per_s": usage.output_tokens / elapsed,
    }


async def main() -> None:
    """Run the benchmark and print its figures."""
    logging.getLogger("instructor").setLevel(logging.CRITICAL)  # it logs each re-ask at ERROR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--goal", default=STANDARD_GOAL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    team = Team(model="local")
    speed = await model_speed(team)
    runs = [await one_run(team, args.goal) for _ in range(args.runs)]
    if args.json:
        print(json.dumps({"speed": speed, "runs": runs}, indent=2))
        return
    print(f"model: {team.model().name}; goal: {args.goal}")
    print(
        f"speed: {speed['prompt_tokens']} prompt + {speed['generated_tokens']} generated tokens in "
        f"{speed['seconds']:.1f} s (generation incl. prompt: {speed['generated_per_s']:.1f} tok/s)"
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
