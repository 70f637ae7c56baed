"""The numbers a run reports are true: each task's own time, one clock for the budget and the summary, usage kept.

The models are scripted with a latency, so every figure has a known size.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from rich.console import Console, RenderableType
from typer.testing import CliRunner

from orquestra.budget import Budget
from orquestra.budget_meter import BudgetMeter
from orquestra.cli_runs import runs_app
from orquestra.console import run_summary, usage_line
from orquestra.engine import Engine, RunStatus
from orquestra.events import Event, TaskSucceeded
from orquestra.graph import Task
from orquestra.models import Message, ScriptedModel
from orquestra.repl import Repl
from orquestra.store import open_store
from orquestra.team import AutoTeam
from tests.helpers import make_graph, mounted
from tests.test_tables import table_rows

LATENCY = 0.2
CHAIN: dict[str, Iterable[str]] = {"first": [], "second": ["first"], "third": ["second"], "fourth": ["third"]}
PLAN = {
    "tasks": [
        {"id": task_id, "instruction": f"Write the {task_id} fact about otters.", "capability": "research",
         "depends_on": list(deps)}
        for task_id, deps in CHAIN.items()
    ]
}  # fmt: skip


def brain(messages: Sequence[Message]) -> str | dict[str, Any]:
    """Plans the chain, answers each task with a plain fact, and writes the answer."""
    if "planner of a team" in messages[0].content:
        return PLAN
    if "final answer of a team" in messages[0].content:
        return "Otters hold hands while they sleep [first]."
    return "Sea otters hold hands while they sleep so that they do not drift apart."


def scripted_team(latency: float = LATENCY, **options: Any) -> AutoTeam:
    return AutoTeam(model=ScriptedModel(brain, name="brain", latency=latency), memory=False, **options)


def text_of(renderable: RenderableType) -> str:
    written = io.StringIO()
    Console(file=written, width=200, color_system=None).print(renderable)
    return written.getvalue()


# ---------------------------------------------------------------------------------------------- elapsed


async def test_the_engine_reports_each_tasks_own_time_not_the_time_since_the_run_began() -> None:
    async def work(task: Task, inputs: Mapping[str, Any]) -> str:
        await asyncio.sleep(LATENCY)
        return task.id

    succeeded: list[TaskSucceeded] = []

    def keep(event: Event) -> None:
        if isinstance(event, TaskSucceeded):
            succeeded.append(event)

    engine = Engine(work)
    engine.subscribe(keep)
    result = await engine.run(make_graph(CHAIN))
    assert [event.task_id for event in succeeded] == list(CHAIN)
    for event in succeeded:  # the fourth would say 0.8 s if it counted from the start of the run
        assert LATENCY <= event.elapsed < 2 * LATENCY, event
    assert result.elapsed >= 4 * LATENCY


async def test_the_store_and_runs_show_keep_each_tasks_own_duration() -> None:
    team = AutoTeam(model="scripted:0.2", memory=False)
    outcome = await team.execute(make_graph(CHAIN), dynamic=False)
    await team.finish("", None, outcome)
    team.close()
    run_id = outcome.run.run_id
    with open_store() as store:
        stored = store.get(run_id)
    assert stored.run.status == "succeeded"
    durations = {task.task_id: task.elapsed for task in stored.tasks}
    for task_id, elapsed in durations.items():
        assert elapsed is not None and LATENCY <= elapsed < 2 * LATENCY, (task_id, elapsed)
    shown = CliRunner().invoke(mounted(runs_app, "runs"), ["runs", "show", run_id], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    rows = table_rows(shown.output, ("task", "capability", "agent", "status", "elapsed", "checks", "error"))
    assert list(rows) == list(CHAIN)
    for task_id, row in rows.items():
        assert LATENCY <= float(row["elapsed"].rstrip("s")) < 2 * LATENCY, (task_id, row)


async def test_a_task_cancelled_while_running_is_stored_with_the_time_it_ran() -> None:
    team = scripted_team(latency=5.0)
    execution_started = asyncio.Event()
    executions = []

    def started(execution: Any) -> None:
        executions.append(execution)
        execution_started.set()

    running = asyncio.create_task(team.execute(make_graph({"slow": [], "later": ["slow"]}), started=started))
    await execution_started.wait()
    await asyncio.sleep(0.3)
    executions[0].cancel("interrupted by Ctrl-C")
    outcome = await running
    team.close()
    with open_store() as store:
        tasks = {task.task_id: task for task in store.get(outcome.run.run_id).tasks}
    assert tasks["slow"].status == "cancelled"
    assert tasks["slow"].elapsed is not None and 0.25 <= tasks["slow"].elapsed < 1.5
    assert (tasks["later"].status, tasks["later"].elapsed) == ("cancelled", None)


# ---------------------------------------------------------------------------------------------- time budget


def _seconds(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return float(found.group(1))


async def test_the_time_budget_and_the_summary_read_one_clock() -> None:
    team = scripted_team(budget=Budget(max_seconds=1.0))
    meter = team.meter()
    plan = await team.plan("Four facts about otters", meter=meter)  # 0.2 s of the budget
    outcome = await team.execute(plan.graph, goal="Four facts about otters", meter=meter)
    result = await team.finish("Four facts about otters", plan, outcome)
    team.close()
    run = result.run
    assert run.status is not RunStatus.SUCCEEDED and "time budget is nearly spent" in run.reason, run.reason
    summary = text_of(run_summary(run, meter))

    stopped_at = _seconds(r"\(([\d.]+) of 1 seconds\)", run.reason)  # when the budget stopped the run
    headline = _seconds(r"^run \S+ in ([\d.]+)s", summary)
    budget_line = _seconds(r"budget: ([\d.]+) of 1 seconds", summary)
    assert headline == budget_line  # the same clock, read once
    assert stopped_at >= 0.9
    # The run took at least as long as the budget says it had spent when it stopped it, planning included
    # (the engine's own clock times the graph alone, from after planning).
    assert headline >= stopped_at
    assert headline >= run.elapsed + LATENCY


def test_a_budget_message_reports_the_time_it_judged() -> None:
    meter = BudgetMeter(Budget(max_seconds=10.0))
    meter.started -= 9.5  # 9.5 s spent
    reason = meter.near_limit()
    assert reason is not None
    assert 9.5 <= _seconds(r"\(([\d.]+) of 10 seconds\)", reason) < 9.6
    assert meter.spending(9.5) == ["9.50 of 10 seconds"]
    assert BudgetMeter(Budget(max_tokens=100)).spending() == ["0 of 100 tokens"]
    assert BudgetMeter().spending() == []


def test_without_a_meter_the_summary_has_no_budget_line() -> None:
    async def run() -> Any:
        async def work(task: Task, inputs: Mapping[str, Any]) -> str:
            return "done"

        return await Engine(work).run(make_graph({"only": []}))

    result = asyncio.run(run())
    summary = text_of(run_summary(result))
    assert summary.startswith("run succeeded in ") and "1 succeeded" in summary and "budget:" not in summary


# ---------------------------------------------------------------------------------------------- usage


async def test_a_cancelled_run_keeps_the_usage_of_its_planning_and_its_finished_tasks() -> None:
    team = scripted_team(latency=0.3)
    meter = team.meter()
    plan = await team.plan("Four facts about otters", meter=meter)
    loop = asyncio.get_running_loop()

    def started(execution: Any) -> None:
        loop.call_later(0.45, execution.cancel, "interrupted by Ctrl-C")  # the first task done, the second not

    outcome = await team.execute(plan.graph, goal="Four facts about otters", meter=meter, started=started)
    result = await team.finish("Four facts about otters", plan, outcome)
    team.close()
    assert result.status is RunStatus.CANCELLED and result.run.finished == ["first"]
    first = result.task_usage["first"]
    # Planning, the first task, and the answer written from what was done: nothing spent is forgotten.
    assert result.usage.requests == plan.usage.requests + first.requests + 1 == 3
    assert result.usage.input_tokens > plan.usage.input_tokens + first.input_tokens
    with open_store() as store:
        assert store.get(result.run.run_id).run.usage == dataclasses.asdict(result.usage)
    assert "model calls: 3," in usage_line(result.usage)


async def test_the_repl_reports_a_cancelled_runs_planning_usage(capsys: pytest.CaptureFixture[str]) -> None:
    team = scripted_team(latency=0.3)
    repl = Repl(team)
    await repl._plan("Four facts about otters")  # as a goal line or /plan does, without asking to run it
    capsys.readouterr()

    async def interrupt() -> None:
        while repl.view is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the first task is running now
        repl._cancel()

    interrupting = asyncio.create_task(interrupt())
    await repl.handle("/run")
    await interrupting
    out = capsys.readouterr().out
    team.close()
    assert repl.result is not None and repl.result.status is RunStatus.CANCELLED
    assert "run cancelled in" in out and "model calls: 1," in out, out
    with open_store() as store:
        usage = store.get(repl.result.run.run_id).run.usage
    assert usage is not None and usage["requests"] == 1
    # The planning is counted once: a second run of the same plan is billed only its own calls.
    await repl.handle("/run")
    again = repl.result
    assert again is not None and again.status is RunStatus.SUCCEEDED
    assert again.usage.requests == len(CHAIN) + 1  # each task, and the answer
