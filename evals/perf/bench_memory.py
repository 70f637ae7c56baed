"""Benchmark long-term memory: store N synthetic runs in a fresh `ChromaMemory`, then time `recall(goal, k=5)`.

Goals come from templates and word lists (seeded), so they are varied but similar enough for recall to have
real neighbours; each run carries a 3-6 task graph, task summaries, lessons and an answer of a few hundred
characters, like a real one. Queries are fresh goals from the same generator with another seed.

    .venv/bin/python evals/perf/bench_memory.py [--runs 10000] [--queries 100] [--batch 500] [--json]

Reported: the time to store (embedding included, and the rate), the time to open the folder again (as a
second process would), the first recall, the p50/p95/max of the next `--queries` recalls, and the median
time to remember one more run on its own.
The target is a p95 under 50 ms for the top 5 at 10,000 runs. The exit status is always 0 (a benchmark).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from orquestra.graph import Task, TaskGraph
from orquestra.memory import ChromaMemory, RunMemory, TaskMemory

TEMPLATES = [
    "compare {a} and {b} for {use}",
    "write a {doc} about {topic} for {audience}",
    "research the {market} market in {place} and summarise {aspect}",
    "plan a {n}-day trip to {place} with a focus on {interest}",
    "analyse our {period} {metric} figures and explain {aspect}",
    "fix the failing {kind} tests in the {service} service",
    "draft a launch brief for our new {product} aimed at {audience}",
    "summarise the latest research on {topic}",
    "build a {kind} script that {action} {data}",
    "find the cheapest {product} suppliers in {place}",
]
WORDS = {
    "a": ["Chroma", "Weaviate", "Postgres", "Redis", "Kafka", "SQLite", "DuckDB", "Milvus", "Qdrant", "Elastic"],
    "b": ["Pinecone", "MongoDB", "RabbitMQ", "ClickHouse", "Cassandra", "Neo4j", "Typesense", "LanceDB"],
    "use": ["a RAG prototype", "event sourcing", "analytics", "a mobile backend", "semantic search", "caching"],
    "doc": ["blog post", "one-page brief", "technical report", "press release", "FAQ", "newsletter"],
    "topic": ["protein folding", "solar storage", "quantum error correction", "coral reefs", "urban heat islands"],
    "audience": ["engineers", "investors", "first-time buyers", "students", "city planners", "nurses"],
    "market": ["home battery", "e-bike", "plant-based milk", "used car", "coworking", "pet insurance"],
    "place": ["Lisbon", "Spain", "Kenya", "Ohio", "Vietnam", "Norway", "Chile", "Osaka", "Bavaria"],
    "aspect": ["pricing", "the main risks", "growth drivers", "the competition", "regulation", "churn"],
    "n": ["2", "3", "5", "7", "10"],
    "interest": ["food", "museums", "hiking", "architecture", "surfing", "live music"],
    "period": ["Q1", "Q2", "Q3", "Q4", "monthly", "yearly"],
    "metric": ["sales", "support ticket", "latency", "hiring", "marketing spend", "retention"],
    "kind": ["unit", "integration", "python", "bash", "end-to-end", "load"],
    "service": ["payment", "checkout", "search", "login", "notification", "billing"],
    "product": ["solar panel", "standing desk", "smart thermostat", "running shoe", "coffee grinder"],
    "action": ["parses", "deduplicates", "validates", "converts", "plots"],
    "data": ["CSV logs", "JSON invoices", "sensor readings", "git history", "survey answers"],
}
CAPABILITIES = ["research", "writing", "analysis", "coding", "review"]


def make_goal(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    fields = {name: rng.choice(words) for name, words in WORDS.items() if "{" + name + "}" in template}
    return template.format(**fields)


def make_run(rng: random.Random, index: int) -> RunMemory:
    goal = make_goal(rng)
    size = rng.randint(3, 6)
    tasks = tuple(
        Task(
            id=f"t{i}",
            instruction=f"step {i} of: {goal}",
            capability=rng.choice(CAPABILITIES),
            depends_on=(f"t{i - 1}",) if i else (),
        )
        for i in range(size)
    )
    memories = [
        TaskMemory(task.id, task.capability, f"agent-{rng.randint(1, 8)}", rng.random() < 0.85, "did it " * 10)
        for task in tasks
    ]
    return RunMemory(
        run_id=f"run-{index:06d}",
        goal=goal,
        outcome=rng.choice(["succeeded"] * 8 + ["failed", "stopped"]),
        graph=TaskGraph(tasks=tasks),
        tasks=memories,
        lessons=["check sources before writing"] if rng.random() < 0.3 else [],
        answer=("The answer, in a few paragraphs. " * 15).strip(),
        created_at=1_700_000_000.0 + index,
    )


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="Print machine-readable results.")
    args = parser.parse_args()
    if min(args.runs, args.queries, args.batch) < 1:
        parser.error("--runs, --queries and --batch must be at least 1")

    rng = random.Random(42)
    runs = [make_run(rng, index) for index in range(args.runs)]
    queries = [make_goal(random.Random(7 + i)) for i in range(args.queries)]
    with tempfile.TemporaryDirectory(prefix="orquestra-bench-memory-") as folder:
        path = Path(folder) / "memory"
        with ChromaMemory(path) as memory:
            memory.embedder.embed(["warm up the model"])  # model load is not storage time
            start = time.perf_counter()
            for offset in range(0, len(runs), args.batch):
                memory.remember_all(runs[offset : offset + args.batch])
            store_s = time.perf_counter() - start
        start = time.perf_counter()
        memory = ChromaMemory(path)  # as a second process would: loads the index from disk
        open_s = time.perf_counter() - start
        with memory:
            start = time.perf_counter()
            memory.recall(queries[0], k=5)
            first_ms = (time.perf_counter() - start) * 1000
            gc.collect()
            samples, hits = [], 0
            for query in queries:
                start = time.perf_counter()
                found = memory.recall(query, k=5, min_similarity=0.0)
                samples.append((time.perf_counter() - start) * 1000)
                hits += len(found) == 5
            singles = []
            for index in range(20):  # one run at a time, as the run loop remembers
                run = make_run(rng, args.runs + index)
                start = time.perf_counter()
                memory.remember(run)
                singles.append((time.perf_counter() - start) * 1000)
            assert memory.count() == len(runs) + len(singles)

    result = {
        "runs": len(runs),
        "batch": args.batch,
        "store_s": round(store_s, 2),
        "store_runs_per_s": round(len(runs) / store_s, 1),
        "open_s": round(open_s, 3),
        "first_recall_ms": round(first_ms, 2),
        "recall_p50_ms": round(statistics.median(samples), 2),
        "recall_p95_ms": round(percentile(samples, 0.95), 2),
        "recall_max_ms": round(max(samples), 2),
        "queries": len(samples),
        "queries_with_5_results": hits,
        "remember_one_p50_ms": round(statistics.median(singles), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"stored {len(runs)} runs in {store_s:.1f} s ({result['store_runs_per_s']} runs/s, batches of {args.batch})")
    print(f"open an existing memory: {open_s * 1000:.0f} ms; first recall: {first_ms:.1f} ms")
    print(
        f"recall(goal, k=5) over {len(samples)} queries: p50 {result['recall_p50_ms']} ms, "
        f"p95 {result['recall_p95_ms']} ms, max {result['recall_max_ms']} ms (target: under 50 ms)"
    )
    print(f"remember(run), one at a time: p50 {result['remember_one_p50_ms']} ms")
    print(result["machine"])


if __name__ == "__main__":
    main()
