"""The planning eval: plan every case, score each plan against its gold graph, and keep each result on disk.

Each planner is a function from a case to a `PlanOutcome`. Orquestra's planner is wrapped here; the plain
baseline lives in `orquestra.evals.baseline`. A planner that fails for any reason still yields a scored
result (an empty graph with the error named), so no case is ever silently dropped. Results are appended to a
JSON-lines log as each case finishes, which is what lets an interrupted eval resume where it stopped.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orquestra.evals.adapters import FREE_TEXT_CAPABILITY
from orquestra.evals.cases import (
    CaseResult,
    Counts,
    EvalCase,
    PlannedTaskData,
    StructureScores,
    TextScores,
    Validity,
)
from orquestra.evals.jsonlog import JsonLinesLog
from orquestra.evals.metrics import check_plan, predicted_graph, structure_scores
from orquestra.evals.textmatch import Embed, text_scores
from orquestra.exceptions import PlanningError, UserError
from orquestra.models import Model, Usage
from orquestra.planner import Planner, PlanningStrategy
from orquestra.registry import AgentCard, Registry

ORQUESTRA = "orquestra"
BASELINE = "baseline"
LOG_NAME = "results.jsonl"
LOG_VERSION = 1


@dataclass
class PlanOutcome:
    """What one planner produced for one case: the tasks (None when nothing parsed) and what it cost."""

    tasks: list[PlannedTaskData] | None
    usage: Usage = field(default_factory=Usage)
    repairs: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    """What the planner left out of its prompt to fit the model's context."""


PlanFn = Callable[[EvalCase], Awaitable[PlanOutcome]]


# ---------------------------------------------------------------------------------------------- planners


def orquestra_planner(model: Model, *, max_tasks: int = 12, strategy: PlanningStrategy = "auto") -> PlanFn:
    """Orquestra's planner over a registry built from each case's catalogue: grounding, re-asking, repair."""

    async def plan(case: EvalCase) -> PlanOutcome:
        planner = Planner(model, case_registry(case), max_tasks=max_tasks, strategy=strategy)
        try:
            result = await planner.plan(case.goal)
        except PlanningError as error:
            return PlanOutcome(None, error=error.message)
        tasks = [
            PlannedTaskData(task.id, task.capability, task.instruction, tuple(task.depends_on))
            for task in result.graph.tasks
        ]
        return PlanOutcome(tasks, result.usage, len(result.repairs), notes=list(result.notes))

    return plan


def case_registry(case: EvalCase) -> Registry:
    """One agent per catalogue capability (named after it), or one generic agent for a free-text case."""
    if case.free_text or not case.catalogue:
        card = AgentCard(
            name="actor",
            description="Carries out one step of the task with the actions the task allows.",
            capabilities=(FREE_TEXT_CAPABILITY,),
        )
        return Registry(agents=[card])
    cards: list[AgentCard] = []
    taken: set[str] = set()
    for capability, description in case.catalogue.items():
        name = agent_name(capability, taken)
        taken.add(name)
        cards.append(AgentCard(name=name, description=description.strip() or capability, capabilities=(capability,)))
    return Registry(agents=cards)


def agent_name(capability: str, taken: Iterable[str] = ()) -> str:
    """A valid, unused agent name for a capability ('Object Detection' -> 'object-detection')."""
    base = re.sub(r"[^a-z0-9_]+", "-", capability.lower()).strip("-_") or "tool"
    base = base if base[0].isalpha() else f"t-{base}"
    name, number, used = base, 2, set(taken)
    while name in used:
        name, number = f"{base}-{number}", number + 1
    return name


# ---------------------------------------------------------------------------------------------- scoring


def score(
    case: EvalCase, planner: str, outcome: PlanOutcome, *, latency_s: float = 0.0, embed: Embed | None = None
) -> CaseResult:
    """Check and score one outcome against the case's gold graph (an invalid plan scores as an empty graph)."""
    validity = check_plan(outcome.tasks, {} if case.free_text else case.catalogue)
    predicted = predicted_graph(outcome.tasks or [], validity, free_text=case.free_text)
    text = None
    if case.free_text:
        if embed is None:
            raise UserError("a free-text suite needs an embedder to match steps")
        text = text_scores(predicted, case.gold, embed)
    return CaseResult(
        case_id=case.id,
        planner=planner,
        shape=case.shape,
        gold_size=len(case.gold.labels),
        validity=validity,
        structure=structure_scores(predicted, case.gold),
        text=text,
        error=outcome.error,
        latency_s=latency_s,
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        cost_usd=outcome.usage.cost,
        repairs=outcome.repairs,
        predicted=list(outcome.tasks or []),
        notes=list(outcome.notes),
    )


