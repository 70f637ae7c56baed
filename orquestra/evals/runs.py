"""Whole-run evals: goals whose answers a function can check, run end to end by `AutoTeam`.

A run suite lists goals, each with checks: built-in ones (`answer_contains`, `file` in the run's workspace)
and `check: "module:function"` for anything else, called as ``function(answer: str, workspace: Path) -> bool``.
A built-in check's expected text is a plain string (found as is) or a `TextMatch`: any of several texts, a
regular expression, a number written in any usual form, each optionally in any case. `files:` copies
fixtures (paths relative to the suite file) into the run's workspace before the run starts.

A case passes (the run *completed*) when every check passes, whatever status the run reported. The suite
reports the completion rate (with a 95% interval) and, apart, the *false successes*: runs that reported
success while a check failed. Status, cost, latency and replans are reported per case. Results are logged one
a line as they finish, so a rerun resumes.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orquestra.datafile import read_data
from orquestra.evals.jsonlog import JsonLinesLog
from orquestra.evals.stats import bootstrap_rate
from orquestra.exceptions import UserError, describe_validation_error
from orquestra.team import AutoTeam, TeamResult

LOG_NAME = "runs.jsonl"
REPORT_NAME = "report.json"
SUCCEEDED = "succeeded"
"""The status of a run that reported success (`RunStatus.SUCCEEDED`)."""
RECORD_CHARS = 2000
"""How much of a task's output or error a case's record keeps."""
CheckFunction = Callable[[str, Path], bool]

# A number as people write it: 1740, 1,740, 12.50, -3. Not part of a word or of a longer number.
_NUMBER = re.compile(r"(?<![\w.])(-)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d])")


def _relative_inside(value: str) -> str:
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise ValueError("must be a relative path inside the run's workspace")
    return value


def _scalar_text(value: Any) -> Any:
    # YAML reads `84` and `12.5` as numbers; as expected texts they mean the text they are written as.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class TextMatch(BaseModel):
    """An expected text other than a plain string: exactly one of `text`, `any_of`, `regex`, `number`.

    `ignore_case` applies to all but `number`. `regex` is searched (not matched from the start) with `^` and
    `$` at line ends. `number` is found among the numbers of the text, written with or without thousands
    commas and trailing decimal zeros (`1740` matches "1,740"; `67.6` matches "$67.60"), never inside a
    longer number (`84` does not match "184" or "8.45").
    """

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1)
    any_of: list[str] | None = Field(default=None, min_length=1, description="Any one of these texts.")
    regex: str | None = Field(default=None, min_length=1)
    number: str | None = Field(default=None, description="A number, compared by value.")
    ignore_case: bool = False

    @field_validator("any_of", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return [_scalar_text(item) for item in value] if isinstance(value, list) else value

    @field_validator("any_of")
    @classmethod
    def _no_empty_alternative(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(value):
            raise ValueError("an empty alternative would match any answer")
        return value

    @field_validator("number", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        value = _scalar_text(value)
        if isinstance(value, str) and _as_decimal(value.replace(",", "")) is None:
            raise ValueError(f"'{value}' is not a number")
        return value

    @field_validator("regex")
    @classmethod
    def _a_regex(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"invalid regular expression: {error}") from None
        if pattern.search(""):
            raise ValueError("the regular expression matches an empty answer")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> TextMatch:
        given = [name for name in ("text", "any_of", "regex", "number") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, any_of, regex, number")
        return self

    def found_in(self, text: str) -> bool:
        """True when `text` holds what this expects."""
        if self.number is not None:
            wanted = _as_decimal(self.number.replace(",", ""))
            return wanted in numbers_in(text)
        if self.regex is not None:
            flags = re.MULTILINE | (re.IGNORECASE if self.ignore_case else 0)
            return re.search(self.regex, _normal(text), flags) is not None
        haystack = _normal(text).casefold() if self.ignore_case else _normal(text)
        needles = self.any_of if self.any_of is not None else [self.text or ""]
        return any((_normal(n).casefold() if self.ignore_case else _normal(n)) in haystack for n in needles)

    def describe(self) -> str:
        """What is expected, in words, for a failure message."""
        case = " (any case)" if self.ignore_case and self.number is None else ""
        if self.number is not None:
            return f"the number {self.number}"
        if self.regex is not None:
            return f"a match for /{self.regex}/{case}"
        if self.any_of is not None:
            return "any of " + ", ".join(f"'{item}'" for item in self.any_of) + case
        return f"'{self.text}'{case}"


Expected = str | TextMatch
"""An expected text: a plain string is found as is, exactly (the original format)."""


def _as_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _normal(text: str) -> str:
    # One Unicode form on both sides, so that an accent typed two ways still matches.
    return unicodedata.normalize("NFC", text)


def numbers_in(text: str) -> set[Decimal]:
    """Every number written in `text`, by value (thousands commas dropped)."""
    found = set()
    for sign, whole, fraction in _NUMBER.findall(text):
        value = _as_decimal(f"{sign}{whole.replace(',', '')}{fraction}")
        if value is not None:
            found.add(value)
    return found


def expected_in(expected: Expected, text: str) -> bool:
    """True when `text` holds `expected` (a plain string: as a substring, exactly)."""
    return expected in text if isinstance(expected, str) else expected.found_in(text)


def describe_expected(expected: Expected) -> str:
    """`expected` in words: a plain string quoted as it is."""
    return f"'{expected}'" if isinstance(expected, str) else expected.describe()


def _one_or_many(value: Any) -> Any:
    if value is None:
        return value
    items = value if isinstance(value, list) else [value]
    return [_scalar_text(item) for item in items]


def _no_empty_text(values: list[Expected]) -> list[Expected]:
    if any(isinstance(value, str) and not value for value in values):
        raise ValueError("an empty text would match any answer")
    return values


class FileCheck(BaseModel):
    """A file the run must leave in its workspace, optionally with some texts in it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="Relative to the run's workspace.")
    contains: list[Expected] = Field(default_factory=list, description="Texts the file must contain.")

    _inside_the_workspace = field_validator("path")(_relative_inside)
    _one_or_many = field_validator("contains", mode="before")(_one_or_many)
    _no_empty_text = field_validator("contains")(_no_empty_text)


