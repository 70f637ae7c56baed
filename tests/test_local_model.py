"""The embedded model, for real: few, short generations (the whole file runs in well under a minute).

CI installs the weights and llama-cpp-python; without them these tests fail with the install command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from enum import StrEnum

import pytest
from pydantic import BaseModel, Field

from orquestra.exceptions import ContextLengthExceeded, ModelConfigError
from orquestra.models.base import Message, ModelResponse, ToolCall, ToolSpec
from orquestra.models.local import LocalModel, _chatml, _grammar, _parse_tool_answer, _tool_schema
from orquestra.models.progress import watching
from orquestra.weights import QWEN_05B

CALCULATOR = ToolSpec(
    "calculator",
    'Evaluate an arithmetic or math expression exactly, e.g. "(17 * 23) + sqrt(144)".',
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The expression, e.g. 2 * (3 + 4)."}},
        "required": ["expression"],
    },
)


class Kind(StrEnum):
    research = "research"
    coding = "coding"
    writing = "writing"


class Step(BaseModel):
    title: str = Field(description="What to do, in a few words")
    kind: Kind = Field(description="Which kind of work the step is")


class Plan(BaseModel):
    steps: list[Step] = Field(description="The steps that reach the goal", min_length=1, max_length=3)


@pytest.fixture(scope="module")
def model(weights_home):
    model = LocalModel(weights_home / "models" / QWEN_05B.filename, max_tokens=48)
    model.load()
    return model


# Without the model: the tool-call format and how messages reach the ChatML template.


def test_the_tool_schema_converts_to_a_grammar_naming_each_tool():
    grammar = _grammar(_tool_schema([CALCULATOR]))._grammar
    assert '"\\"calculator\\""' in grammar and "expression" in grammar and "answer" in grammar


def test_a_required_tool_call_leaves_no_way_to_answer_in_text():
    schema = _tool_schema([CALCULATOR], required=True)
    assert [option["properties"]["tool"] for option in schema["anyOf"]] == [{"const": "calculator"}]
    assert "answer" not in _grammar(schema)._grammar


def test_a_schema_llama_cannot_convert_is_logged_and_falls_back_to_json(caplog):
    with caplog.at_level(logging.WARNING, logger="orquestra.models.local"):
        grammar = _grammar({"type": "no-such-type"})
    assert "not convertible" in caplog.text and "root" in grammar._grammar


def test_tool_calls_and_results_become_chatml_text():
    call = ToolCall("c1", "calculator", {"expression": "17*23"})
    chat = _chatml(
        [Message("user", "go"), Message("assistant", "", (call,)), Message("tool", "391", tool_call_id="c1")]
    )
    assert chat[1] == {"role": "assistant", "content": '{"tool": "calculator", "arguments": {"expression": "17*23"}}'}
    assert chat[2] == {"role": "user", "content": "Result of calculator: 391"}


def test_without_llama_cpp_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    (tmp_path / "model.gguf").write_bytes(b"")
    with pytest.raises(ModelConfigError, match=r"pip install 'orquestra-agents\[local\]'"):
        LocalModel(tmp_path / "model.gguf").load()


def test_describe_says_what_runs():
    assert LocalModel(n_threads=1, n_ctx=2048).describe() == (
        "local (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, embedded, 1 thread, 2048 tokens of context)"
    )
    assert LocalModel(weights=QWEN_05B, n_threads=2).describe() == (
        "local:small (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, embedded, 2 threads, 4096 tokens of context)"
    )


def test_json_answers_are_parsed_from_the_tool_format():
    def parse(text: str) -> ModelResponse:
        return _parse_tool_answer(ModelResponse(text, "local"))

    assert parse(json.dumps({"answer": "391"})).text == "391"
    assert parse('{"tool": "calculator", "arguments": {"expression": "1"}}').tool_calls[0].arguments == {
        "expression": "1"
    }
    # Cut off at the token limit: a call cannot run, so nothing of it is passed on; an answer keeps its text.
    cut_call = parse('{"tool": "calculator", "arguments": {"expr')
    assert (cut_call.text, cut_call.tool_calls, cut_call.finish_reason) == ("", (), "length")
    assert parse('{"answer": "The cost of 12 widg').text == "The cost of 12 widg"
    assert parse("not json at all").text == "not json at all"


# With the real model.


@pytest.mark.slow
async def test_chat_answers_with_text_and_usage(model):
    response = await model.request([Message("user", "Say hello in five words.")])
    assert response.text.strip() and response.model == model.name == f"local:{model.path}"
    assert response.usage.requests == 1 and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.cost == 0.0


@pytest.mark.slow
async def test_structured_output_is_a_valid_object(model, caplog):
    with caplog.at_level(logging.WARNING, logger="orquestra.models.local"):
        plan, usage = await model.structured(
            [
                Message("system", "Plan the goal in at most 3 steps."),
                Message("user", "Build a CLI that turns CSV into JSON"),
            ],
            Plan,
        )
    assert "not convertible" not in caplog.text  # the schema ($defs, enum, array bounds) became a grammar
    assert isinstance(plan, Plan) and 1 <= len(plan.steps) <= 3 and all(step.title for step in plan.steps)
    assert usage.requests >= 1


@pytest.mark.slow
async def test_a_watched_call_reports_its_text_as_it_grows(model):
    seen: list[str] = []
    with watching(seen.append):
        response = await model.request(
            [Message("user", "Plan: build a CLI that turns CSV into JSON")],
            output_schema=Plan.model_json_schema(),
        )
    await asyncio.sleep(0)  # the last report is handed to the event loop from the model's thread
    assert len(seen) >= 3, seen
    assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:], strict=False))
    assert response.text.startswith(seen[-1].strip()[:20]) and response.usage.output_tokens >= len(seen) - 1


@pytest.mark.slow
async def test_a_tool_is_called_and_its_result_used(model):
    question = [Message("user", "Use the calculator to compute 17*23")]
    response = await model.request(question, tools=[CALCULATOR])
    assert response.finish_reason == "tool_calls" and response.text == ""
    (call,) = response.tool_calls
    assert call.name == "calculator" and call.id
    assert "17" in call.arguments["expression"] and "23" in call.arguments["expression"]
    result = Message("tool", "391", tool_call_id=call.id)
    answer = await model.request([*question, Message("assistant", "", (call,)), result], tools=[CALCULATOR])
    assert answer.tool_calls == () and "391" in answer.text


@pytest.mark.slow
async def test_a_required_tool_call_is_made_even_when_the_model_would_guess(model):
    question = [Message("user", "What is 12 times 7? Answer with the number.")]
    response = await model.request(question, tools=[CALCULATOR], tool_choice="required")
    (call,) = response.tool_calls
    assert call.name == "calculator" and "12" in call.arguments["expression"] and "7" in call.arguments["expression"]


@pytest.mark.slow
async def test_stream_yields_pieces_of_the_answer(model):
    pieces = [piece async for piece in model.stream([Message("user", "Count from 1 to 5.")])]
    assert len(pieces) > 1 and "".join(pieces).strip()
    # Leaving early stops generation at the next token, and the model takes the next request at once.
    async with contextlib.aclosing(model.stream([Message("user", "Write a long poem about the sea.")])) as stream:
        assert await anext(stream)
    assert (await model.request([Message("user", "Say OK.")])).text


@pytest.mark.slow
async def test_a_prompt_longer_than_the_context_is_refused(model):
    too_long = [Message("user", "hello " * (model.context_window + 100))]
    with pytest.raises(ContextLengthExceeded, match="exceed context window"):
        await model.request(too_long)
    with pytest.raises(ContextLengthExceeded):
        [piece async for piece in model.stream(too_long)]
    assert (await model.request([Message("user", "Say OK.")])).text  # still usable afterwards


@pytest.mark.slow
async def test_concurrent_requests_queue_on_one_loaded_model(model, weights_home, tmp_path):
    # The embedded model by name (weights found under ORQUESTRA_HOME) shares the one loaded from its path.
    (tmp_path / "home" / "models").mkdir(parents=True)
    for name in (QWEN_05B.filename, QWEN_05B.filename + ".sha256"):
        (tmp_path / "home" / "models" / name).symlink_to(weights_home / "models" / name)
    default = LocalModel(weights=QWEN_05B, n_threads=model.n_threads)
    assert default.load() is model.load()
    assert default.describe().startswith("local:small (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, embedded, ")
    questions = [[Message("user", f"What is {n} + {n}? Answer with the number only.")] for n in (2, 3)]
    answers = await asyncio.gather(*(default.request(question) for question in questions))
    assert all(answer.text.strip() for answer in answers)
