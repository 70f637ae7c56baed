"""Human approval: which tasks wait, the waiting branch while others go on, and decisions from a callback,
the run store and `orquestra approve` in another process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from orquestra import RunStatus
from orquestra.approval import ApprovalPolicy, ApprovalRejected, ApprovalRequest, Decision
from orquestra.config import load_settings
from orquestra.dispatch import Dispatcher
from orquestra.engine import Engine
from orquestra.events import ApprovalDecided, ApprovalRequested, Event, TaskFailed, TaskSucceeded
from orquestra.exceptions import PatchRefused, UserError
from orquestra.graph import GraphPatch, Task, TaskGraph
from orquestra.models import Message, ScriptedModel
from orquestra.registry import AgentCard, Registry
from orquestra.store import open_store
from orquestra.team import AutoTeam
from tests.helpers import make_graph
from tests.test_cli import assert_user_error, orquestra
from tests.test_store import record_run


def graph(*tasks: Task) -> TaskGraph:
    return TaskGraph(tasks=tasks)


# send (needs approval) -> report, and an independent branch: facts -> summary
GRAPH = graph(
    Task(id="send", instruction="Send the invoice", capability="writing", requires_approval=True),
    Task(id="report", instruction="Report that it was sent", capability="writing", depends_on=("send",)),
    Task(id="facts", instruction="Gather the facts", capability="research"),
    Task(id="summary", instruction="Summarise the facts", capability="writing", depends_on=("facts",)),
)


def echo(messages: Sequence[Message]) -> str:
    """Each agent answers with the instruction it was given, so a test sees what really ran."""
    last = messages[-1].content
    start = last.index("Your task (")
    return "did: " + last[start:].split("\n", 1)[0].split("): ", 1)[1].strip()


def team(**options: object) -> AutoTeam:
    return AutoTeam(model=ScriptedModel(echo, name="echo"), memory=False, **options)  # type: ignore[arg-type]


def recorder() -> tuple[list[Event], object]:
    events: list[Event] = []
    return events, events.append


# ---------------------------------------------------------------- which tasks need approval


def test_policy_reasons_name_every_rule_that_asks() -> None:
    registry = Registry.load()
    dispatcher = Dispatcher(registry)
    math = Task(id="total", instruction="Add", capability="math")
    assert ApprovalPolicy().reasons(math, dispatcher.assign(math)) == []
    by_tool = ApprovalPolicy(tools=("calculator",)).reasons(math, dispatcher.assign(math))
    assert "agent 'analyst' may use tool 'calculator'" in by_tool
    planned = math.model_copy(update={"requires_approval": True})
    assert ApprovalPolicy().reasons(planned, dispatcher.assign(planned)) == ["the plan asks for approval"]
    assert ApprovalPolicy(capabilities=("math",)).reasons(math, dispatcher.assign(math)) == [
        "the policy asks for approval of capability 'math'"
    ]
    assert ApprovalPolicy(every_task=True).reasons(math, dispatcher.assign(math)) == [
        "the policy asks for approval of every task"
    ]
    careful = AgentCard(name="careful", description="Asks first.", capabilities=("math",), requires_approval=True)
    only = Dispatcher(Registry(agents=[careful]))
    assert ApprovalPolicy().reasons(math, only.assign(math)) == ["agent 'careful' requires approval"]


def test_the_policy_comes_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("approval:\n  tools: [write_file]\n  timeout: 30\n")
    settings = load_settings(config)
    assert settings.approval == ApprovalPolicy(tools=("write_file",), timeout=30)
    config.write_text("approval:\n  tool: [write_file]\n")
    with pytest.raises(UserError, match=r"config.yaml: field 'approval.tool': Extra inputs"):
        load_settings(config)


# ---------------------------------------------------------------- the API callback


async def test_a_waiting_branch_holds_while_the_independent_branch_finishes() -> None:
    decide = asyncio.Event()
    asked: list[ApprovalRequest] = []
    events, record = recorder()

    async def approver(request: ApprovalRequest) -> Decision:
        asked.append(request)
        await decide.wait()
        return Decision.approve("looks right", by="alice")

    async def watch() -> None:
        # Release the decision only after the other branch has finished: proof that it did not wait.
        async with asyncio.timeout(20):
            while not any(isinstance(e, TaskSucceeded) and e.task_id == "summary" for e in events):
                await asyncio.sleep(0.01)
        assert not any(isinstance(e, TaskSucceeded) and e.task_id in ("send", "report") for e in events)
        decide.set()

    the_team = team(approver=approver, store=False, max_concurrency=1)
    watcher = asyncio.create_task(watch())
    outcome = await the_team.execute(GRAPH, dynamic=False, subscribers=[record])
    await watcher
    assert outcome.run.status is RunStatus.SUCCEEDED
    assert [request.task.id for request in asked] == ["send"]
    assert asked[0].agent == "writer" and asked[0].reasons == ("the plan asks for approval",)
    decided = [e for e in events if isinstance(e, ApprovalDecided)]
    assert [(e.task_id, e.verdict, e.note, e.by) for e in decided] == [("send", "approved", "looks right", "alice")]
    assert outcome.run.outputs["send"] == "did: Send the invoice"


async def test_a_rejected_task_fails_its_branch_only_and_nothing_replans_around_it() -> None:
    the_team = team(approver=lambda request: Decision.reject("not this month", by="bob"), store=False)
    outcome = await the_team.execute(GRAPH, goal="bill the client", dynamic=True)
    result = outcome.run
    assert result.status is RunStatus.FAILED
    assert result.statuses["send"].value == "failed" and result.statuses["report"].value == "skipped"
    assert result.outputs["summary"] == "did: Summarise the facts"
    assert isinstance(result.errors["send"], ApprovalRejected)
    assert "rejected by bob: not this month" in str(result.errors["send"])
    # The scripted model was never asked to reflect or replan.
    assert outcome.loop.replans == [] and outcome.loop.verdicts == []


async def test_an_edited_task_runs_with_the_new_instruction_and_the_graph_says_so() -> None:
    the_team = team(approver=lambda request: Decision.edit("Send the invoice by post", by="carol"), store=False)
    outcome = await the_team.execute(GRAPH, dynamic=False)
    assert outcome.run.outputs["send"] == "did: Send the invoice by post"
    assert outcome.run.graph["send"].instruction == "Send the invoice by post"


async def test_no_decision_in_time_rejects_the_task() -> None:
    async def never(request: ApprovalRequest) -> Decision:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    the_team = team(approver=never, store=False, approval=ApprovalPolicy(timeout=0.05))
    outcome = await the_team.execute(GRAPH, dynamic=False)
    assert "rejected by timeout: no decision within 0.05 s" in str(outcome.run.errors["send"])
    assert outcome.run.outputs["summary"] == "did: Summarise the facts"


async def test_an_approver_that_raises_fails_the_task_instead_of_leaving_it_waiting() -> None:
    def broken(request: ApprovalRequest) -> Decision:
        raise RuntimeError("approval service down")

    outcome = await team(approver=broken, store=False).execute(GRAPH, dynamic=False)
    assert "approval service down" in str(outcome.run.errors["send"])


async def test_a_task_nobody_can_approve_fails_with_a_clear_reason() -> None:
    outcome = await team(store=False).execute(GRAPH, dynamic=False)
    error = str(outcome.run.errors["send"])
    assert "needs approval (the plan asks for approval), but nothing can approve it here" in error


async def test_the_policy_applies_to_planned_goals_through_the_agents_tools() -> None:
    def brain(messages: Sequence[Message]) -> str | dict:
        if "planner of a team" in messages[0].content:
            return {
                "tasks": [
                    {"id": "note", "instruction": "Write the note", "capability": "writing", "depends_on": []},
                    {"id": "facts", "instruction": "Find facts", "capability": "research", "depends_on": []},
                ]
            }
        if "final answer of a team" in messages[0].content:
            return "done [note]"
        return echo(messages)

    asked: list[str] = []

    def approver(request: ApprovalRequest) -> Decision:
        asked.append(request.task.id)
        return Decision.approve()

    the_team = AutoTeam(
        model=ScriptedModel(brain, name="brain"),
        memory=False,
        store=False,
        approval=ApprovalPolicy(tools=("write_file",)),
        approver=approver,
    )
    result = await the_team.arun("write a note")
    assert result.run.status is RunStatus.SUCCEEDED
    assert asked == ["note"]  # the writer may write files; the researcher may not


# ---------------------------------------------------------------- the run store and `orquestra approve`


async def test_a_run_waits_for_the_store_and_a_store_decision_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events, record = recorder()
    with open_store(tmp_path) as store:

        async def decide_elsewhere() -> None:
            while not store.approvals(pending=True):
                await asyncio.sleep(0.01)
            store.decide(store.approvals(pending=True)[0].run_id, "send", Decision.edit("Send it twice", by="cli"))

        the_team = team(store=store)
        deciding = asyncio.create_task(decide_elsewhere())
        outcome = await the_team.execute(GRAPH, dynamic=False, subscribers=[record])
        await deciding
        assert outcome.run.outputs["send"] == "did: Send it twice"
        stored = store.get(outcome.run.run_id)
    kinds = [e.type for e in stored.events]
    assert "ApprovalRequested" in kinds and "ApprovalDecided" in kinds
    # The recorded graph says what ran: the edit reached the store as a patch.
    assert stored.run.graph is not None
    assert {t["id"]: t["instruction"] for t in stored.run.graph["tasks"]}["send"] == "Send it twice"
    # Nothing in the process could ask, so the log says how to answer.
    assert f"orquestra approve {stored.run.id} send" in caplog.text
    requested = next(e for e in events if isinstance(e, ApprovalRequested))
    assert requested.instruction == "Send the invoice"


@pytest.mark.slow
async def test_orquestra_approve_in_another_process_lets_the_waiting_run_go_on(tmp_path: Path) -> None:
    home = Path(os.environ["ORQUESTRA_HOME"])
    env = {**os.environ, "ORQUESTRA_HOME": str(home), "COLUMNS": "200"}
    the_team = team()
    execution = asyncio.create_task(the_team.execute(GRAPH, dynamic=False))
    with open_store(home) as store:
        while not store.approvals(pending=True):
            await asyncio.sleep(0.02)
        run_id = store.approvals(pending=True)[0].run_id
        assert store.get(run_id).tasks[0].status == "awaiting approval"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "orquestra", "approve", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    listed = await asyncio.to_thread(cli)
    assert listed.returncode == 0 and run_id in listed.stdout and "Send the invoice" in listed.stdout
    approved = await asyncio.to_thread(cli, run_id[:8], "send", "--note", "fine")
    assert approved.returncode == 0, approved.stderr
    assert f"task 'send' of run {run_id}: approved" in approved.stdout
    outcome = await asyncio.wait_for(execution, 30)
    assert outcome.run.status is RunStatus.SUCCEEDED
    again = await asyncio.to_thread(cli, run_id, "send", "--reject", "too late")
    assert again.returncode == 2
    assert again.stderr.strip().endswith(f"task 'send' of run {run_id} was already approved by cli (fine)")
    the_team.close()


@pytest.mark.slow
async def test_approve_mistakes_are_one_line_and_exit_2() -> None:
    assert_user_error(orquestra("approve", "abcdef123456", "send"), "no runs recorded yet")
    with open_store() as store:
        await record_run(store, make_graph({"send": []}), "abcdef123456")
    assert_user_error(orquestra("approve", "zzzzzz999999", "send"), "no recorded run with id 'zzzzzz999999'")
    assert_user_error(
        orquestra("approve", "abcdef", "send"), "task 'send' of run abcdef123456 has not asked for approval"
    )
    assert_user_error(
        orquestra("approve", "abcdef", "send", "--reject", "x", "--edit", "y"), "--reject and --edit exclude each other"
    )
    listed = orquestra("approve")
    assert listed.returncode == 0 and "no task is waiting for approval" in listed.stdout


@pytest.mark.slow
def test_orquestra_run_waits_for_orquestra_approve_and_shows_how(tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(
        "tasks:\n"
        "  - {id: publish, instruction: Publish the page, capability: writing, requires_approval: true}\n"
        "  - {id: facts, instruction: Gather facts, capability: research}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    run = subprocess.Popen(
        [sys.executable, "-m", "orquestra", "run", str(graph_file), "--model", "scripted", "--no-memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        home = Path(os.environ["ORQUESTRA_HOME"])
        for _ in range(600):
            if (home / "runs.sqlite3").exists():
                with open_store(home) as store:
                    waiting = store.approvals(pending=True)
                if waiting:
                    break
            time.sleep(0.05)
        assert [record.task_id for record in waiting] == ["publish"]
        approve = subprocess.run(
            [sys.executable, "-m", "orquestra", "approve", waiting[0].run_id, "publish", "--reject", "not yet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert approve.returncode == 0, approve.stderr
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 1, err  # the rejected task failed; the other branch ran to the end
    assert "Traceback" not in err
    assert "rejected by cli: not yet" in out and "1 succeeded" in out and "1 failed" in out


# ---------------------------------------------------------------- robustness


def test_a_decision_with_an_unknown_verdict_is_refused_not_taken_as_approval() -> None:
    with pytest.raises(ValueError, match="unknown verdict 'reject'"):
        Decision("reject")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="an edit needs a new instruction"):
        Decision.edit("  ")


async def test_a_blocking_approver_holds_up_neither_the_timeout_nor_other_branches() -> None:
    def slow(request: ApprovalRequest) -> Decision:
        time.sleep(1.0)  # a person at input(), say
        return Decision.approve(by="slow")

    the_team = team(approver=slow, store=False, approval=ApprovalPolicy(timeout=0.1))
    outcome = await the_team.execute(GRAPH, dynamic=False)
    assert "rejected by timeout" in str(outcome.run.errors["send"])
    assert outcome.run.outputs["summary"] == "did: Summarise the facts"


async def test_cancelling_a_run_closes_its_waiting_requests(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        executions = []
        the_team = team(store=store)
        running = asyncio.create_task(the_team.execute(GRAPH, dynamic=False, started=executions.append))
        while not store.approvals(pending=True):
            await asyncio.sleep(0.01)
        executions[0].cancel("interrupted by Ctrl-C")
        outcome = await running
        assert outcome.run.status is RunStatus.CANCELLED
        assert store.approvals(pending=True) == []
        (record,) = store.approvals(outcome.run.run_id)
        assert record.decision == Decision.reject("the run stopped waiting", by="run")


async def test_a_finished_run_closes_requests_left_open(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        await record_run(store, make_graph({"send": []}), "run000000001")
        store.request_approval("run000000001", GRAPH["send"], ["the plan asks for approval"])
        await record_run(store, make_graph({"send": []}), "run000000001")  # its RunFinished again
        assert store.decision("run000000001", "send") == Decision.reject("the run ended", by="run")


async def test_a_replan_may_not_remove_a_task_a_person_rejected() -> None:
    async def gate(task: Task) -> Task:
        if task.id == "send":
            raise ApprovalRejected("task 'send' was rejected by dana: no")
        return task

    async def run_task(task: Task, inputs: object) -> str:
        return task.id

    engine = Engine(run_task, gate=gate)
    refusals: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TaskFailed) and event.task_id == "send":
            try:
                execution.apply(GraphPatch(remove=("send",), add=(Task(id="send2", instruction="x", capability="w"),)))
            except PatchRefused as error:
                refusals.append(str(error))

    engine.subscribe(on_event)
    execution = engine.start(graph(Task(id="send", instruction="Send", capability="w")))
    result = await execution
    assert refusals and "send" in refusals[0]
    assert result.status is RunStatus.FAILED and "send2" not in result.graph.by_id
