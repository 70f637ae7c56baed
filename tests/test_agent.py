from __future__ import annotations

from collections.abc import Sequence

import pytest

from orquestra import Registry, Task
from orquestra.agent import AgentRunner
from orquestra.dispatch import Dispatcher
from orquestra.events import AgentFallback, Event, ToolCalled
from orquestra.exceptions import ContextLengthExceeded, ModelConfigError, ModelError, ModelUnavailable
from orquestra.models import Message, Model, ModelResponse, ScriptedModel, ToolCall
from orquestra.registry import AgentCard


def registry() -> Registry:
    builtin = Registry.load()
    agents = [
        AgentCard(
            name="mathy",
            description="Computes.",
            capabilities=("math",),
            tools=("calculator", "write_file"),
            model="primary",
            fallback_models=("backup",),
            fallbacks=("plain",),
        ),
        AgentCard(name="plain", description="Plain.", capabilities=("math", "writing"), model="plain-model"),
    ]
    return Registry(agents, builtin.tools.values())


def runner_with(models: dict[str, Model], tmp_path, events: list[Event] | None = None) -> AgentRunner:
    def model_for(spec: str) -> Model:
        if spec not in models:
            raise ModelConfigError(f"no model {spec}")
        return models[spec]

    return AgentRunner(
        dispatcher=Dispatcher(registry()),
        model_for=model_for,
        default_model="primary",
        workspace=tmp_path / "ws",
        goal="the big goal",
        emit=events.append if events is not None else None,
        run_id="run1",
    )


TASK = Task(id="sum", instruction="Add 17 and 25 and save it", capability="math", expected_output="a number")


class Failing(Model):
    def __init__(self, error: Exception) -> None:
        self.name = "failing"
        self.error = error
        self.calls = 0

    async def request(self, messages, *, tools=(), output_schema=None, tool_choice="auto") -> ModelResponse:
        self.calls += 1
        raise self.error


async def test_tool_loop_runs_tools_and_feeds_results_back(tmp_path):
    def answer(messages: Sequence[Message]) -> str | ModelResponse:
        last = messages[-1]
        if last.role == "user":
            calls = (
                ToolCall("c1", "calculator", {"expression": "17 + 25"}),
                ToolCall("c2", "write_file", {"path": "sum.txt", "content": "42"}),
            )
            return ModelResponse(text="", model="primary", tool_calls=calls)
        return f"The sum is {messages[-2].content}."

    events: list[Event] = []
    model = ScriptedModel(answer, name="primary")
    runner = runner_with({"primary": model}, tmp_path, events)
    output = await runner(TASK, {"facts": "17 and 25"})
    assert output == "The sum is 42."
    assert (tmp_path / "ws" / "sum.txt").read_text() == "42"
    second_call = model.calls[1]
    assert [m.role for m in second_call] == ["system", "user", "assistant", "tool", "tool"]
    assert second_call[3].tool_call_id == "c1" and second_call[3].content == "42"
    assert [e.tool for e in events if isinstance(e, ToolCalled)] == ["calculator", "write_file"]
    # the prompt carries the card, the goal, the task and its inputs
    system, user = model.calls[0][0].content, model.calls[0][1].content
    assert "You are mathy" in system and "calculator" not in system
    assert "Overall goal: the big goal" in user and "--- facts ---\n17 and 25" in user
    assert "Expected output: a number" in user
    assert runner.usage.requests == 2 and runner.task_usage["sum"].requests == 2


async def test_a_card_requiring_a_tool_call_requires_it_on_the_first_turn_only(tmp_path):
    card = AgentCard(
        name="counter", description="Counts.", capabilities=("math",), tools=("calculator",), tool_choice="required"
    )
    model = ScriptedModel(
        responses=[
            ModelResponse(text="", model="m", tool_calls=(ToolCall("c1", "calculator", {"expression": "7*12"}),)),
            "84",
        ],
        name="primary",
    )
    runner = AgentRunner(
        dispatcher=Dispatcher(Registry([card], Registry.load().tools.values())),
        model_for=lambda spec: model,
        default_model="primary",
        workspace=tmp_path / "ws",
    )
    assert await runner(TASK, {}) == "84"
    assert model.tool_choices == ["required", "auto"]


def counter_runner(model: Model, tmp_path, events: list[Event] | None = None) -> AgentRunner:
    card = AgentCard(
        name="counter", description="Counts.", capabilities=("math",), tools=("calculator",), tool_choice="required"
    )
    return AgentRunner(
        dispatcher=Dispatcher(Registry([card], Registry.load().tools.values())),
        model_for=lambda spec: model,
        default_model="primary",
        workspace=tmp_path / "ws",
        emit=events.append if events is not None else None,
    )


async def test_a_required_tool_call_that_a_server_did_not_enforce_is_asked_for_once(tmp_path):
    # A server that takes tool_choice="required" and answers in text anyway: the card's rule still holds.
    events: list[Event] = []
    model = ScriptedModel(
        responses=[
            "No preamble, no questions back.",
            '{"tool": "calculator", "arguments": {"expression": "7*12"}}',
            "84",
        ],
        name="primary",
    )
    assert await counter_runner(model, tmp_path, events)(TASK, {}) == "84"
    reminder = model.calls[1][-1]
    assert reminder.role == "user" and "this task needs one first" in reminder.content
    assert "- calculator:" in reminder.content
    assert [event.result for event in events if isinstance(event, ToolCalled)] == ["84"]
    assert model.tool_choices == ["required", "required", "auto"]


