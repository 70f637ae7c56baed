"""Plans stream into the engine: each task starts once it and its dependencies are known and checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from orquestra import Registry, RunStatus
from orquestra.approval import ApprovalPolicy, ApprovalRequest, Decision
from orquestra.engine import TaskStatus
from orquestra.events import (
    ApprovalDecided,
    Event,
    GraphPatched,
    Planned,
    RunStarted,
    TaskDrafted,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.graph import Task, TaskGraph
from orquestra.models import Message, Model, ModelResponse, ScriptedModel
from orquestra.plan_stream import PlanStream, reconcile
from orquestra.plan_text import WholeTaskCut
from orquestra.planner import PlannedTask
from orquestra.registry import AgentCard
from orquestra.team import AutoTeam

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts.", capabilities=("research",)),
        AgentCard(name="writer", description="Writes.", capabilities=("writing",)),
    ]
)


def task(task_id: str, depends_on: Sequence[str] = (), capability: str = "research") -> dict[str, Any]:
    return {
        "id": task_id,
        "instruction": f"Do the part of the work called {task_id}.",
        "capability": capability,
        "depends_on": list(depends_on),
    }


SIX = {
    "tasks": [
        task("a"),
        task("b"),
        task("c", ["a"]),
        task("d", ["a", "b"]),
        task("e", ["c"]),
        task("f", ["d", "e"], "writing"),
    ]
}


def agents(messages: Sequence[Message]) -> str:
    if "final answer of a team" in messages[0].content:
        return "Done [f]."
    return "A result."


def streaming_team(plan: Any, *, agent_latency: float = 0.02, **options: Any) -> AutoTeam:
    """Agents on one scripted model, the planner on another that writes `plan` a word at a time."""
    answer = plan if callable(plan) else (lambda messages: plan)
    planner = ScriptedModel(answer, token_latency=0.002, name="planner")
    options.setdefault("memory", False)
    options.setdefault("store", False)
    return AutoTeam(
        registry=REGISTRY,
        model=ScriptedModel(agents, latency=agent_latency, name="agents"),
        models={"planner": planner},
        planner_model="planner",
        **options,
    )


class Timeline:
    """The events of a run in order, with the orders of admission and of starting read from them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def index(self, kind: type[Event], task_id: str | None = None) -> int:
        for number, event in enumerate(self.events):
            if isinstance(event, kind) and (task_id is None or getattr(event, "task_id", None) == task_id):
                return number
        raise AssertionError(f"no {kind.__name__} {task_id or ''}")

    def admitted(self) -> list[tuple[int, Task]]:
        """Each task the engine was given, with the position of the event that gave it."""
        found: list[tuple[int, Task]] = []
        for number, event in enumerate(self.events):
            if isinstance(event, RunStarted):
                found += [(number, t) for t in event.graph.tasks]
            elif isinstance(event, GraphPatched):
                found += [(number, t) for t in (*event.patch.add, *event.patch.replace)]
        return found

    def started(self) -> list[str]:
        return [event.task_id for event in self.events if isinstance(event, TaskStarted)]


def assert_checked_before_start(timeline: Timeline) -> None:
    """Every task started after it and its dependencies were admitted, and after its dependencies succeeded."""
    admitted = timeline.admitted()
    for task_id in timeline.started():
        start = timeline.index(TaskStarted, task_id)
        given = [(n, t) for n, t in admitted if t.id == task_id and n < start]
        assert given, f"{task_id} started before it was admitted"
        for dep in given[-1][1].depends_on:
            assert any(t.id == dep and n < start for n, t in admitted), f"{task_id} started before {dep} was admitted"
            assert timeline.index(TaskSucceeded, dep) < start, f"{task_id} started before {dep} succeeded"


