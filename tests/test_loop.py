"""The dynamic loop with scripted models: replans, fallbacks, early finish, stalls and budgets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from orquestra import Registry, RunStatus
from orquestra.budget import Budget
from orquestra.engine import TaskStatus
from orquestra.events import Event, Reflected, Replanned
from orquestra.exceptions import ModelError, UserError
from orquestra.models import Message, Model, ModelResponse, ScriptedModel
from orquestra.reflect import missing_information
from orquestra.registry import AgentCard
from orquestra.team import AutoTeam

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts.", capabilities=("research",), fallbacks=("backup",)),
        AgentCard(name="backup", description="Backup researcher.", capabilities=("research",), model="backup", cost=5),
        AgentCard(name="writer", description="Writes.", capabilities=("writing",)),
    ]
)


def task(task_id: str, capability: str = "research", depends_on: Sequence[str] = (), instruction: str = "") -> dict:
    return {
        "id": task_id,
        "instruction": instruction or f"do {task_id}",
        "capability": capability,
        "depends_on": list(depends_on),
    }


def brain(
    plan: dict,
    agents: dict[str, str | Callable[[], str]],
    *,
    patch: dict | Callable[[], dict] | None = None,
    judge: Callable[[str], dict] | None = None,
) -> Callable[[Sequence[Message]], Any]:
    """A scripted model playing every role, by what each prompt asks for."""

    def answer(messages: Sequence[Message]) -> Any:
        system, last = messages[0].content, messages[-1].content
        if "planner of a team" in system:
            return plan
        if "revise the plan" in system:
            assert patch is not None, "unexpected replan"
            return patch() if callable(patch) else patch
        if "judge the progress" in system:
            assert judge is not None, "unexpected reflection"
            return judge(last)
        if "final answer of a team" in system:
            return "ANSWER from " + ", ".join(sorted(set(_cited(last))))
        for task_id, reply in agents.items():
            if f"Your task ({task_id})" in last:
                return reply() if callable(reply) else reply
        raise AssertionError(f"unexpected prompt: {last[:300]}")

    return answer


def _cited(prompt: str) -> list[str]:
    return re.findall(r"^Result of task (\S+):$", prompt, flags=re.M)


def make_team(answer: Callable[[Sequence[Message]], Any], **options: Any) -> tuple[AutoTeam, ScriptedModel]:
    model = ScriptedModel(answer, name="brain")
    options.setdefault("models", {"backup": ScriptedModel(name="backup")})
    options.setdefault("memory", False)
    team = AutoTeam(registry=REGISTRY, model=model, **options)
    return team, model


async def run(team: AutoTeam, events: list[Event] | None = None):
    return await team.arun("Write a pricing note", subscribers=[events.append] if events is not None else [])


async def test_missing_information_triggers_a_replan_that_adds_an_alternative():
    plan = {"tasks": [task("price"), task("note", "writing", ["price"])]}
    patch = {
        "add": [task("ask_vendor", instruction="Ask the vendor for the price")],
        "remove": [],
        "rewire": [{"task_id": "note", "depends_on": ["price", "ask_vendor"]}],
    }
    agents = {"price": "The price is missing from the catalogue.", "ask_vendor": "The vendor says 42.", "note": "42!"}
    team, model = make_team(brain(plan, agents, patch=patch))
    events: list[Event] = []
    result = await run(team, events)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["note"] == "42!"
    note_prompt = next(m[-1].content for m in model.calls if "Your task (note)" in m[-1].content)
    assert "The vendor says 42." in note_prompt  # the new task's result reached the dependent
    assert len(result.replans) == 1
    assert "reports missing information" in result.replans[0].reason
    assert "+ ask_vendor (research)" in result.replans[0].diff
    assert "~ note: needs [price] -> [price, ask_vendor]" in result.replans[0].diff
    assert [len(g) for g in result.loop.graphs] == [2, 3]  # every version of the graph is kept
    assert any(isinstance(e, Replanned) for e in events) and any(isinstance(e, Reflected) for e in events)


class Failing(Model):
    def __init__(self) -> None:
        self.name = "backup"
        self.calls = 0

    async def request(self, messages, *, tools=(), output_schema=None, tool_choice="auto") -> ModelResponse:
        self.calls += 1
        raise ModelError("backup is down too")


async def test_a_failed_task_tries_its_fallback_then_a_replan_replaces_it():
    plan = {"tasks": [task("fetch"), task("note", "writing", ["fetch"])]}
    patch = {
        "add": [task("fetch_cached", instruction="Use the cached copy")],
        "remove": ["fetch"],
        "rewire": [{"task_id": "note", "depends_on": ["fetch_cached"]}],
    }

    def fetch() -> str:
        raise ModelError("the source refused")

    agents = {"fetch": fetch, "fetch_cached": "cached data", "note": "note from cache"}
    backup = Failing()
    team, _ = make_team(brain(plan, agents, patch=patch), retries=0, models={"backup": backup})
    result = await run(team)
    assert backup.calls == 1  # the fallback agent was tried before the replan
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == {"fetch_cached": "cached data", "note": "note from cache"}
    assert "every agent and model failed" in str(result.run.superseded["fetch"])
    assert "task 'fetch' failed" in result.replans[0].reason


async def test_goal_met_early_cancels_pending_tasks():
    plan = {"tasks": [task("answer"), task("polish", "writing", ["answer"]), task("extra", "writing", ["polish"])]}
    judge = lambda prompt: {"decision": "done", "reason": "the answer is already complete"}  # noqa: E731
    agents = {"answer": "42", "polish": "unused", "extra": "unused"}
    team, model = make_team(brain(plan, agents, judge=judge), reflection="every-task")
    result = await run(team)
    assert result.status is RunStatus.SUCCEEDED
    assert "the goal is met: the answer is already complete" in result.run.reason
    assert result.run.statuses["polish"] is TaskStatus.CANCELLED
    assert result.run.statuses["extra"] is TaskStatus.CANCELLED
    assert not any("Your task (polish)" in m[-1].content for m in model.calls)
    assert result.answer == "ANSWER from answer"  # synthesis drew on what was done


async def test_the_same_patch_again_is_a_stall():
    plan = {"tasks": [task("a1"), task("a2"), task("c", "writing", ["a1", "a2"])]}
    same = {"add": [], "remove": [], "rewire": [{"task_id": "c", "depends_on": ["a2", "a1"]}]}
    agents = {"a1": "The data is missing.", "a2": "The numbers are missing.", "c": "c done"}
    team, _ = make_team(brain(plan, agents, patch=same), max_replans=5)
    result = await run(team)
    assert result.status is RunStatus.GAVE_UP
    assert result.loop.ended_by == "stalled: the planner proposed the same change again"
    assert len(result.replans) == 1
    assert result.run.statuses["c"] is TaskStatus.CANCELLED


async def test_replans_are_bounded():
    plan = {"tasks": [task("a"), task("b", "writing", ["a"])]}
    numbers = iter(range(100))

    def patch() -> dict:
        n = next(numbers)
        return {"add": [task(f"retry{n}", instruction="Data is missing again")], "remove": [], "rewire": []}

    agents = {"a": "Information is missing.", "b": "b done", **{f"retry{n}": "Still missing." for n in range(10)}}
    team, _ = make_team(brain(plan, agents, patch=patch), max_replans=2)
    result = await run(team)
    assert len(result.replans) == 2
    assert result.loop.ended_by.startswith("the replan limit (2) is reached")
    assert result.status is RunStatus.GAVE_UP


async def test_a_budget_reached_mid_run_stops_gracefully_with_a_partial_answer():
    plan = {"tasks": [task("one"), task("two", depends_on=["one"]), task("three", "writing", ["two"])]}
    long_answer = "word " * 400
    agents = {"one": long_answer, "two": long_answer, "three": "never"}
    team, model = make_team(brain(plan, agents), budget=Budget(max_tokens=1200))
    result = await run(team)
    assert result.status is RunStatus.OUT_OF_BUDGET
    assert "the tokens budget is nearly spent" in result.run.reason
    assert result.run.statuses["three"] is TaskStatus.CANCELLED
    assert "one" in result.outputs
    assert result.answer  # a partial answer from what was done
    # never exceeded by more than the calls already in flight
    assert not any("Your task (three)" in m[-1].content for m in model.calls)


def test_missing_information_detection():
    assert missing_information("Revenue: 10. The 2023 figure is missing from the report.") == (
        "The 2023 figure is missing from the report."
    )
    assert missing_information("I could not find the price.") == "I could not find the price."
    assert missing_information("All figures are present.") is None


@pytest.mark.parametrize("mode", ["failure", "wave", "every-task"])
async def test_reflection_never_doubles_model_calls(mode):
    plan = {"tasks": [task("a"), task("b"), task("c", "writing", ["a", "b"]), task("d", "writing", ["c"])]}
    judge = lambda prompt: {"decision": "continue", "reason": "fine"}  # noqa: E731
    agents = {"a": "A", "b": "B", "c": "C", "d": "D"}
    team, model = make_team(brain(plan, agents, judge=judge), reflection=mode)
    result = await run(team)
    assert result.status is RunStatus.SUCCEEDED
    judged = sum(1 for m in model.calls if "judge the progress" in m[0].content)
    work = len(model.calls) - judged
    assert judged < work
    if mode == "failure":
        assert judged == 0
    print(json.dumps({"mode": mode, "calls": len(model.calls), "reflections": judged}))


async def test_no_task_finishing_across_replans_is_a_stall():
    # Three independent tasks all report missing data at once: the replans come back to back, with no
    # task finishing in between, and each patch is new, so only the progress rule can stop them.
    plan = {"tasks": [task("a1"), task("a2"), task("a3"), task("c", "writing", ["a1", "a2", "a3"])]}
    numbers = iter(range(100))

    def patch() -> dict:
        return {"add": [task(f"extra{next(numbers)}")], "remove": [], "rewire": []}

    agents = {"a1": "Data is missing.", "a2": "Data is missing.", "a3": "Data is missing.", "c": "c"}
    agents |= {f"extra{n}": "found it" for n in range(10)}
    team, _ = make_team(brain(plan, agents, patch=patch), max_replans=10)
    result = await run(team)
    assert result.loop.ended_by == "stalled: no task finished across 2 replans"
    assert len(result.replans) == 2


async def test_a_task_added_again_after_its_removal_is_a_stall():
    plan = {"tasks": [task("a1"), task("a2"), task("spare", depends_on=["a1"]), task("c", "writing", ["a2"])]}
    patches = iter(
        [
            {"add": [], "remove": ["spare"], "rewire": []},
            {"add": [task("spare")], "remove": [], "rewire": []},
        ]
    )
    agents = {"a1": "Data is missing.", "a2": "The numbers are missing.", "c": "c", "spare": "s"}
    team, _ = make_team(brain(plan, agents, patch=lambda: next(patches)), max_replans=10)
    result = await run(team)
    assert result.loop.ended_by == "stalled: task 'spare' was added again after it had been removed"


def test_budget_defaults_come_from_the_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("budget: {max_tokens: 5000, max_seconds: 60}\n")
    monkeypatch.setenv("ORQUESTRA_CONFIG", str(config))
    team = AutoTeam(model="scripted", memory=False)
    assert team.budget == Budget(max_tokens=5000, max_seconds=60)
    assert AutoTeam(model="scripted", memory=False, budget=Budget(max_cost=1.0)).budget.max_tokens is None
    config.write_text("budget: {max_tokens: -5}\n")
    with pytest.raises(UserError, match=r"field 'budget.max_tokens': Input should be greater than 0"):
        AutoTeam(model="scripted", memory=False)
