"""Anthropic's Claude models through the official SDK (``anthropic:<model>``, key from `ANTHROPIC_API_KEY`).

The Messages API differs from OpenAI's chat format in three ways this adapter bridges: the system prompt is
a parameter, not a message; tool calls and their results are content blocks (`tool_use`, `tool_result`);
and the results of one turn's tool calls travel together in a single user message. The SDK never retries
(`max_retries=0`): `RetryingModel` does, honouring Retry-After; a body that cannot be read is a
`MalformedResponse`, retried too. SDK errors become Orquestra's (redacted) before anything sees them, instructor
included, and are never chained to them.

JSON answers (`output_schema`) come from a forced tool whose input schema is the output schema: Claude fills
tool inputs to match their schema on every model, so there is no prose or code fence around the JSON to strip,
which a schema in the system prompt would not guarantee. `structured` uses instructor's tool mode the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import anthropic
import instructor
from anthropic.types import (
    AssistantMessageParam,
    MessageParam,
    TextBlock,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
    ToolUseBlockParam,
    UserMessageParam,
)
from anthropic.types import Message as AnthropicMessage

from orquestra.exceptions import MalformedResponse, ModelConfigError, ModelUnavailable, OrquestraError
from orquestra.models._http import shared_ssl_context
from orquestra.models._sdk import SDKErrors, SDKModel
from orquestra.models.base import (
    Message,
    ModelResponse,
    OutputT,
    Price,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

OUTPUT_TOOL = "output"
"""The tool Claude is made to call when a request asks for JSON: its input is the answer."""

Block = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TRANSIENT_STREAM_ERRORS = ("overloaded_error", "api_error", "rate_limit_error")


class AnthropicModel(SDKModel[AnthropicMessage]):
    """A Claude model behind the Anthropic Messages API (``anthropic:<model>``).

    Args:
        model_name: the provider's model id, e.g. ``"claude-sonnet-4-5"``.
        api_key: defaults to `ANTHROPIC_API_KEY`.
        base_url: defaults to `ANTHROPIC_BASE_URL`, else the Anthropic API.
        price: US dollars per million tokens, for the cost in `Usage`.
        timeout: seconds before a request counts as failed (`ModelUnavailable`).
        max_tokens: the most tokens one answer may have (the API requires a limit).
        context_window: tokens the model takes in; 200k, every current Claude model's window, by default.

    """

    provider = "anthropic"
    key_variable = "ANTHROPIC_API_KEY"
    base_url_variable = "ANTHROPIC_BASE_URL"
    api_host = "api.anthropic.com"
    api_title = "the Anthropic API"
    sdk_errors = SDKErrors(
        base=anthropic.AnthropicError,
        timeout=anthropic.APITimeoutError,
        connection=anthropic.APIConnectionError,
        status=anthropic.APIStatusError,
        unreadable=anthropic.APIResponseValidationError,
    )
    max_tokens: int

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        price: Price | None = None,
        timeout: float = 120.0,
        max_tokens: int = 4096,
        context_window: int | None = None,
    ) -> None:
        super().__init__(model_name, api_key=api_key, base_url=base_url, price=price, timeout=timeout)
        self.max_tokens = max_tokens
        self.context_window = context_window or 200_000

    def _usable_key(self, key: str | None) -> str:
        if not key:
            raise ModelConfigError(
                f"ANTHROPIC_API_KEY is not set: export it (or pass api_key=...) to use '{self.name}'"
            )
        return key

    def _client(self) -> anthropic.AsyncAnthropic:
        # One client per call, closed by the caller's `async with` (see `SDKModel`); the SSL context is shared.
        return anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=shared_ssl_context()),
        )

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Send `messages`; with `tools` the answer may be tool calls, with `output_schema` it is JSON."""
        system, conversation = _conversation(messages)
        tool_params = [_tool(spec.name, spec.description, spec.parameters) for spec in tools]
        tool_choice_param: ToolChoiceParam | anthropic.Omit = anthropic.omit
        if output_schema is not None:
            tool_params.append(_tool(OUTPUT_TOOL, "Give your answer as this tool's input.", output_schema))
            # With tools of its own the model may still call those; either way it must call a tool.
            tool_choice_param = {"type": "any"} if tools else {"type": "tool", "name": OUTPUT_TOOL}
        elif tools and tool_choice == "required":
            tool_choice_param = {"type": "any"}
        async with self._client() as client:
            with self._translated():
                message = await client.messages.create(
                    model=self.model_name,
                    max_tokens=self.max_tokens,
                    system=system or anthropic.omit,
                    messages=conversation,
                    tools=tool_params or anthropic.omit,
                    tool_choice=tool_choice_param,
                )
        return self._response(message, json_answer=output_schema is not None)

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the answer text as the server sends it."""
        system, conversation = _conversation(messages)
        async with self._client() as client:
            with self._translated():
                async with client.messages.stream(
                    model=self.model_name,
                    max_tokens=self.max_tokens,
                    system=system or anthropic.omit,
                    messages=conversation,
                ) as events:
                    async for text in events.text_stream:
                        yield text

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """An `output_type` object through instructor's Anthropic tool mode, with the usage of every attempt."""
        system, conversation = _conversation(messages)
        options: dict[str, Any] = {"system": system} if system else {}
        async with self._client() as client:
            # Mode.TOOLS: instructor 1.17 picks the provider from the client and deprecates ANTHROPIC_TOOLS.
            return await self._instructed(
                output_type,
                client.messages.create,
                mode=instructor.Mode.TOOLS,
                provider=instructor.Provider.ANTHROPIC,
                max_retries=max_retries,  # instructor >= 1.17: retries after the first attempt
                cut_off=f"at max_tokens={self.max_tokens}",
                # instructor types `messages` as OpenAI's; for Anthropic it passes them on as they are.
                messages=conversation,
                model=self.model_name,
                max_tokens=self.max_tokens,
                **options,
            )

    def _readable(self, message: object) -> AnthropicMessage:
        if not isinstance(message, AnthropicMessage):  # a body that is not JSON comes back as a str
            raise MalformedResponse(f"{self.name}: the server did not answer with a message: {message!r:.200}")
        if not isinstance(getattr(message, "content", None), list):
            raise MalformedResponse(f"{self.name}: malformed message from the server (no content)")
        return message

    def _response(self, message: object, *, json_answer: bool) -> ModelResponse:
        message = self._readable(message)
        try:
            texts: list[str] = []
            calls: list[ToolCall] = []
            for block in message.content:
                if isinstance(block, TextBlock):
                    texts.append(block.text)
                elif isinstance(block, ToolUseBlock) and json_answer and block.name == OUTPUT_TOOL:
                    return ModelResponse(json.dumps(block.input), self.name, usage=self._usage(message))
                elif isinstance(block, ToolUseBlock):
                    calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
            reason = message.stop_reason or "end_turn"
            return ModelResponse(
                text="".join(texts),
                model=self.name,
                tool_calls=tuple(calls),
                usage=self._usage(message),
                finish_reason=_FINISH_REASONS.get(reason, reason),
            )
        except (AttributeError, TypeError, ValueError) as error:
            # The SDK does not validate bodies: a JSON body of the wrong shape fails here, on first use.
            raise MalformedResponse(f"{self.name}: malformed message from the server ({error})") from None

    def _usage(self, message: AnthropicMessage) -> Usage:
        usage = message.usage
        # Anthropic counts cached prompt tokens apart; they are prompt tokens all the same.
        prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
        return self.usage(prompt, usage.output_tokens)

    def _raw_text(self, message: AnthropicMessage) -> str:
        inputs = [json.dumps(block.input) for block in message.content if isinstance(block, ToolUseBlock)]
        texts = [block.text for block in message.content if isinstance(block, TextBlock)]
        return inputs[0] if inputs else "".join(texts)

    def _error(self, error: Exception) -> OrquestraError:
        if (
            isinstance(error, anthropic.APIStatusError)
            and error.status_code < 400
            and error.type in _TRANSIENT_STREAM_ERRORS
        ):
            # An `error` event in the middle of a stream: the status was 200, the event's type says what broke.
            return ModelUnavailable(f"{self.name}: {error.type} during the answer: {error.api_message}")
        return super()._error(error)


def _conversation(messages: Sequence[Message]) -> tuple[str, list[MessageParam]]:
    """The system prompt, and the other messages as Anthropic turns.

    Consecutive messages of one side become one turn: the `tool_result` blocks of a turn's tool calls (and any
    user text after them) travel in a single user message, as the API requires.
    """
    system = "\n\n".join(message.content for message in messages if message.role == "system" and message.content)
    turns: list[tuple[Literal["user", "assistant"], list[Block]]] = []
    for message in messages:
        if message.role == "system":
            continue
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(_blocks(message))
        else:
            turns.append((role, _blocks(message)))
    return system, [
        UserMessageParam(role="user", content=blocks)
        if role == "user"
        else AssistantMessageParam(role="assistant", content=blocks)
        for role, blocks in turns
    ]


def _blocks(message: Message) -> list[Block]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}]
    blocks: list[Block] = []
    if message.content or not message.tool_calls:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    return blocks


def _tool(name: str, description: str, schema: dict[str, Any]) -> ToolParam:
    return {"name": name, "description": description, "input_schema": schema}