class Fixture(BaseModel):
    """A file or folder copied into the run's workspace before the run starts."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="Relative to the suite file's folder (or absolute).")
    path: str | None = Field(default=None, description="Where in the workspace; default: the source's name.")

    _inside_the_workspace = field_validator("path")(_relative_inside)

    @property
    def target(self) -> str:
        """The fixture's path inside the workspace."""
        return self.path if self.path is not None else Path(self.source).name

    def copy_into(self, workspace: Path) -> None:
        """Copy the fixture to `workspace / target` (`source` must be resolved by `load_run_suite`)."""
        source, target = Path(self.source), workspace / self.target
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)


class RunCase(BaseModel):
    """One goal and how to tell that its run succeeded."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    goal: str = Field(min_length=1)
    answer_contains: list[Expected] = Field(default_factory=list, description="Texts the answer must contain.")
    file: FileCheck | None = None
    check: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")
    files: list[Fixture] = Field(default_factory=list, description="Copied into the workspace before the run.")

    _one_or_many = field_validator("answer_contains", mode="before")(_one_or_many)
    _no_empty_text = field_validator("answer_contains")(_no_empty_text)

    @field_validator("files", mode="before")
    @classmethod
    def _source_shorthand(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        return [{"source": item} if isinstance(item, str) else item for item in items]

    @model_validator(mode="after")
    def _has_a_check(self) -> RunCase:
        if not (self.answer_contains or self.file or self.check):
            raise ValueError(f"case '{self.id}' needs a check: answer_contains, file or check")
        targets = [fixture.target for fixture in self.files]
        if len(set(targets)) != len(targets):
            raise ValueError(f"case '{self.id}': two fixtures go to the same place in the workspace")
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
        for fixture in case.files:
            source = path.parent / fixture.source
            if not source.exists():
                raise UserError(f"{path}: case '{case.id}': fixture '{fixture.source}' not found (looked for {source})")
            fixture.source = str(source.resolve())
    return spec


def run_suite_files(paths: Sequence[Path]) -> list[Path]:
    """The suite files that `paths` name: a file as given, a folder's `*.yaml` and `*.yml` files by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
            if not inside:
                raise UserError(f"{path}: no suite files (*.yaml) in this folder")
            found.extend(inside)
        else:
            found.append(path)
    return found


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
    failures = [
        f"answer lacks {describe_expected(text)}" for text in case.answer_contains if not expected_in(text, answer)
    ]
    if case.file is not None:
        target = workspace / case.file.path
        if not target.is_file():
            failures.append(f"no file '{case.file.path}' in the workspace")
        else:
            content = target.read_text(encoding="utf-8", errors="replace")
            failures.extend(
                f"'{case.file.path}' lacks {describe_expected(text)}"
                for text in case.file.contains
                if not expected_in(text, content)
            )
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
    checks_passed: bool
    """Every check of the case passed (whatever the run reported)."""
    status: str
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str = ""
    """Why the run ended as it did, in the run's own words (empty for a plain success)."""
    answer: str = ""
    latency_s: float = 0.0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    replans: int = 0
    tasks: int = 0
    task_records: list[dict[str, str]] = field(default_factory=list)
    """Each task of the final graph: id, capability, instruction, status, and its output or error (cut to
    `RECORD_CHARS`), to read why a case failed."""
    workspace_files: list[str] = field(default_factory=list)
    """The files the run's workspace held at the end, fixtures included, relative to it."""
    answer_checks: list[dict[str, Any]] = field(default_factory=list)
    """Each check of the answer's figure (`AnswerCheck` fields), to read what was worked out from the goal."""

    @property
    def passed(self) -> bool:
        """The case passed: every check passed and the run reported success, so a user would have been right."""
        return self.checks_passed and self.status == SUCCEEDED

    @property
    def false_success(self) -> bool:
        """True when the run reported success while a check failed: the failure the eval exists to catch."""
        return self.status == SUCCEEDED and not self.checks_passed

    @property
    def unclaimed_pass(self) -> bool:
        """True when every check passed although the run did not report success (not counted as passed)."""
        return self.checks_passed and self.status != SUCCEEDED

    def record(self) -> dict[str, Any]:
        """The result as stored in reports: its fields and the verdicts derived from them."""
        return {**asdict(self), "passed": self.passed, "false_success": self.false_success}


