"""`orquestra repl`: an interactive session. A plain line is a goal to plan and run; a /command inspects or steers.

Ctrl-C during a plan or a run stops it and returns to the prompt; Ctrl-C at the prompt clears the line and
Ctrl-D (or /exit) ends the session. Every error is one line, then the prompt comes back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.history import FileHistory
from prompt_toolkit.utils import is_dumb_terminal
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orquestra.approval import ApprovalRequest, Decision
from orquestra.budget import Budget
from orquestra.cli_options import PlannerModelOption, RegistryFolders
from orquestra.config import load_settings
from orquestra.console import ProgressView, drafted_line, graph_tree, run_notice, run_summary, usage_line
from orquestra.events import Event, TaskDrafted
from orquestra.exceptions import OrquestraError, UserError
from orquestra.graph import TaskGraph
from orquestra.graphfile import dump_graph, load_graph
from orquestra.models import Usage
from orquestra.planner import PlanResult
from orquestra.registry import Registry
from orquestra.safe_text import error_line, plain
from orquestra.team import AutoTeam, TeamResult

T = TypeVar("T")
Command = Callable[[str], Awaitable[None]]

console = Console()

PROMPT = "orquestra> "
BUDGET_KEYS = {"tokens": "max_tokens", "cost": "max_cost", "seconds": "max_seconds"}


class Interrupted(Exception):
    """Ctrl-C stopped a plan or a run before it finished."""


class Repl:
    """One interactive session over an `AutoTeam`: the prompt loop, and one method per command."""

    def __init__(self, team: AutoTeam) -> None:
        self.team = team
        self.goal = ""
        """The goal of the last plan."""
        self.plan: PlanResult | None = None
        """The last plan, as the planner returned it."""
        self.graph: TaskGraph | None = None
        """The graph /run runs: the last plan's, or its edited version."""
        self.view: ProgressView | None = None
        """The last run's progress view: its graph and the statuses of its tasks."""
        self.result: TeamResult | None = None
        """The last run's result."""
        self.done = False
        self._cancel: Callable[[], object] = lambda: None
        self.commands: dict[str, tuple[Command, str]] = {
            "/plan": (self.cmd_plan, "GOAL: plan only, show the plan, then ask whether to run it"),
            "/run": (self.cmd_run, "run the last plan"),
            "/graph": (self.cmd_graph, "the current or last graph, with statuses"),
            "/why": (self.cmd_why, "why the last run replanned, and what changed"),
            "/agents": (self.cmd_agents, "the registry's agents and their capabilities"),
            "/model": (self.cmd_model, "[NAME]: show or set the default model"),
            "/memory": (self.cmd_memory, "[TEXT]: list past runs in memory, or search them"),
            "/history": (self.cmd_history, "the runs the store recorded"),
            "/budget": (self.cmd_budget, "[tokens=N cost=X seconds=S]: show or set the budget per run"),
            "/help": (self.cmd_help, "this list"),
            "/exit": (self.cmd_exit, "end the session (also Ctrl-D)"),
        }
        home = team.settings.home
        home.mkdir(parents=True, exist_ok=True)
        self.session: PromptSession[str] = PromptSession(
            history=FileHistory(str(home / "repl_history")),
            completer=WordCompleter(list(self.commands), sentence=True),
        )
        self._ask: PromptSession[str] = PromptSession()
        self._live: Live | None = None
        self._deciding = asyncio.Lock()
        self._unbilled = Usage()
        """What planning the last plan cost, until a run of it counts it."""

    # ---------------------------------------------------------------- the loop

    async def loop(self) -> None:
        """Read and handle lines until /exit or Ctrl-D."""
        console.print("[dim]Type a goal to plan and run it, or /help for the commands.[/dim]")
        while not self.done:
            try:
                line = await self.session.prompt_async(PROMPT)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            await self.handle(line)

    async def handle(self, line: str) -> None:
        """Handle one line: a /command or a goal; any error is printed on one line."""
        line = line.strip()
        if not line:
            return
        try:
            if line.startswith("/"):
                name, _, argument = line.partition(" ")
                if name not in self.commands:
                    raise UserError(f"unknown command '{name}' (/help lists the commands)")
                await self.commands[name][0](argument.strip())
            else:
                await self.cmd_goal(line)
        except Interrupted:
            console.print("[yellow]interrupted[/yellow]")
        except OrquestraError as error:
            _error(error.message)
        except Exception as error:  # a session outlives any one command's failure
            _error(f"{type(error).__name__}: {error}")

    # ---------------------------------------------------------------- commands

    async def cmd_goal(self, goal: str) -> None:
        """Plan a goal, show the plan and run it."""
        await self._plan(goal)
        await self.cmd_run("")

    async def cmd_plan(self, goal: str) -> None:
        """Plan a goal and show it; then ask whether to run it, edit it first, or leave it."""
        if not goal:
            raise UserError("/plan needs a goal, e.g. /plan compare three note-taking apps")
        await self._plan(goal)
        while True:
            answer = (await self._ask.prompt_async("run it? [y/N/e(dit)] ")).strip().lower()
            if answer in ("y", "yes"):
                await self.cmd_run("")
                return
            if answer not in ("e", "edit"):
                console.print("[dim]not run; /run runs it later[/dim]")
                return
            await self._edit()

    async def cmd_run(self, argument: str) -> None:
        """Run the last plan with live progress, then print the answer."""
        if self.graph is None:
            raise UserError("no plan yet: type a goal, or /plan GOAL")
        graph, goal, team = self.graph, self.goal, self.team
        meter = team.meter()
        # Planning's calls belong to the first run of its plan, as in `orquestra run` (its time does not: the
        # person may take a while to say yes), so the summary, the budget and the run store all count them.
        meter.add(self._unbilled)
        self._unbilled = Usage()
        run = team.prepare(goal, graph, meter=meter, approvers=[self.approve])
        self.view = view = ProgressView(graph, run.agent_name)
        run.subscribe(view)
        run.subscribe(_announce)

        async def drive() -> TeamResult:
            self._cancel = lambda: run.cancel("interrupted by Ctrl-C")  # in any phase: the run ends cleanly
            with Live(view, console=console, refresh_per_second=8) as self._live:
                try:
                    await run.execute()
                finally:
                    self._live = None
            console.print()  # the table's last line ends here, not at the start of the summary
            with console.status("writing the answer..."):
                return await run.finish()

        self.result = result = await self._interruptible(drive())
        if result.answer:
            console.print(Panel(plain(result.answer), title="answer", title_align="left", border_style="green"))
        console.print(run_summary(result.run, meter))
        console.print(usage_line(result.usage), style="dim", highlight=False)

    async def approve(self, request: ApprovalRequest) -> Decision:
        """Ask at the prompt whether a task waiting for approval may run: yes, no (with a reason), or edit it.

        The live view pauses meanwhile; requests from parallel branches are asked one at a time. Ctrl-C here
        stops the run, like Ctrl-C anywhere during a run.
        """
        async with self._deciding:
            live = self._live
            if live is not None:
                live.stop()
            try:
                console.print(
                    Panel(
                        Text.assemble(
                            plain(request.task.instruction), plain("\nwhy: " + "; ".join(request.reasons), "dim")
                        ),
                        title=plain(f"approve task {request.task.id} ({request.agent})?"),
                        title_align="left",
                        border_style="blue",
                    )
                )
                return await self._decision(request)
            except KeyboardInterrupt:
                self._cancel()
                return Decision.reject("the run was interrupted", by="repl")
            finally:
                if live is not None:
                    live.start()

    async def _decision(self, request: ApprovalRequest) -> Decision:
        while True:
            answer = (await self._ask.prompt_async("approve? [y]es / [n]o / [e]dit ")).strip().lower()
            if answer in ("y", "yes"):
                return Decision.approve(by="repl")
            if answer in ("n", "no"):
                reason = await self._ask.prompt_async("reason: ")
                return Decision.reject(reason.strip(), by="repl")
            if answer in ("e", "edit"):
                # The planned instruction is offered for editing, except on a dumb terminal, which cannot
                # show it: there it would sit unseen in front of whatever the person types.
                offered = "" if is_dumb_terminal() else request.task.instruction
                instruction = (await self._ask.prompt_async("instruction: ", default=offered)).strip()
                if instruction:
                    return Decision.edit(instruction, by="repl")

    async def cmd_graph(self, argument: str) -> None:
        """Show the last run's graph with its statuses, or the last plan's graph."""
        if self.view is not None:
            console.print(self.view)
        elif self.graph is not None:
            console.print(graph_tree(self.graph, title=f"plan: {len(self.graph)} tasks"))
        else:
            console.print("[dim]no graph yet: type a goal, or /plan GOAL[/dim]")

    async def cmd_why(self, argument: str) -> None:
        """Show each replan of the last run: its reason and its diff."""
        if self.result is None:
            console.print("[dim]no run yet[/dim]")
            return
        if not self.result.replans:
            console.print("[dim]the last run did not replan[/dim]")
        for number, replan in enumerate(self.result.replans, 1):
            title = plain(f"replan {number}: {replan.reason}")
            console.print(Panel(plain(replan.diff), title=title, title_align="left", border_style="yellow"))
        if self.result.loop.ended_by:
            console.print(plain(f"ended by: {self.result.loop.ended_by}", style="dim"))

    async def cmd_agents(self, argument: str) -> None:
        """List the registry's agents with their capabilities and models."""
        table = Table(box=None, header_style="bold")
        for column in ("agent", "capabilities", "model"):
            table.add_column(column)
        for card in sorted(self.team.registry.agents.values(), key=lambda card: card.name):
            table.add_row(card.name, ", ".join(card.capabilities), card.model or "(default)")
        console.print(table)

    async def cmd_model(self, name: str) -> None:
        """Show the default model, or set it (checked first, so a bad name changes nothing)."""
        if name:
            self.team.model(name)
            self.team.settings = self.team.settings.with_model(name)
        settings = self.team.settings
        console.print(
            Text.assemble(
                ("model: ", "dim"), plain(settings.model), plain(f" (planner: {settings.planning_model})", "dim")
            )
        )

    async def cmd_memory(self, text: str) -> None:
        """List the runs memory keeps, or the ones most like `text`."""
        memory = self.team.memory
        if not memory.enabled:
            console.print("[dim]memory is off[/dim]")
            return
        if text:
            found = await asyncio.to_thread(memory.search, text, 10)
            rows = [(item.run, f"{item.similarity:.2f}") for item in found]
        else:
            rows = [(run, "") for run in await asyncio.to_thread(memory.list, 20)]
        if not rows:
            console.print("[dim]nothing in memory[/dim]")
            return
        table = Table(box=None, header_style="bold")
        for column in ("run", "outcome", "similarity" if text else "", "goal"):
            table.add_column(column)
        for run, similarity in rows:
            table.add_row(plain(run.run_id), plain(run.outcome), similarity, plain(run.goal))
        console.print(table)

    async def cmd_history(self, argument: str) -> None:
        """List the most recent runs the store recorded."""
        store = self.team.store
        runs = store.list(20) if store is not None else []
        if not runs:
            console.print("[dim]no runs recorded[/dim]")
            return
        table = Table(box=None, header_style="bold")
        for column in ("run", "status", "tasks", "goal"):
            table.add_column(column)
        for run in runs:
            table.add_row(plain(run.id), plain(run.status), f"{run.tasks_done}/{run.tasks_total}", plain(run.goal))
        console.print(table)

    async def cmd_budget(self, argument: str) -> None:
        """Show the budget per run, or set some of its limits: tokens=N cost=X seconds=S (none clears one)."""
        if argument:
            self.team.budget = _parse_budget(self.team.budget, argument)
        budget = self.team.budget
        parts = [f"{key}={getattr(budget, field) or 'none'}" for key, field in BUDGET_KEYS.items()]
        console.print("budget per run: " + " ".join(parts), highlight=False)

    async def cmd_help(self, argument: str) -> None:
        """List the commands."""
        table = Table(box=None, show_header=False)
        table.add_row("GOAL", "plan a goal and run it")
        for name, (_, summary) in self.commands.items():
            table.add_row(plain(name), plain(summary))
        console.print(table)

    async def cmd_exit(self, argument: str) -> None:
        """End the session."""
        self.done = True

    # ---------------------------------------------------------------- helpers

    async def _plan(self, goal: str) -> None:
        # The plan only, not yet a run (nothing recorded): /run runs it, or its edited graph, as a run of its own.
        planning = self.team.prepare(goal, record=False)

        def show(event: Event) -> None:
            if isinstance(event, TaskDrafted):
                console.print(drafted_line(event), overflow="ellipsis", no_wrap=True)

        planning.subscribe(show)
        with console.status(f"planning with {self.team.settings.planning_model}..."):
            plan = await self._interruptible(planning.plan_goal())
        self.goal, self.plan, self.graph, self.view, self.result = goal, plan, plan.graph, None, None
        self._unbilled = planning.meter.usage
        for recalled in plan.recalled:
            console.print(Text.assemble(("recalled: ", "dim"), plain(recalled)))
        console.print(graph_tree(plan.graph, title=f"plan: {len(plan.graph)} tasks"))
        for repair in plan.repairs:
            console.print(Text.assemble(("repaired: ", "yellow"), plain(repair)))
        for note in plan.notes:
            console.print(Text.assemble(("note: ", "dim"), plain(note)))

    async def _edit(self) -> None:
        """Open the plan as YAML in $EDITOR and take it back, checked."""
        editor = os.environ.get("EDITOR")
        if not editor:
            console.print("[dim]set $EDITOR to edit a plan[/dim]")
            return
        assert self.graph is not None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "plan.yaml"
            dump_graph(self.graph, path)
            await asyncio.to_thread(subprocess.run, [*shlex.split(editor), str(path)], check=False)
            graph = load_graph(path)
        self.team.prepare(self.goal, graph, record=False)  # the check a run of it makes: refused now, not at /run
        self.graph = graph
        console.print(graph_tree(graph, title=f"edited plan: {len(graph)} tasks"))

    async def _interruptible(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work` with Ctrl-C bound to stopping it (a run cancels its execution, so it ends cleanly)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        self._cancel = task.cancel
        loop.add_signal_handler(signal.SIGINT, lambda: self._cancel())
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the session itself is being cancelled
            raise Interrupted from None
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            self._cancel = lambda: None


def _parse_budget(budget: Budget, argument: str) -> Budget:
    """`budget` with the limits `argument` sets, e.g. ``tokens=2000 cost=0.5 seconds=none``."""
    changes: dict[str, float | int | None] = {}
    for item in argument.split():
        key, sep, value = item.partition("=")
        if not sep or key not in BUDGET_KEYS:
            raise UserError(f"/budget: expected tokens=N, cost=X or seconds=S, got '{item}'")
        if value.lower() in ("none", "off", ""):
            changes[BUDGET_KEYS[key]] = None
            continue
        try:
            changes[BUDGET_KEYS[key]] = int(value) if key == "tokens" else float(value)
        except ValueError:
            raise UserError(f"/budget: {key} must be a number, got '{value}'") from None
    return dataclasses.replace(budget, **changes)  # type: ignore[arg-type]


def _announce(event: Event) -> None:
    notice = run_notice(event)
    if notice is not None:
        console.print(notice)


def _error(message: str) -> None:
    console.print(error_line(message), soft_wrap=True)


def repl_command(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Default model (local, openai:<model>, ...).", show_default=False),
    ] = None,
    planner_model: PlannerModelOption = None,
    registry: RegistryFolders = None,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Recall similar past runs before planning, and remember runs.")
    ] = True,
) -> None:
    """Start an interactive session: type a goal to plan and run it, or a /command (/help lists them)."""
    try:
        settings = load_settings()
        cards = Registry.load(*settings.registry, *(registry or []))
        team = AutoTeam(
            registry=cards,
            settings=settings,
            model=model,
            planner_model=planner_model,
            memory=None if memory else False,
        )
        team.model()  # a bad model string fails now, not at the first goal
    except UserError as error:
        _error(error.message)
        raise typer.Exit(2) from None
    try:
        asyncio.run(Repl(team).loop())
    finally:
        team.close()


if __name__ == "__main__":
    # instructor logs every failed attempt at ERROR; the session reports the outcome itself.
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    typer.run(repl_command)