async def run_case(case: EvalCase, planner: str, plan: PlanFn, embed: Embed | None) -> CaseResult:
    """Plan and score one case; any failure of the planner becomes the case's recorded error."""
    started = time.perf_counter()
    try:
        outcome = await plan(case)
    except Exception as error:  # a model or network failure: recorded and scored, never dropped
        outcome = PlanOutcome(None, error=_describe(error))
    return score(case, planner, outcome, latency_s=time.perf_counter() - started, embed=embed)


async def run_planning(
    cases: Sequence[EvalCase],
    planners: Mapping[str, PlanFn],
    log: ResultLog,
    *,
    embed: Embed | None = None,
    concurrency: int = 2,
    on_result: Callable[[CaseResult], None] | None = None,
    retry_errors: bool = False,
) -> list[CaseResult]:
    """Run every (planner, case) the log lacks, `concurrency` at a time; return the results of these cases.

    Each result is appended to the log as soon as it exists, so an interruption loses only unfinished cases.
    With `retry_errors`, logged cases that errored (a network outage, say) are run again.
    """
    done = log.load(drop_errors=retry_errors)
    if retry_errors:
        log.rewrite(done.values())
    gate = asyncio.Semaphore(concurrency)

    async def one(case: EvalCase, planner: str, plan: PlanFn) -> None:
        async with gate:
            result = await run_case(case, planner, plan, embed)
        log.append(result)
        done[(planner, case.id)] = result
        if on_result is not None:
            on_result(result)

    pending = [
        one(case, name, plan) for name, plan in planners.items() for case in cases if (name, case.id) not in done
    ]
    await asyncio.gather(*pending)
    return [done[(name, case.id)] for name in planners for case in cases if (name, case.id) in done]


def _describe(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"


# ---------------------------------------------------------------------------------------------- the log


class ResultLog(JsonLinesLog):
    """The planning eval's log: a header naming suite and model, then one `CaseResult` a line.

    Reopening a log for another suite or model is refused, so results of different evals never mix.
    """

    def __init__(self, folder: Path, header: Mapping[str, Any], *, fresh: bool = False) -> None:
        super().__init__(folder / LOG_NAME, {"version": LOG_VERSION, **header}, fresh=fresh)

    def load(self, *, drop_errors: bool = False) -> dict[tuple[str, str], CaseResult]:
        """The results already logged, by (planner, case id); a torn last line is ignored."""
        results: dict[tuple[str, str], CaseResult] = {}
        for number, record in self.records():
            try:
                result = result_from_json(record)
            except (KeyError, TypeError, ValueError):
                raise self.not_a_result(number) from None
            if not (drop_errors and result.error):
                results[(result.planner, result.case_id)] = result
        return results

    def rewrite(self, results: Iterable[CaseResult]) -> None:
        """Start the log again with these results (used when errored cases are run again)."""
        self.write_records(result_to_json(result) for result in results)

    def append(self, result: CaseResult) -> None:
        """Add one result, flushed to disk at once."""
        self.add_record(result_to_json(result))


def result_to_json(result: CaseResult) -> dict[str, Any]:
    """A `CaseResult` as a JSON-ready dict."""
    return {"kind": "case", **asdict(result)}


def result_from_json(data: Mapping[str, Any]) -> CaseResult:
    """The `CaseResult` that `result_to_json` wrote."""
    validity = data["validity"]
    structure = data["structure"]
    text = data.get("text")
    return CaseResult(
        case_id=data["case_id"],
        planner=data["planner"],
        shape=data["shape"],
        gold_size=data["gold_size"],
        validity=Validity(
            parsed=validity["parsed"],
            unknown_capabilities=tuple(validity["unknown_capabilities"]),
            cyclic=validity["cyclic"],
            dangling_edges=tuple((a, b) for a, b in validity["dangling_edges"]),
            tasks=validity["tasks"],
        ),
        structure=StructureScores(
            nodes=Counts(**structure["nodes"]),
            edges=Counts(**structure["edges"]),
            normalized_edit_distance=structure["normalized_edit_distance"],
            exact_match=structure["exact_match"],
        ),
        text=TextScores(**text) if text else None,
        error=data.get("error"),
        latency_s=data.get("latency_s", 0.0),
        input_tokens=data.get("input_tokens", 0),
        output_tokens=data.get("output_tokens", 0),
        cost_usd=data.get("cost_usd", 0.0),
        repairs=data.get("repairs", 0),
        predicted=[
            PlannedTaskData(task["id"], task["capability"], task["instruction"], tuple(task["depends_on"]))
            for task in data.get("predicted", [])
        ],
        notes=[str(note) for note in data.get("notes", [])],
    )