async def run_goal(team: AutoTeam, case: RunCase, workspace: Path) -> RunCaseResult:
    """Copy the case's fixtures into `workspace`, plan, run and answer its goal there, then check it.

    Any failure is recorded, never raised.
    """
    started = time.perf_counter()
    try:
        for fixture in case.files:
            fixture.copy_into(workspace)
        result = await _run(team, case.goal, workspace)
    except Exception as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return RunCaseResult(
            case.id, False, "error", error=f"{type(error).__name__}: {message}", latency_s=time.perf_counter() - started
        )
    failures = failed_checks(case, result.answer, workspace)
    return RunCaseResult(
        case_id=case.id,
        checks_passed=not failures,
        status=result.status.value,
        failures=failures,
        reason=result.run.reason,
        answer=result.answer,
        latency_s=time.perf_counter() - started,
        cost_usd=result.usage.cost,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        requests=result.usage.requests,
        replans=len(result.replans),
        tasks=len(result.graph.tasks),
        task_records=_task_records(result),
        workspace_files=_files_in(workspace),
        answer_checks=[asdict(check) for check in result.answer_checks],
    )


def _task_records(result: TeamResult) -> list[dict[str, str]]:
    records = []
    for task in result.graph.tasks:
        status = result.run.statuses.get(task.id)
        record = {
            "id": task.id,
            "capability": task.capability,
            "instruction": task.instruction,
            "status": str(status.value) if status is not None else "unknown",
        }
        if task.id in result.run.outputs:
            record["output"] = str(result.run.outputs[task.id])[:RECORD_CHARS]
        if task.id in result.run.errors:
            error = result.run.errors[task.id]
            record["error"] = f"{type(error).__name__}: {error}"[:RECORD_CHARS]
        records.append(record)
    return records


def _files_in(workspace: Path) -> list[str]:
    if not workspace.is_dir():
        return []
    return sorted(str(path.relative_to(workspace)) for path in workspace.rglob("*") if path.is_file())


async def _run(team: AutoTeam, goal: str, workspace: Path) -> TeamResult:
    # AutoTeam.arun, with the workspace chosen here so that file checks know where to look, and the whole plan
    # made before the run starts, as the suites' figures were measured.
    return await team.prepare(goal, workspace=workspace, stream=False).complete()


