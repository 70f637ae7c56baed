from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from orquestra.exceptions import InvalidOutput, ScriptExhausted, UserError
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall, infer_model


class Verdict(BaseModel):
    ok: bool
    note: str


USER = [Message("system", "be brief"), Message("user", "hello there\nsecond line")]


async def test_recorded_responses_in_order_then_exhausted():
    model = ScriptedModel(responses=["one", "two"])
    assert (await model.request(USER)).text == "one"
    assert (await model.request(USER)).text == "two"
    with pytest.raises(ScriptExhausted, match="no answers left"):
        await model.request(USER)
    assert len(model.calls) == 3


async def test_function_responder_sees_the_messages_and_usage_is_counted():
    model = ScriptedModel(lambda messages: messages[-1].content.upper())
    response = await model.request(USER)
    assert response.text == "HELLO THERE\nSECOND LINE"
    assert response.usage.requests == 1
    assert response.usage.input_tokens == 6  # words in the messages
    assert response.usage.output_tokens == 4


async def test_structured_output_is_validated():
    model = ScriptedModel(responses=[Verdict(ok=True, note="fine"), {"ok": "maybe"}, {"ok": True, "note": "fixed"}])
    verdict, usage = await model.structured(USER, Verdict)
    assert verdict == Verdict(ok=True, note="fine") and usage.requests == 1
    # The second answer is invalid: instructor sends the validation error back and the third one passes.
    verdict, usage = await model.structured(USER, Verdict, max_retries=1)
    assert verdict.note == "fixed" and usage.requests == 2
    assert "ok" in model.calls[-1][-1].content  # the re-ask names the failing field
    with pytest.raises(InvalidOutput, match="did not write a valid verdict") as caught:
        await ScriptedModel(responses=[{"ok": "maybe"}] * 3).structured(USER, Verdict, max_retries=2)
    assert caught.value.raw == '{"ok": "maybe"}' and caught.value.usage.requests == 3


async def test_full_responses_carry_tool_calls():
    call = ToolCall(id="1", name="calculator", arguments={"expression": "1+1"})
    model = ScriptedModel(responses=[ModelResponse(text="", model="scripted", tool_calls=(call,))])
    assert (await model.request(USER)).tool_calls == (call,)


async def test_echo_default_and_latency():
    model = infer_model("scripted:0.05")
    start = time.perf_counter()
    response, other = await asyncio.gather(model.request(USER), model.request(USER))
    assert response.text == "[scripted:0.05] hello there"
    assert time.perf_counter() - start < 1.0  # the two calls overlapped instead of queueing


async def test_stream_falls_back_to_the_whole_answer():
    model = ScriptedModel(responses=["streamed"])
    assert [piece async for piece in model.stream(USER)] == ["streamed"]


def test_unknown_model_strings_are_user_errors():
    with pytest.raises(UserError, match="unknown model 'nope:thing'"):
        infer_model("nope:thing")
    with pytest.raises(UserError, match="takes a delay in seconds"):
        infer_model("scripted:fast")
