"""Benchmark the engine's own cost against a plain-asyncio reference on the same workloads.

The fake model only sleeps, so every millisecond above the sleeps is scheduling cost. Each workload runs
on orquestra's `Engine` and on a reference that creates one `asyncio.Task` per node up front (in
topological order), each awaiting its parents' tasks; both run the same node body, alternating round by
round so that machine noise hits both. Figures are medians over the rounds.

    .venv/bin/python evals/perf/bench_engine.py [--rounds N] [--workload W1|W2|W3h|W4 ...] [--json]

The exit status is 0 whatever the figures (this is a benchmark, not a test); 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orquestra import Engine, RunStatus, Task, TaskGraph

WORKLOADS = ("W1", "W2", "W3h", "W4")

Plan = tuple[tuple[str, tuple[str, ...]], ...]
"""Each node id with its parents' ids, in topological order."""

Kind = Literal["per_task", "makespan", "throughput"]


# ---------------------------------------------------------------- the node body, shared by both sides


def build_prompt(node_id: str, parent_outputs: Sequence[str]) -> str:
    """What a real agent would send to its model: the task and its parents' outputs."""
    return node_id + ":" + "|".join(parent_outputs)


def reply(prompt: str) -> str:
    """The fake model's answer; short, so that string growth along a chain costs nothing."""
    return "ok:" + prompt[:24]


async def node_body(node_id: str, parent_outputs: Sequence[str], latency: float) -> str:
    """Build the prompt, "call the model" (sleep; ``sleep(0)`` just yields once), answer."""
    prompt = build_prompt(node_id, parent_outputs)
    await asyncio.sleep(latency)
    return reply(prompt)


def expected_outputs(plan: Plan) -> dict[str, str]:
    """Every node's output, computed without any scheduler."""
    outputs: dict[str, str] = {}
    for node_id, parents in plan:
        outputs[node_id] = reply(build_prompt(node_id, [outputs[parent] for parent in parents]))
    return outputs


# ---------------------------------------------------------------- the two runners


def orquestra_run_task(latency: Mapping[str, float]) -> Callable[[Task, Mapping[str, Any]], Awaitable[str]]:
    """The engine's `run_task`: the node body with the parents' outputs in `depends_on` order."""

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        return await node_body(task.id, [inputs[dep] for dep in task.depends_on], latency[task.id])

    return run_task


async def _reference_node(node_id: str, parents: list[asyncio.Task[str]], latency: float) -> str:
    outputs = [await parent for parent in parents]
    return await node_body(node_id, outputs, latency)


async def reference_run(plan: Plan, latency: Mapping[str, float]) -> dict[str, str]:
    """Run the graph in plain asyncio: one task per node, created up front, each awaiting its parents."""
    tasks: dict[str, asyncio.Task[str]] = {}
    for node_id, parents in plan:
        tasks[node_id] = asyncio.create_task(
            _reference_node(node_id, [tasks[parent] for parent in parents], latency[node_id])
        )
    results = await asyncio.gather(*tasks.values())
    return dict(zip(tasks, results, strict=True))


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """One benchmark point: a prebuilt graph, its latencies, and how its figure is scored."""

    key: str
    label: str
    graph: TaskGraph
    plan: Plan
    latency: dict[str, float]
    kind: Kind
    target: float
    """Cost per task: max ratio to asyncio; makespan: max ratio to `bound`; throughput: min ratio to asyncio."""
    bound: float = 0.0
    """Seconds: the ideal makespan (W2) or the latency-weighted critical path (W3h)."""
    bound_name: str = ""
    concurrent: int = 1
    """Runs of the graph started together (asyncio.gather) in one timed batch."""
    repeats: int = 1
    """Batches run back to back in one timed sample (for very short workloads)."""


def _plan(graph: TaskGraph) -> Plan:
    """Build the graph's lazy indexes (so no timing pays for them) and return its topological plan."""
    graph.by_id  # noqa: B018
    graph.dependents  # noqa: B018
    return tuple((node_id, graph.by_id[node_id].depends_on) for node_id in graph.topological_order())