async def test_a_second_answer_without_the_required_tool_is_checked_as_an_answer(tmp_path):
    events: list[Event] = []
    model = ScriptedModel(responses=["I cannot.", "The price is missing from the task."], name="primary")
    assert await counter_runner(model, tmp_path, events)(TASK, {}) == "The price is missing from the task."
    assert len(model.calls) == 2 and not [event for event in events if isinstance(event, ToolCalled)]


async def test_tool_errors_go_back_to_the_model_as_results(tmp_path):
    def answer(messages: Sequence[Message]) -> str | ModelResponse:
        if messages[-1].role == "user":
            calls = (
                ToolCall("c1", "calculator", {"expression": "1/0"}),
                ToolCall("c2", "write_file", {"path": "../escape", "content": "x"}),
                ToolCall("c3", "teleport", {}),
                ToolCall("c4", "calculator", {"wrong": "arg"}),
            )
            return ModelResponse(text="", model="primary", tool_calls=calls)
        return "recovered"

    model = ScriptedModel(answer, name="primary")
    assert await runner_with({"primary": model}, tmp_path)(TASK, {}) == "recovered"
    results = [m.content for m in model.calls[1] if m.role == "tool"]
    assert results[0].startswith("error: cannot evaluate '1/0'")
    assert results[1] == "error: path '../escape' is outside the run's workspace"
    assert results[2].startswith("error: there is no tool named 'teleport'")
    assert results[3].startswith("error: bad arguments for 'calculator'")


async def test_endless_tool_calls_are_cut_off_with_a_final_request(tmp_path):
    def answer(messages: Sequence[Message]) -> str | ModelResponse:
        if "final answer now" in messages[-1].content:
            return "final: 3"
        expression = str(len(model.calls))  # a new call each time
        call = ToolCall("c", "calculator", {"expression": expression})
        return ModelResponse(text="", model="primary", tool_calls=(call,))

    model = ScriptedModel(answer, name="primary")
    runner = runner_with({"primary": model}, tmp_path)
    runner.max_tool_steps = 3
    assert await runner(TASK, {}) == "final: 3"
    assert len(model.calls) == 4


async def test_a_repeated_call_is_not_run_again_and_the_agent_is_asked_to_answer(tmp_path):
    events: list[Event] = []

    def answer(messages: Sequence[Message]) -> str | ModelResponse:
        if "final answer now" in messages[-1].content:
            return "final: 1"
        return ModelResponse(text="", model="primary", tool_calls=(ToolCall("c", "calculator", {"expression": "1"}),))

    model = ScriptedModel(answer, name="primary")
    assert await runner_with({"primary": model}, tmp_path, events)(TASK, {}) == "final: 1"
    assert len(model.calls) == 3  # the call, its repeat, then the request to answer without tools
    assert len([event for event in events if isinstance(event, ToolCalled)]) == 1
    repeat = next(m for m in model.calls[2] if m.role == "tool" and "same call before" in m.content)
    assert repeat.content.startswith("1\n")


async def test_fallback_model_then_fallback_agent(tmp_path):
    events: list[Event] = []
    primary = Failing(ModelUnavailable("overloaded"))
    backup = Failing(ModelError("refused"))
    plain = ScriptedModel(responses=["from plain"], name="plain-model")
    runner = runner_with({"primary": primary, "backup": backup, "plain-model": plain}, tmp_path, events)
    assert await runner(TASK, {}) == "from plain"
    fallbacks = [(e.agent, e.model) for e in events if isinstance(e, AgentFallback)]
    assert fallbacks == [("mathy", "primary"), ("mathy", "backup")]


async def test_when_everything_fails_the_error_lists_each_attempt(tmp_path):
    failing = {name: Failing(ModelError(f"{name} down")) for name in ("primary", "backup", "plain-model")}
    with pytest.raises(ModelError, match="every agent and model failed") as caught:
        await runner_with(failing, tmp_path)(TASK, {})
    assert "mathy on primary: primary down" in str(caught.value)
    assert "plain on plain-model: plain-model down" in str(caught.value)
    assert not isinstance(caught.value, ModelUnavailable)  # the engine must not retry it all again


async def test_config_errors_are_not_hidden_by_fallbacks(tmp_path):
    with pytest.raises(ModelConfigError, match="no model primary"):
        await runner_with({}, tmp_path)(TASK, {})


async def test_large_inputs_are_trimmed_with_a_note(tmp_path):
    model = ScriptedModel(responses=["ok"], name="primary")
    model.context_window = 2048
    huge = "start " + "x" * 50_000 + " end"
    await runner_with({"primary": model}, tmp_path)(TASK, {"big": huge, "small": "tiny"})
    user = model.calls[0][1].content
    assert "characters cut" in user and "shortened to fit the context window" in user
    assert "--- small ---\ntiny" in user and "start" in user and "end" in user
    assert len(user) < 2048 * 4


async def test_context_length_error_is_retried_once_with_less_input(tmp_path):
    class Picky(ScriptedModel):
        async def request(self, messages, *, tools=(), output_schema=None, tool_choice="auto"):
            if len(self.calls) == 0:
                self.calls.append(list(messages))
                raise ContextLengthExceeded("too long")
            return await super().request(messages, tools=tools, output_schema=output_schema)

    model = Picky(responses=["fits now"], name="primary")
    model.context_window = 4096
    big = "y" * 12_000
    assert await runner_with({"primary": model}, tmp_path)(TASK, {"big": big}) == "fits now"
    assert len(model.calls[1][1].content) < len(model.calls[0][1].content)
