"""`orquestra eval`: measure planning quality on a suite, and whole runs on goals with checkable answers.

Mounted by `orquestra.cli` as ``app.add_typer(eval_app, name="eval")``. Results go to an output folder
(`eval-results/<suite>` by default) as a JSON-lines log, one case a line, so running the same command again
resumes where an interrupted eval stopped; `--fresh` starts over. Model and user text is printed as rich
`Text`, never read as markup.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orquestra import exit_codes
from orquestra.approval import ApprovalPolicy
from orquestra.cli_options import PlanningStrategyOption, planning_strategy
from orquestra.config import Settings, load_settings
from orquestra.evals.baseline import baseline_planner
from orquestra.evals.planning import BASELINE, ORQUESTRA, PlanFn, ResultLog, orquestra_planner, run_planning
from orquestra.evals.report import build_report, terminal_view, write_reports
from orquestra.evals.runs import RunLog, load_run_suite, run_suite, summarise_runs
from orquestra.evals.suite import load_suite
from orquestra.evals.textmatch import Embed
from orquestra.exceptions import UserError
from orquestra.models import Model, RetryingModel, infer_model
from orquestra.registry import Registry
from orquestra.safe_text import plain
from orquestra.team import AutoTeam

SAMPLE_SEED = 20241
DEFAULT_OUT = Path("eval-results")

eval_app = typer.Typer(help="Measure planning quality and whole runs on eval suites.", no_args_is_help=True)

SuiteArgument = Annotated[Path, typer.Argument(help="A suite file, e.g. evals/planning/example-own.yaml.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="The model to evaluate (default: the configured planning model).", show_default=False
    ),
]
LimitOption = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Only the first N cases.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Output folder (default: eval-results/<suite name>).", show_default=False)
]
FreshOption = Annotated[bool, typer.Option("--fresh", help="Discard earlier results in the output folder.")]


def build_model(spec: str, settings: Settings) -> Model:
    """The model for `spec`, priced from the registry, with retries where its requests may fail in passing."""
    prices = Registry.load(*settings.registry).prices
    model = infer_model(spec, settings=settings, prices=prices)
    return RetryingModel(model) if model.needs_retries else model


def build_embedder() -> Embed:
    """Local sentence embeddings for matching free-text steps (no network)."""
    from orquestra.embeddings import LocalEmbedder  # here: loading onnxruntime is only needed for free text

    embedder = LocalEmbedder()
    embedder.embed(["warm-up"])  # a missing model fails now, before any planning is paid for
    return embedder.embed


def _announce(console: Console, suite: str, model: str, what: str, count: int) -> None:
    """The line an eval starts with: which suite, which model, how many cases."""
    console.print(
        Text.assemble(
            ("suite: ", "dim"), plain(suite), ("  model: ", "dim"), plain(model), (f"  {what}: ", "dim"), str(count)
        )
    )


@eval_app.command("planning")
def planning(
    suite: SuiteArgument,
    model: ModelOption = None,
    limit: LimitOption = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also run a plain single-prompt planner on the same model.")
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A folder standing in for the suite's data/ folder.", show_default=False),
    ] = None,
    out: OutOption = None,
    fresh: FreshOption = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Run cases that errored before again.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Cases planned at once.")] = 2,
    format: Annotated[str, typer.Option("--format", help="Report file: md or html.")] = "md",
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="N cases drawn at random (seeded: the same N each time), in suite order."),
    ] = None,
    planner: PlanningStrategyOption = "auto",
) -> None:
    """Plan every case of a suite, score each plan against its gold graph, and write a report."""
    strategy = planning_strategy(planner)
    if format not in ("md", "html"):
        raise UserError(f"--format: unknown format '{format}' (choose md or html)")
    if sample is not None and limit is not None:
        raise UserError("--sample and --limit exclude each other: choose the first N cases or N at random")
    loaded = load_suite(suite, data)
    cases = loaded.cases()[:limit] if limit else loaded.cases()
    if sample is not None and sample < len(cases):
        # A fixed seed: a rerun with the same N draws the same cases, so an interrupted eval resumes.
        chosen = set(random.Random(SAMPLE_SEED).sample(range(len(cases)), sample))
        cases = [case for index, case in enumerate(cases) if index in chosen]
    settings = load_settings()
    spec = model or settings.planning_model
    the_model = build_model(spec, settings)
    folder = out or DEFAULT_OUT / loaded.name
    planners: dict[str, PlanFn] = {
        ORQUESTRA: orquestra_planner(the_model, max_tasks=loaded.spec.max_tasks, strategy=strategy)
    }
    if baseline:
        planners[BASELINE] = baseline_planner(the_model)
    free_text = any(case.free_text for case in cases)
    embed = build_embedder() if free_text else None
    log = ResultLog(folder, {"suite": loaded.name, "model": spec, "planner": strategy}, fresh=fresh)
    console = Console()
    _announce(console, loaded.name, f"{spec} (planner: {strategy})", "cases", len(cases))
    try:
        ids = {case.id for case in cases}
        done = sum(1 for planner, case_id in log.load() if planner in planners and case_id in ids)
        with _progress(console, len(cases) * len(planners), done) as advance:
            results = asyncio.run(
                run_planning(
                    cases,
                    planners,
                    log,
                    embed=embed,
                    concurrency=concurrency,
                    on_result=lambda _: advance(),
                    retry_errors=retry_errors,
                )
            )
    except KeyboardInterrupt:
        _interrupted(console, log.path, len(log.load()))
    report = build_report(
        results,
        suite=loaded.name,
        model=spec,
        free_text=free_text,
        anchors=loaded.spec.anchors,
        planners=list(planners),
    )
    console.print(terminal_view(report))
    for path in write_reports(report, folder, format=format):
        console.print(Text.assemble(("wrote ", "dim"), plain(path)))


@eval_app.command("runs")
def runs(
    suite: SuiteArgument,
    model: ModelOption = None,
    limit: LimitOption = None,
    out: OutOption = None,
    fresh: FreshOption = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Goals run at once.")] = 1,
) -> None:
    """Run every goal of a run suite end to end and check each answer: completion rate, cost, latency, replans."""
    spec = load_run_suite(suite)
    cases = spec.cases[:limit] if limit else spec.cases
    settings = load_settings()
    model_spec = model or settings.model
    team = AutoTeam(
        settings=settings,
        model=build_model(model_spec, settings),
        memory=False,  # past runs must not leak into an eval
        store=False,
        approval=ApprovalPolicy(),  # nobody is there to approve: the config file's policy would reject tasks
        max_replans=spec.max_replans,
        max_tasks=spec.max_tasks,
    )
    folder = out or DEFAULT_OUT / spec.name
    log = RunLog(folder, {"suite": spec.name, "model": model_spec}, fresh=fresh)
    console = Console()
    _announce(console, spec.name, model_spec, "goals", len(cases))
    try:
        with _progress(console, len(cases)) as advance:
            results = asyncio.run(
                run_suite(
                    team, cases, log, folder / "workspaces", concurrency=concurrency, on_result=lambda _: advance()
                )
            )
    except KeyboardInterrupt:
        _interrupted(console, log.path, len(log.load()))
    summary = summarise_runs(results, suite=spec.name, model=model_spec)
    table = Table(title=plain(f"{spec.name} with {model_spec}"), title_justify="left", header_style="bold")
    for column in ("case", "passed", "status", "cost", "latency", "replans", "why"):
        table.add_column(column)
    for result in results:
        why = result.error or "; ".join([*result.failures, *([result.reason] if result.reason else [])])
        table.add_row(
            plain(result.case_id),
            plain("yes" if result.passed else "no", style="green" if result.passed else "red"),
            plain(result.status),
            f"${result.cost_usd:.4f}",
            f"{result.latency_s:.1f}s",
            str(result.replans),
            plain(why),
        )
    console.print(table)
    rate = summary["completion_rate"]
    if rate is not None:
        console.print(
            f"completion rate: {rate['estimate']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}] "
            f"({summary['passed']}/{summary['cases']}); per case: ${summary['per_case']['cost_usd']:.4f}, "
            f"{summary['per_case']['latency_s']:.1f}s, {summary['per_case']['replans']:.2f} replans",
            highlight=False,
        )
    false = summary.get("false_successes", 0)
    which = f" ({', '.join(summary.get('false_success_cases', []))})" if false else ""
    # A run that said it succeeded while its check failed is the figure an orchestrator must keep at zero.
    console.print(plain(f"false successes: {false}{which}", style="bold red" if false else ""))
    path = folder / "report.json"
    try:
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the report: {error.strerror}") from None
    console.print(Text.assemble(("wrote ", "dim"), plain(path)))


@contextmanager
def _progress(console: Console, total: int, done: int = 0) -> Iterator[Callable[[], None]]:
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("cases", total=total, completed=done)
        yield lambda: progress.advance(task)


def _interrupted(console: Console, log: Path, kept: int) -> None:
    console.print(
        plain(f"interrupted: {kept} finished case(s) kept in {log}; run the same command again to resume"),
        style="yellow",
    )
    raise typer.Exit(exit_codes.INTERRUPTED)