def _task(node_id: str, depends_on: Sequence[str] = ()) -> Task:
    return Task(id=node_id, instruction="x", capability="c", depends_on=tuple(depends_on))


def _chain(prefix: str, length: int) -> TaskGraph:
    ids = [f"{prefix}{index:04d}" for index in range(length)]
    return TaskGraph(tasks=[_task(node_id, ids[index - 1 : index]) for index, node_id in enumerate(ids)])


def chain_workload(length: int) -> Workload:
    """W1: a chain at latency 0; the figure is microseconds of scheduling per task."""
    graph = _chain("c", length)
    return Workload(
        key="W1",
        label=f"W1 chain N={length}, 0 ms",
        graph=graph,
        plan=_plan(graph),
        latency=dict.fromkeys(graph.by_id, 0.0),
        kind="per_task",
        target=2.0,
        repeats=max(1, 1000 // length),
    )


def fan_workload(width: int = 1000, latency: float = 0.050) -> Workload:
    """W2: root -> `width` parallel tasks -> join, every task sleeping `latency`."""
    middle = [f"p{index:04d}" for index in range(width)]
    graph = TaskGraph(tasks=[_task("root"), *(_task(node_id, ["root"]) for node_id in middle), _task("join", middle)])
    return Workload(
        key="W2",
        label=f"W2 fan 1->{width}->1, {latency * 1000:g} ms",
        graph=graph,
        plan=_plan(graph),
        latency=dict.fromkeys(graph.by_id, latency),
        kind="makespan",
        target=1.15,
        bound=3 * latency,
        bound_name="ideal",
    )


def layered_graph(layers: int = 10, width: int = 20, seed: int = 42) -> TaskGraph:
    """Layers of equal width; each node below the top has 1..3 parents in the layer above, each node above
    the bottom at least one child (a random permutation gives every upper node one child, then extras).
    """
    rng = random.Random(seed)
    ids = [[f"l{layer}n{index:02d}" for index in range(width)] for layer in range(layers)]
    tasks = [_task(node_id) for node_id in ids[0]]
    for layer in range(1, layers):
        above = ids[layer - 1]
        guaranteed = rng.sample(above, width)
        for index, node_id in enumerate(ids[layer]):
            extra = rng.randint(1, 3) - 1
            others = [parent for parent in above if parent != guaranteed[index]]
            parents = {guaranteed[index], *rng.sample(others, extra)}
            tasks.append(_task(node_id, [parent for parent in above if parent in parents]))
    return TaskGraph(tasks=tasks)


def critical_path(plan: Plan, latency: Mapping[str, float]) -> float:
    """Seconds along the latency-weighted longest path."""
    finish: dict[str, float] = {}
    for node_id, parents in plan:
        finish[node_id] = latency[node_id] + max((finish[parent] for parent in parents), default=0.0)
    return max(finish.values())


def layered_workload() -> Workload:
    """W3h: 10 layers of 20 random-wired tasks with latencies uniform in 5-35 ms."""
    graph = layered_graph()
    plan = _plan(graph)
    rng = random.Random(7)
    latency = {task.id: rng.uniform(0.005, 0.035) for task in graph.tasks}
    return Workload(
        key="W3h",
        label="W3h layered 10x20, 5-35 ms",
        graph=graph,
        plan=plan,
        latency=latency,
        kind="makespan",
        target=1.05,
        bound=critical_path(plan, latency),
        bound_name="critical path",
    )


def concurrent_runs_workload(runs: int = 500, length: int = 5, latency: float = 0.010) -> Workload:
    """W4: `runs` runs of a short chain started at once; the figure is runs per second."""
    graph = _chain("s", length)
    return Workload(
        key="W4",
        label=f"W4 {runs} runs x chain {length}, {latency * 1000:g} ms",
        graph=graph,
        plan=_plan(graph),
        latency=dict.fromkeys(graph.by_id, latency),
        kind="throughput",
        target=0.5,
        concurrent=runs,
    )


def build_workloads(keys: Sequence[str]) -> list[Workload]:
    """The benchmark points for the chosen workloads, graphs prebuilt."""
    builders: dict[str, Callable[[], list[Workload]]] = {
        "W1": lambda: [chain_workload(1000), chain_workload(100)],
        "W2": lambda: [fan_workload()],
        "W3h": lambda: [layered_workload()],
        "W4": lambda: [concurrent_runs_workload()],
    }
    return [workload for key in WORKLOADS if key in keys for workload in builders[key]()]


# ---------------------------------------------------------------- validation and timing


async def validate(workload: Workload) -> list[str]:
    """Run once, untimed: every node ran exactly once per run and saw its parents' outputs."""
    expected = expected_outputs(workload.plan)
    calls: Counter[str] = Counter()
    wrong_inputs: set[str] = set()
    latency = workload.latency

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        calls[task.id] += 1
        if dict(inputs) != {dep: expected[dep] for dep in task.depends_on}:
            wrong_inputs.add(task.id)
        return await node_body(task.id, [inputs[dep] for dep in task.depends_on], latency[task.id])

    engine = Engine(run_task)
    results = await asyncio.gather(*(engine.run(workload.graph) for _ in range(workload.concurrent)))
    problems: list[str] = []
    if any(result.status is not RunStatus.SUCCEEDED for result in results):
        problems.append("a run did not succeed")
    if any(result.outputs != expected for result in results):
        problems.append("outputs differ from the expected ones")
    miscounted = [node_id for node_id in workload.graph.by_id if calls[node_id] != workload.concurrent]
    if miscounted:
        problems.append(f"{len(miscounted)} node(s) not run exactly once, e.g. {miscounted[0]}")
    if wrong_inputs:
        problems.append(f"{len(wrong_inputs)} node(s) saw wrong inputs, e.g. {sorted(wrong_inputs)[0]}")
    if await reference_run(workload.plan, latency) != expected:
        problems.append("the asyncio reference produced other outputs")
    return problems


async def _timed(batch: Callable[[], Awaitable[Any]], repeats: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(repeats):
        await batch()
    return (time.perf_counter() - start) / repeats


async def sample(workload: Workload, rounds: int) -> dict[str, list[float]]:
    """Seconds per batch for each side, `rounds` samples each, the sides alternating."""
    engine = Engine(orquestra_run_task(workload.latency))
    graph, plan, latency, concurrent = workload.graph, workload.plan, workload.latency, workload.concurrent

    async def orquestra_batch() -> None:
        if concurrent == 1:
            await engine.run(graph)
        else:
            await asyncio.gather(*(engine.run(graph) for _ in range(concurrent)))

    async def asyncio_batch() -> None:
        if concurrent == 1:
            await reference_run(plan, latency)
        else:
            await asyncio.gather(*(reference_run(plan, latency) for _ in range(concurrent)))

    Batch = Callable[[], Awaitable[None]]
    sides: list[tuple[str, Batch]] = [("orquestra", orquestra_batch), ("asyncio", asyncio_batch)]
    for _, batch in sides:  # warm-up, untimed
        await batch()
    samples: dict[str, list[float]] = {"orquestra": [], "asyncio": []}
    for round_index in range(rounds):
        for name, batch in sides if round_index % 2 == 0 else sides[::-1]:
            samples[name].append(await _timed(batch, workload.repeats))
    return samples


# ---------------------------------------------------------------- scoring and reporting


@dataclass
class Point:
    """One scored benchmark point."""

    workload: str
    label: str
    nodes: int
    unit: str
    orquestra: float
    asyncio: float
    ratio: float
    ratio_of: str
    target: str
    passed: bool
    problems: list[str]
    bound_ms: float | None
    samples_s: dict[str, list[float]]

    @property
    def orquestra_text(self) -> str:
        return self._describe(self.orquestra)

    @property
    def asyncio_text(self) -> str:
        return self._describe(self.asyncio)

    def _describe(self, value: float) -> str:
        text = f"{value:,.1f} {self.unit}" if value < 10_000 else f"{value:,.0f} {self.unit}"
        if self.bound_ms:
            text += f" ({value / self.bound_ms:.3f}x)"
        return text


def score(workload: Workload, samples: dict[str, list[float]], problems: list[str]) -> Point:
    """Turn the median samples into the workload's figure and check it against its target."""
    orq, ref = statistics.median(samples["orquestra"]), statistics.median(samples["asyncio"])
    bound_ms: float | None = None
    if workload.kind == "per_task":
        unit, orq_value, ref_value = "us/task", orq / len(workload.graph) * 1e6, ref / len(workload.graph) * 1e6
        ratio, ratio_of, target = orq_value / ref_value, "asyncio", f"<= {workload.target:g}x asyncio"
        passed = ratio <= workload.target
    elif workload.kind == "makespan":
        unit, orq_value, ref_value = "ms", orq * 1000, ref * 1000
        bound_ms = workload.bound * 1000
        ratio, ratio_of = orq_value / bound_ms, workload.bound_name
        target = f"<= {workload.target:g}x {workload.bound_name} ({bound_ms:.1f} ms)"
        passed = ratio <= workload.target
    else:
        unit, orq_value, ref_value = "runs/s", workload.concurrent / orq, workload.concurrent / ref
        ratio, ratio_of, target = orq_value / ref_value, "asyncio", f">= {workload.target:.0%} of asyncio"
        passed = ratio >= workload.target
    return Point(
        workload=workload.key,
        label=workload.label,
        nodes=len(workload.graph),
        unit=unit,
        orquestra=orq_value,
        asyncio=ref_value,
        ratio=ratio,
        ratio_of=ratio_of,
        target=target,
        passed=passed and not problems,
        problems=problems,
        bound_ms=bound_ms,
        samples_s=samples,
    )


def print_table(points: Sequence[Point], rounds: int) -> None:
    """The human-readable report."""
    header = ("workload", "orquestra", "asyncio", "ratio", "target", "result")
    rows = [
        (
            point.label,
            point.orquestra_text,
            point.asyncio_text,
            f"{point.ratio:.3f}x {point.ratio_of}",
            point.target,
            "pass" if point.passed else "FAIL",
        )
        for point in points
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    print(f"orquestra engine vs plain asyncio -- medians of {rounds} rounds, {os.cpu_count()} CPU(s), {_python()}")
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    chains = {point.nodes: point for point in points if point.workload == "W1"}
    if 100 in chains and 1000 in chains:
        flat = chains[1000].orquestra / chains[100].orquestra
        print(f"W1 flatness: orquestra cost per task at N=1000 is {flat:.2f}x its cost at N=100")
    for point in points:
        for problem in point.problems:
            print(f"VALIDATION {point.label}: {problem}")


def _python() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def print_json(points: Sequence[Point], rounds: int) -> None:
    """The machine-readable report."""
    report = {
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "python": _python(),
        "platform": platform.platform(),
        "results": [
            {
                "workload": point.workload,
                "label": point.label,
                "nodes": point.nodes,
                "unit": point.unit,
                "orquestra": point.orquestra,
                "asyncio": point.asyncio,
                "ratio": point.ratio,
                "ratio_of": point.ratio_of,
                "bound_ms": point.bound_ms,
                "target": point.target,
                "passed": point.passed,
                "valid": not point.problems,
                "problems": point.problems,
                "samples_s": point.samples_s,
            }
            for point in points
        ],
    }
    json.dump(report, sys.stdout, indent=2)
    print()


# ---------------------------------------------------------------- entry point


async def bench(keys: Sequence[str], rounds: int) -> list[Point]:
    """Validate and time every chosen workload."""
    points: list[Point] = []
    for workload in build_workloads(keys):
        problems = await validate(workload)
        points.append(score(workload, await sample(workload, rounds), problems))
    return points


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the benchmark, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=_positive, default=5, help="timed rounds per workload (default 5)")
    parser.add_argument(
        "--workload", action="append", choices=WORKLOADS, help="run only this workload (repeatable; default all)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    args = parser.parse_args(argv)
    points = asyncio.run(bench(args.workload or WORKLOADS, args.rounds))
    (print_json if args.json else print_table)(points, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