async def test_tasks_start_as_the_plan_streams_in_and_never_before_their_dependencies():
    timeline = Timeline()
    result = await streaming_team(SIX).arun("six steps", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED, result.run.reason
    assert set(result.outputs) == set("abcdef")
    planned = timeline.index(Planned)
    assert timeline.index(TaskStarted, "a") < timeline.index(TaskDrafted, "b") < planned
    assert_checked_before_start(timeline)
    # Admitted in the order the model wrote them, each after its own TaskDrafted.
    admitted = [t.id for _, t in timeline.admitted()]
    assert admitted == list("abcdef")
    for number, admitted_task in timeline.admitted():
        assert timeline.index(TaskDrafted, admitted_task.id) < number
    # The plan as written is the plan run: nothing to reconcile.
    assert result.plan is not None and result.graph == result.plan.graph
    assert result.loop.graphs[0] == result.graph


async def test_a_task_is_admitted_only_with_all_its_dependencies_written():
    """A task drafted from text cut after one of its dependencies must not start without the others."""
    plan = {"tasks": [task("a"), task("b"), task("c", ["a", "b"])]}
    drafted: list[PlannedTask] = []
    team = streaming_team(plan)
    await team.plan("three", drafted=drafted.append)
    assert [(t.id, t.depends_on) for t in drafted] == [("a", []), ("b", []), ("c", ["a", "b"])]


def test_a_plan_is_read_only_up_to_its_last_whole_task():
    cut = WholeTaskCut()
    text = json.dumps({"tasks": [task("a"), {**task("b", ["a"]), "instruction": 'Say "}{" and \\ then {x}'}]})
    ends = set()
    for end in range(1, len(text) + 1):
        assert not cut.advance(text[:end])
        ends.add(cut.end)
    first = text.index("}") + 1
    assert ends == {0, first, len(text) - 2}
    assert cut.advance('{"tasks": [{"id": "z"}')  # a re-asked answer starts over
    assert cut.end == len('{"tasks": [{"id": "z"}')


async def test_a_task_with_an_unknown_capability_waits_for_the_repaired_plan():
    plan = {"tasks": [task("a"), task("b", ["a"], "astrology"), task("c", ["b"]), task("d", ["a"])]}
    timeline = Timeline()
    result = await streaming_team(plan).arun("stars", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED, result.run.reason
    planned = timeline.index(Planned)
    assert timeline.index(TaskStarted, "a") < planned
    assert timeline.index(TaskStarted, "b") > planned and timeline.index(TaskStarted, "c") > planned
    assert result.graph["b"].capability in {"research", "writing"}  # the repair mapped it
    assert result.plan is not None and any("astrology" in repair for repair in result.plan.repairs)
    assert_checked_before_start(timeline)


async def test_dangling_and_forward_dependencies_wait_for_the_whole_plan():
    plan = {"tasks": [task("a"), task("b", ["ghost"]), task("c", ["d"]), task("d", ["a"])]}
    timeline = Timeline()
    result = await streaming_team(plan).arun("odd edges", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED, result.run.reason
    planned = timeline.index(Planned)
    assert timeline.index(TaskStarted, "b") > planned  # its edge to 'ghost' was dropped by the repair
    assert timeline.index(TaskStarted, "c") > planned  # it named 'd' before 'd' was written
    assert result.graph["b"].depends_on == () and result.graph["c"].depends_on == ("d",)
    assert_checked_before_start(timeline)
    assert timeline.index(TaskSucceeded, "d") < timeline.index(TaskStarted, "c")


async def test_a_cycle_written_late_cancels_nothing_that_was_valid():
    plan = {"tasks": [task("a"), task("b", ["a"]), task("c", ["d"]), task("d", ["c"])]}
    timeline = Timeline()
    result = await streaming_team(plan).arun("cycle", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED, result.run.reason
    assert timeline.index(TaskStarted, "b") < timeline.index(Planned)
    assert result.run.statuses == dict.fromkeys("abcd", TaskStatus.SUCCEEDED)
    assert_checked_before_start(timeline)


async def test_a_re_asked_plan_that_changes_a_started_task_runs_its_version_beside_it():
    calls = 0

    def planner(messages: Sequence[Message]) -> Any:
        nonlocal calls
        calls += 1  # the first answer has a cycle; the re-asked one reuses the id 'a' for other work
        if calls == 1:
            return {"tasks": [task("a"), task("b", ["a"]), task("c", ["d"]), task("d", ["c"])]}
        return {"tasks": [{**task("a"), "instruction": "Other work."}, task("x", ["a"]), task("y", ["x"])]}

    timeline = Timeline()
    result = await streaming_team(planner).arun("re-asked", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED, result.run.reason
    planned = timeline.index(Planned)
    assert timeline.index(TaskStarted, "a") < planned and timeline.index(TaskStarted, "b") < planned
    # Nothing of the second answer was admitted before the whole plan was in: 'x' follows the new 'a'.
    assert timeline.index(TaskStarted, "x") > planned
    assert [(t.id, t.depends_on) for t in result.graph.tasks] == [
        ("a", ()),
        ("b", ("a",)),
        ("a_2", ()),
        ("x", ("a_2",)),
        ("y", ("x",)),
    ]
    assert result.graph["a_2"].instruction == "Other work."
    assert result.run.statuses == dict.fromkeys(result.graph.by_id, TaskStatus.SUCCEEDED)
    assert_checked_before_start(timeline)


async def test_a_planner_that_fails_after_tasks_started_ends_the_run_gave_up():
    calls = 0

    def planner(messages: Sequence[Message]) -> Any:
        nonlocal calls
        calls += 1  # a plan with a cycle, re-asked once; the second answer is no plan at all
        return {"tasks": [task("a"), task("b", ["a"]), task("c", ["d"]), task("d", ["c"])]} if calls == 1 else "no"

    timeline = Timeline()
    result = await streaming_team(planner, agent_latency=0.0).arun("doomed", subscribers=[timeline])
    assert calls == 2
    assert result.status is RunStatus.GAVE_UP
    assert "planning failed after the run had started" in result.run.reason
    assert "not a plan" in result.run.reason
    assert result.plan is None
    assert result.run.statuses["a"] is TaskStatus.SUCCEEDED  # valid work done before the error is kept
    assert "c" not in result.run.statuses and "d" not in result.run.statuses


async def test_a_planning_error_before_any_task_is_raised_as_before():
    from orquestra.planner import PlanningError

    with pytest.raises(PlanningError, match="not a plan"):
        await streaming_team(lambda messages: "no plan today").arun("nothing")


async def test_without_streaming_the_whole_plan_is_checked_before_anything_runs():
    timeline = Timeline()
    result = await streaming_team(SIX, stream_plans=False).arun("six steps", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED
    assert timeline.index(Planned) < timeline.index(RunStarted) < timeline.index(TaskStarted)
    started = timeline.events[timeline.index(RunStarted)]
    assert isinstance(started, RunStarted) and started.graph == result.graph
    assert not any(isinstance(event, GraphPatched) for event in timeline.events)


async def test_a_provider_that_does_not_show_its_answer_growing_runs_the_whole_plan():
    class Silent(Model):
        name = "planner"

        async def request(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
            await asyncio.sleep(0.01)  # the text arrives whole, and no watcher is told
            return ModelResponse(text=json.dumps(SIX), model=self.name, usage=self.usage(1, 1))

    team = streaming_team(SIX)
    team._models["planner"] = Silent()
    timeline = Timeline()
    result = await team.arun("six steps", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED
    assert not any(isinstance(event, TaskDrafted) for event in timeline.events)
    started = timeline.events[timeline.index(RunStarted)]
    assert isinstance(started, RunStarted) and len(started.graph) == 6


async def test_a_streamed_task_that_needs_approval_waits_for_it():
    decided: list[str] = []

    async def approve(request: ApprovalRequest) -> Decision:
        await asyncio.sleep(0.01)
        decided.append(request.task.id)
        return Decision.approve(by="test")

    timeline = Timeline()
    team = streaming_team(SIX, approval=ApprovalPolicy(every_task=True), approver=approve)
    result = await team.arun("six steps", subscribers=[timeline])
    assert result.status is RunStatus.SUCCEEDED
    assert sorted(decided) == list("abcdef")
    for task_id in "abcdef":
        assert timeline.index(ApprovalDecided, task_id) < timeline.index(TaskStarted, task_id)
    assert timeline.index(TaskStarted, "a") < timeline.index(Planned)


async def test_a_replan_waits_for_the_whole_plan():
    calls: list[str] = []

    def planner(messages: Sequence[Message]) -> Any:
        if "Answer with a patch" in messages[-1].content:
            calls.append("replan")
            return {"add": [task("a2")], "remove": [], "rewire": [{"task_id": "c", "depends_on": ["a2"]}]}
        calls.append("plan")
        return {"tasks": [task("a"), task("b"), task("c", ["a"]), task("d", ["b"])]}

    def flaky(messages: Sequence[Message]) -> str:
        if "Your task (a)" in messages[-1].content:
            raise ValueError("a broke")
        return agents(messages)

    timeline = Timeline()
    team = streaming_team(planner, retries=0)
    team._models["agents"] = ScriptedModel(flaky, latency=0.0, name="agents")
    result = await team.arun("replan", subscribers=[timeline])
    assert calls[0] == "plan" and "replan" in calls
    assert result.replans, result.run.reason
    replanned = next(n for n, e in enumerate(timeline.events) if type(e).__name__ == "Replanned")
    assert timeline.index(Planned) < replanned
    assert result.run.statuses["c"] is TaskStatus.SUCCEEDED


async def test_a_run_that_runs_out_of_time_while_the_plan_streams_stops_the_planner():
    from orquestra.budget import Budget

    team = streaming_team(SIX, budget=Budget(max_seconds=0.3))
    team._models["planner"] = ScriptedModel(lambda messages: SIX, token_latency=0.03, name="planner")
    timeline = Timeline()
    result = await asyncio.wait_for(team.arun("six steps", subscribers=[timeline]), timeout=2)
    assert result.status is RunStatus.OUT_OF_BUDGET
    assert result.plan is None
    assert not any(isinstance(event, Planned) for event in timeline.events)
    assert "a" in result.run.statuses and "f" not in result.run.statuses


async def test_cancelling_a_streaming_run_stops_the_planner():
    team = streaming_team(SIX, agent_latency=0.01)
    started = asyncio.Event()
    planner = team._models["planner"]

    def on(event: Event) -> None:
        if isinstance(event, TaskStarted):
            started.set()

    running = asyncio.ensure_future(team.arun("six steps", subscribers=[on]))
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert isinstance(planner, ScriptedModel) and len(planner.calls) == 1
    await asyncio.sleep(0.05)  # nothing of the run is left running to report late


@pytest.mark.parametrize("flag", ["--stream", "--no-stream"])
def test_orquestra_run_shows_the_drafts_the_plan_and_the_run_either_way(monkeypatch, flag):
    from typer.testing import CliRunner

    from orquestra import cli

    plan = {"tasks": [task("a"), task("b", ["a"], "astrology"), task("c", ["a"])]}
    monkeypatch.setattr(cli, "_team", lambda *args, **options: streaming_team(plan))
    result = CliRunner().invoke(cli.app, ["run", "three steps", flag], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("drafted a (research)") < out.index("drafted b (astrology)") < out.index("plan: 3 tasks")
    assert "repaired: task 'b': unknown capability 'astrology'" in out
    assert "run succeeded" in out and "3 succeeded" in out


# ---------------------------------------------------------------- admission and the final plan, one by one


def admitting(stream: PlanStream, *tasks: dict[str, Any]) -> None:
    for item in tasks:
        stream.drafted(PlannedTask.model_validate(item))


def test_admission_checks_each_task_alone_and_against_those_before_it():
    stream = PlanStream({"research", "writing"}, lambda task: None, max_tasks=4)
    admitting(
        stream,
        task("a"),
        task("a", ["a"]),
        task("Bad-Id"),
        task("b", ["a", "a"]),
        task("c", ["zz"]),
        task("d", ["e"]),
        task("e", ["a"], "astrology"),
        {**task("f", ["a"]), "instruction": ""},
        task("g", ["a"]),
        task("h", ["g"]),
        task("i"),
        task("j"),
    )
    assert list(stream.admitted) == ["a", "g", "h", "i"]
    assert set(stream.held) == {"a", "Bad-Id", "b", "c", "d", "e", "f", "j"}
    assert "twice" in stream.held["b"] and "'zz'" in stream.held["c"] and "astrology" in stream.held["e"]
    assert "4 tasks" in stream.held["j"]


def test_a_task_no_agent_can_run_waits():
    from orquestra.exceptions import DispatchError

    def check(task: Task) -> None:
        if task.id == "b":
            raise DispatchError("no agent for b")

    stream = PlanStream({"research"}, check, max_tasks=8)
    admitting(stream, task("a"), task("b"))
    assert list(stream.admitted) == ["a"] and stream.held == {"b": "no agent for b"}


def graph(*tasks: dict[str, Any]) -> TaskGraph:
    return TaskGraph(tasks=tuple(Task(**item) for item in tasks))


def test_reconcile_leaves_a_run_that_matches_the_plan_alone():
    final = graph(task("a"), task("b", ["a"]))
    statuses = {"a": TaskStatus.RUNNING, "b": TaskStatus.PENDING}
    assert reconcile(final, statuses, final).is_empty()
    # The same work in other words (the repair strips instructions): a started task is left as it is, one
    # not started yet takes the plan's wording.
    spaced = {**task("a"), "instruction": " Do the part of the work called a. "}
    assert reconcile(graph(spaced, task("b", ["a"])), statuses, final).is_empty()
    statuses["a"] = TaskStatus.PENDING
    assert reconcile(graph(spaced, task("b", ["a"])), statuses, final).replace == (final["a"],)


def test_reconcile_follows_the_final_plan_for_what_has_not_started():
    running = graph(task("a"), task("b", ["a"]), task("x", ["a"]))
    final = graph(task("a"), task("b", ["a", "c"]), task("c"))
    statuses = {"a": TaskStatus.RUNNING, "b": TaskStatus.PENDING, "x": TaskStatus.PENDING}
    patch = reconcile(running, statuses, final)
    assert patch.add == (final["c"],)
    assert patch.replace == (final["b"],)
    assert patch.remove == ("x",)
    assert running.apply(patch, frozen={"a"}).by_id.keys() == {"a", "b", "c"}


def test_reconcile_never_touches_what_has_started():
    running = graph(task("a"), task("b", ["a"]), task("old"))
    changed_a = {**task("a"), "instruction": "Something else entirely."}
    final = graph(changed_a, task("b", ["a"]), task("n", ["b"]))
    statuses = {"a": TaskStatus.SUCCEEDED, "b": TaskStatus.RUNNING, "old": TaskStatus.SUCCEEDED}
    patch = reconcile(running, statuses, final)
    assert patch.remove == () and patch.replace == ()
    added = {t.id: t for t in patch.add}
    # 'a' changed after it ran: the new version runs as a_2, and what depends on it in the plan follows it.
    assert added["a_2"].instruction == "Something else entirely."
    assert added["b_2"].depends_on == ("a_2",)
    assert added["n"].depends_on == ("b_2",)
    assert "dropped it; it runs to the end" in patch.reason and "'old'" in patch.reason
    frozen = {"a", "b", "old"}
    assert set(running.apply(patch, frozen=frozen).by_id) == {"a", "b", "old", "a_2", "b_2", "n"}


@pytest.mark.slow
async def test_a_plan_from_the_embedded_model_streams_into_the_run(weights_home, monkeypatch):
    """The embedded model writes the plan; scripted agents (not queued behind it) start while it writes."""
    monkeypatch.setenv("ORQUESTRA_HOME", str(weights_home))
    goal = "Find the populations of France and of Spain, compute the difference, and write a short note about it."
    team = AutoTeam(
        model=ScriptedModel(lambda messages: "A result.", latency=0.05, name="agents"),
        planner_model="local",
        memory=False,
        store=False,
        max_replans=0,
    )
    timeline = Timeline()
    result = await team.arun(goal, subscribers=[timeline])
    assert result.plan is not None
    planned = timeline.index(Planned)
    assert timeline.index(TaskStarted) < planned, "the first task started before the plan was complete"
    drafted = [e for e in timeline.events if isinstance(e, TaskDrafted)]
    assert drafted and all(timeline.index(TaskDrafted, e.task_id) < planned for e in drafted)
    assert_checked_before_start(timeline)
    assert set(result.plan.graph.by_id) <= set(result.graph.by_id)
