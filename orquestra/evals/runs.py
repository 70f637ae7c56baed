"""Whole-run evals: goals whose answers a function can check, run end to end by `AutoTeam`.

A run suite lists goals, each with checks: built-in ones (`answer_contains`, `file` in the run's workspace)
and `check: "module:function"` for anything else, called as ``function(answer: str, workspace: Path) -> bool``.
A case passes when every check passes; the suite reports the completion rate (with a 95% interval), status,
cost, latency and replans per case. Results are logged one a line as they finish, so a rerun resumes.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orquestra.datafile import read_data
from orquestra.evals.jsonlog import JsonLinesLog
from orquestra.evals.stats import bootstrap_rate
from orquestra.exceptions import UserError, describe_validation_error
from orquestra.team import AutoTeam, TeamResult

LOG_NAME = "runs.jsonl"
CheckFunction = Callable[[str, Path], bool]


class FileCheck(BaseModel):
    """A file the run must leave in its workspace, optionally with some text in it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="Relative to the run's workspace.")
    contains: str | None = None

    @field_validator("path")
    @classmethod
    def _inside_the_workspace(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("must be a relative path inside the run's workspace")
        return value


class RunCase(BaseModel):
    """One goal and how to tell that its run succeeded."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    goal: str = Field(min_length=1)
    answer_contains: list[str] = Field(default_factory=list, description="Texts the answer must contain.")
    file: FileCheck | None = None
    check: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")

    @field_validator("answer_contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | int | float) else value

    @model_validator(mode="after")
    def _has_a_check(self) -> RunCase:
        if not (self.answer_contains or self.file or self.check):
            raise ValueError(f"case '{self.id}' needs a check: answer_contains, file or check")
        return self


class RunSuiteSpec(BaseModel):
    """A run suite file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    max_replans: int = Field(default=3, ge=0)
    max_tasks: int = Field(default=8, ge=1, le=50)
    cases: list[RunCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> RunSuiteSpec:
        ids = [case.id for case in self.cases]
        if len(set(ids)) != len(ids):
            raise ValueError("case ids must be unique")
        return self


def load_run_suite(path: Path) -> RunSuiteSpec:
    """Read and check a run suite, custom check functions included; errors name the file and field."""
    data = read_data(path)
    try:
        spec = RunSuiteSpec.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{path}: {describe_validation_error(error)}") from None
    for position, case in enumerate(spec.cases):
        if case.check:
            try:
                resolve_check(case.check)
            except UserError as error:
                raise UserError(f"{path}: field 'cases.{position}.check': {error.message}") from None
    return spec


def resolve_check(spec: str) -> CheckFunction:
    """The function a 'module:function' string names."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(f"cannot import '{module_name}': {error}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"'{module_name}' has no function '{name}'")
    checked: CheckFunction = function
    return checked


def failed_checks(case: RunCase, answer: str, workspace: Path) -> list[str]:
    """The checks a finished run fails, in words; empty when it passes."""
    failures = [f"answer lacks '{text}'" for text in case.answer_contains if text not in answer]
    if case.file is not None:
        target = workspace / case.file.path
        if not target.is_file():
            failures.append(f"no file '{case.file.path}' in the workspace")
        elif case.file.contains is not None and case.file.contains not in target.read_text(errors="replace"):
            failures.append(f"'{case.file.path}' lacks '{case.file.contains}'")
    if case.check is not None:
        try:
            if not resolve_check(case.check)(answer, workspace):
                failures.append(f"{case.check} returned false")
        except Exception as error:  # a custom check's own bug fails the case, with the reason
            failures.append(f"{case.check} raised {type(error).__name__}: {error}")
    return failures


@dataclass
class RunCaseResult:
    """What one whole run did and whether its checks passed."""

    case_id: str
    passed: bool
    status: str
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    answer: str = ""
    latency_s: float = 0.0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    replans: int = 0
    tasks: int = 0


async def run_goal(team: AutoTeam, case: RunCase, workspace: Path) -> RunCaseResult:
    """Plan, run and answer one goal in `workspace`, then check it; any failure is recorded, never raised."""
    started = time.perf_counter()
    try:
        result = await _run(team, case.goal, workspace)
    except Exception as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return RunCaseResult(
            case.id, False, "error", error=f"{type(error).__name__}: {message}", latency_s=time.perf_counter() - started
        )
    failures = failed_checks(case, result.answer, workspace)
    return RunCaseResult(
        case_id=case.id,
        passed=not failures,
        status=result.status.value,
        failures=failures,
        answer=result.answer,
        latency_s=time.perf_counter() - started,
        cost_usd=result.usage.cost,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        requests=result.usage.requests,
        replans=len(result.replans),
        tasks=len(result.graph.tasks),
    )


async def _run(team: AutoTeam, goal: str, workspace: Path) -> TeamResult:
    # AutoTeam.arun, with the workspace chosen here so that file checks know where to look.
    meter = team.meter()
    plan = await team.plan(goal, meter=meter)
    outcome = await team.execute(plan.graph, goal=goal, meter=meter, workspace=workspace)
    return await team.finish(goal, plan, outcome)


class RunLog(JsonLinesLog):
    """The run eval's log: a header naming suite and model, then one result a line."""

    def __init__(self, folder: Path, header: Mapping[str, Any], *, fresh: bool = False) -> None:
        super().__init__(folder / LOG_NAME, header, fresh=fresh)

    def load(self) -> dict[str, RunCaseResult]:
        """Results already logged, by case id; a torn last line is ignored."""
        results = {}
        for number, record in self.records():
            fields = {key: value for key, value in record.items() if key != "kind"}
            try:
                results[record["case_id"]] = RunCaseResult(**fields)
            except (KeyError, TypeError):
                raise self.not_a_result(number) from None
        return results

    def append(self, result: RunCaseResult) -> None:
        """Add one result, flushed to disk at once."""
        self.add_record({"kind": "case", **asdict(result)})


async def run_suite(
    team: AutoTeam,
    cases: Sequence[RunCase],
    log: RunLog,
    workspaces: Path,
    *,
    concurrency: int = 1,
    on_result: Callable[[RunCaseResult], None] | None = None,
) -> list[RunCaseResult]:
    """Run the cases the log lacks, `concurrency` at a time; return the results of all `cases`, in order."""
    done = log.load()
    gate = asyncio.Semaphore(concurrency)

    async def one(case: RunCase) -> None:
        workspace = workspaces / case.id
        # Files an earlier attempt left behind must not satisfy this attempt's checks.
        shutil.rmtree(workspace, ignore_errors=True)
        async with gate:
            result = await run_goal(team, case, workspace)
        log.append(result)
        done[case.id] = result
        if on_result is not None:
            on_result(result)

    await asyncio.gather(*(one(case) for case in cases if case.id not in done))
    return [done[case.id] for case in cases if case.id in done]


def summarise_runs(results: Sequence[RunCaseResult], *, suite: str, model: str) -> dict[str, Any]:
    """The run eval's report document: completion rate with its interval, means per case, and every case."""
    count = max(len(results), 1)
    rate = bootstrap_rate([r.passed for r in results])
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    return {
        "suite": suite,
        "model": model,
        "cases": len(results),
        "passed": sum(r.passed for r in results),
        "completion_rate": {"estimate": rate.estimate, "low": rate.low, "high": rate.high} if results else None,
        "statuses": statuses,
        "per_case": {
            "cost_usd": sum(r.cost_usd for r in results) / count,
            "latency_s": sum(r.latency_s for r in results) / count,
            "replans": sum(r.replans for r in results) / count,
            "tokens": sum(r.input_tokens + r.output_tokens for r in results) / count,
        },
        "results": [asdict(r) for r in results],
    }