class RunLog(JsonLinesLog):
    """The run eval's log: a header naming suite and model, then one result a line."""

    def __init__(self, folder: Path, header: Mapping[str, Any], *, fresh: bool = False) -> None:
        super().__init__(folder / LOG_NAME, header, fresh=fresh)

    def load(self) -> dict[str, RunCaseResult]:
        """Results already logged, by case id; a torn last line is ignored."""
        results = {}
        for number, record in self.records():
            try:
                results[record["case_id"]] = _stored_result(record)
            except (KeyError, TypeError):
                raise self.not_a_result(number) from None
        return results

    def append(self, result: RunCaseResult) -> None:
        """Add one result, flushed to disk at once."""
        self.add_record({"kind": "case", **asdict(result)})


def _stored_result(record: Mapping[str, Any]) -> RunCaseResult:
    """A result read back from a log or a report; derived verdicts are recomputed, not trusted.

    Logs written before `checks_passed` existed stored the checks' verdict as `passed`.
    """
    names = {item.name for item in fields(RunCaseResult)}
    values = {key: value for key, value in record.items() if key in names}
    if "checks_passed" not in values:
        values["checks_passed"] = bool(record["passed"])
    return RunCaseResult(**values)


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
    """The run eval's report document: completion rate with its interval, means per case, and every case.

    `passed` counts the cases whose checks all passed in runs that reported success; `false_successes` the
    runs that reported success while a check failed, and `unclaimed_passes` the runs whose checks passed
    although the run did not report success (neither is counted as passed).
    """
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
        "false_successes": sum(r.false_success for r in results),
        "false_success_cases": [r.case_id for r in results if r.false_success],
        "unclaimed_passes": sum(r.unclaimed_pass for r in results),
        "statuses": statuses,
        "per_case": {
            "cost_usd": sum(r.cost_usd for r in results) / count,
            "latency_s": sum(r.latency_s for r in results) / count,
            "replans": sum(r.replans for r in results) / count,
            "tokens": sum(r.input_tokens + r.output_tokens for r in results) / count,
        },
        "results": [r.record() for r in results],
    }


def pool_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several suites' `report.json` documents as one: each suite's figures and all their cases pooled.

    The pooled completion rate's interval resamples the cases of every suite together.
    """
    suites: list[dict[str, Any]] = []
    passed: list[bool] = []
    for report in reports:
        results = [_stored_result(r) for r in report.get("results", [])]
        suites.append(
            {
                "suite": report.get("suite"),
                "model": report.get("model"),
                "cases": len(results),
                "passed": sum(r.passed for r in results),
                "false_successes": sum(r.false_success for r in results),
                "false_success_cases": [r.case_id for r in results if r.false_success],
                "unclaimed_passes": sum(r.unclaimed_pass for r in results),
            }
        )
        passed.extend(r.passed for r in results)
    rate = bootstrap_rate(passed)
    return {
        "suites": suites,
        "cases": len(passed),
        "passed": sum(passed),
        "unclaimed_passes": sum(suite["unclaimed_passes"] for suite in suites),
        "completion_rate": {"estimate": rate.estimate, "low": rate.low, "high": rate.high} if passed else None,
        "false_successes": sum(suite["false_successes"] for suite in suites),
    }


def _read_report(path: Path) -> dict[str, Any]:
    file = path / REPORT_NAME if path.is_dir() else path
    try:
        report: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{file}: cannot read the report: {error}") from None
    return report


def main(argv: Sequence[str]) -> int:
    """``python -m orquestra.evals.runs OUT...``: pool the reports that `orquestra eval runs` wrote."""
    if not argv:
        print("usage: python -m orquestra.evals.runs OUT_FOLDER_OR_REPORT_JSON...", file=sys.stderr)
        return 2
    try:
        pooled = pool_reports([_read_report(Path(arg)) for arg in argv])
    except UserError as error:
        print(error.message, file=sys.stderr)
        return 2
    for suite in pooled["suites"]:
        false = f" ({', '.join(suite['false_success_cases'])})" if suite["false_successes"] else ""
        print(
            f"{suite['suite']}: {suite['passed']}/{suite['cases']} passed, "
            f"{suite['false_successes']} false successes{false}, {suite['unclaimed_passes']} unclaimed passes"
        )
    rate = pooled["completion_rate"]
    if rate is not None:
        print(
            f"all: {pooled['passed']}/{pooled['cases']} passed, completion rate {rate['estimate']:.3f} "
            f"[{rate['low']:.3f}, {rate['high']:.3f}], {pooled['false_successes']} false successes, "
            f"{pooled['unclaimed_passes']} unclaimed passes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
