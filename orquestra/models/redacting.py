"""A wrapper that keeps configured secrets out of a model's answers (see `orquestra.redaction`).

A provider, or a proxy in front of it, may echo the request's key in its answer; an answer goes on into task
outputs, events, the run store, memory and the terminal. The team wraps every model in `RedactedModel`, so
that no answer it receives holds a secret, whichever provider wrote it. Errors need no wrapper: every
Orquestra error redacts its own message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from orquestra.models.base import Message, ModelResponse, OutputT, ToolCall, ToolChoice, ToolSpec, Usage, WrapperModel
from orquestra.redaction import contains_secret, redact


class RedactedModel(WrapperModel):
    """The wrapped model, with every secret in its answers (text, tool arguments, structured fields) redacted."""

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """The wrapped model's answer, redacted."""
        response = await self.wrapped.request(
            messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice
        )
        calls = tuple(_redacted_call(call) for call in response.tool_calls)
        if not contains_secret(response.text) and calls == response.tool_calls:
            return response
        return replace(response, text=redact(response.text), tool_calls=calls)

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """The wrapped model's validated answer, with secrets redacted from its fields (and validated again)."""
        result, usage = await self.wrapped.structured(messages, output_type, max_retries=max_retries)
        dumped = result.model_dump_json()
        if not contains_secret(dumped):
            return result, usage
        return output_type.model_validate_json(redact(dumped)), usage

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The wrapped model's answer in pieces, each redacted (a secret cut across two pieces is not caught)."""
        async for piece in self.wrapped.stream(messages):
            yield redact(piece)


def _redacted_call(call: ToolCall) -> ToolCall:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    if not contains_secret(arguments):
        return call
    return replace(call, arguments=json.loads(redact(arguments)))
