from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from orquestra import RunStatus
from orquestra.config import load_settings
from orquestra.exceptions import ModelConfigError, UserError
from orquestra.memory_run_store import InMemoryRunStore
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.store import store_path
from orquestra.team import AutoTeam

PLAN = {
    "tasks": [
        {"id": "price", "instruction": "Find the price of one widget", "capability": "research", "depends_on": []},
        {"id": "count", "instruction": "Find how many widgets we need", "capability": "research", "depends_on": []},
        {
            "id": "total",
            "instruction": "Compute the total cost",
            "capability": "math",
            "depends_on": ["price", "count"],
        },
    ]
}


def team_brain(messages: Sequence[Message]) -> str | dict | ModelResponse:
    """One scripted model playing planner, agents and synthesiser, answering by what it is asked."""
    system, last = messages[0].content, messages[-1]
    if "planner of a team" in system:
        return PLAN
    if "final answer of a team" in system:
        return "Total cost is 84 [total], from [price] and [count]."
    if last.role == "tool":
        return f"The total is {last.content}."
    if "Your task (price)" in last.content:
        return "A widget costs 7."
    if "Your task (count)" in last.content:
        return "We need 12 widgets."
    if "Your task (total)" in last.content:
        assert "A widget costs 7." in last.content and "We need 12 widgets." in last.content
        return ModelResponse(text="", model="brain", tool_calls=(ToolCall("1", "calculator", {"expression": "7*12"}),))
    raise AssertionError(f"unexpected prompt: {last.content[:200]}")


@pytest.fixture
def team(tmp_path) -> AutoTeam:
    return AutoTeam(model=ScriptedModel(team_brain, name="brain"), memory=False)


async def test_plan_run_and_answer_a_goal_end_to_end(team):
    result = await team.arun("How much do our widgets cost in total?")
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.outputs == {
        "price": "A widget costs 7.",
        "count": "We need 12 widgets.",
        "total": "The total is 84.",
    }
    assert result.answer == "Total cost is 84 [total], from [price] and [count]."
    assert [t.id for t in result.graph.tasks] == ["price", "count", "total"]
    # plan (1) + price, count (1 each) + total (2: tool call, answer) + synthesis (1)
    assert result.usage.requests == 6
    assert result.task_usage["total"].requests == 2
    assert result.plan is not None and result.plan.repairs == []
    assert result.workspace is not None and result.workspace.name == result.run.run_id


async def test_a_team_records_its_run_in_any_run_store():
    store = InMemoryRunStore()
    team = AutoTeam(model=ScriptedModel(team_brain, name="brain"), memory=False, store=store)
    result = await team.arun("How much do our widgets cost in total?")
    team.close()  # closing the store it was given forgets nothing an in-memory store holds

    stored = store.get(result.run.run_id)
    assert (stored.run.goal, stored.run.status) == ("How much do our widgets cost in total?", "succeeded")
    assert stored.run.answer == result.answer and stored.run.usage is not None
    assert stored.run.usage["requests"] == 6
    assert {task.task_id: task.output for task in stored.tasks} == result.outputs
    types = [event.type for event in stored.events]
    # Planning first, then the execution, then the answer's events after RunFinished.
    assert types[0] == "PlanningStarted" and types.index("Planned") < types.index("RunStarted") < types.index(
        "RunFinished"
    )
    assert not store_path(team.settings.home).exists()  # nothing went to the SQLite store under the home


async def test_a_one_task_plan_needs_no_synthesis(tmp_path):
    def brain(messages):
        if "planner of a team" in messages[0].content:
            return {"tasks": [{"id": "only", "instruction": "Say hi", "capability": "writing", "depends_on": []}]}
        return "hi!"

    team = AutoTeam(model=ScriptedModel(brain, name="brain"), memory=False)
    result = await team.arun("greet")
    assert result.answer == "hi!" and result.usage.requests == 2


def test_unknown_models_fail_before_anything_runs():
    with pytest.raises(ModelConfigError, match="unknown model 'martian:big'"):
        AutoTeam(model="martian:big").model()
    with pytest.raises(ModelConfigError, match="name the model, e.g. 'openai:gpt-5-mini'"):
        AutoTeam(model="openai").model()


def test_settings_precedence_and_masked_keys(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: anthropic:claude-haiku-4-5\nopenai:\n  api_key: sk-from-file\n  base_url: http://127.0.0.1:9/v1\n"
    )
    monkeypatch.setenv("ORQUESTRA_CONFIG", str(config))
    settings = load_settings()
    assert settings.model == "anthropic:claude-haiku-4-5" and settings.model_source == "config file"
    assert settings.openai.api_key == "sk-from-file"
    assert "sk-from-file" not in repr(settings)
    monkeypatch.setenv("ORQUESTRA_MODEL", "scripted")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    settings = load_settings()
    assert settings.model == "scripted" and settings.model_source == "environment"
    assert settings.openai.api_key == "sk-from-env"
    flagged = settings.with_model("openai:gpt-5-mini", "local")
    assert flagged.model == "openai:gpt-5-mini" and flagged.model_source == "flag" and flagged.planning_model == "local"


def test_default_model_is_the_embedded_one():
    assert load_settings().model == "local"


def test_bad_config_file_names_the_field(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("modle: local\n")
    monkeypatch.setenv("ORQUESTRA_CONFIG", str(config))
    with pytest.raises(UserError, match=r"config.yaml: field 'modle': Extra inputs are not permitted"):
        load_settings()
    monkeypatch.setenv("ORQUESTRA_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(UserError, match="missing.yaml: config file not found"):
        load_settings()


def test_prices_from_the_registry_give_cost():
    team = AutoTeam(model="scripted")
    assert team.registry.prices["openai:gpt-5-mini"].cost(1_000_000, 1_000_000) == pytest.approx(2.25)


def test_plan_saved_by_the_cli_shape_round_trips(tmp_path):
    from orquestra.graphfile import dump_graph, load_graph
    from orquestra.planner import Plan, to_graph

    graph = to_graph(Plan.model_validate(PLAN))
    for name in ("plan.yaml", "plan.json"):
        dump_graph(graph, tmp_path / name)
        assert load_graph(tmp_path / name) == graph
    assert json.loads((tmp_path / "plan.json").read_text())["tasks"][2]["depends_on"] == ["price", "count"]
