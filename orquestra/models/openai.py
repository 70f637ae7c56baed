"""OpenAI, and any OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp), through the official SDK.

``openai:<model>`` with `OPENAI_API_KEY`; point `OPENAI_BASE_URL` (or `base_url`) at a compatible server, which
needs no key. The SDK never retries (`max_retries=0`): `RetryingModel` retries every provider the same way,
honouring the Retry-After that `ModelUnavailable.retry_after` carries. A body that cannot be read (not JSON,
or not a chat completion) is a `MalformedResponse`, retried like the other transient failures. SDK errors
become Orquestra's (redacted) before anything sees them, instructor included, and are never chained to them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import instructor
import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema

from orquestra.exceptions import InvalidOutput, MalformedResponse, ModelConfigError, ModelError
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
    to_openai_dict,
)

NO_KEY = "not-needed"
"""Sent as the key to a compatible server when none is set: the SDK insists on one, local servers ignore it."""

_FINISH_REASONS = {"function_call": "tool_calls"}
_BIG_CONTEXT_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")


class OpenAIModel(SDKModel[ChatCompletion]):
    """A chat model behind the OpenAI chat completions API (``openai:<model>``).

    Args:
        model_name: the provider's model id, e.g. ``"gpt-5-mini"``, or ``"llama3.2"`` on Ollama.
        api_key: defaults to `OPENAI_API_KEY`; not needed when `base_url` points at a local server.
        base_url: defaults to `OPENAI_BASE_URL`, else the OpenAI API.
        price: US dollars per million tokens, for the cost in `Usage`.
        timeout: seconds before a request counts as failed (`ModelUnavailable`).
        context_window: tokens the model takes in; 128k for OpenAI's current models, else the base default.

    """

    provider = "openai"
    key_variable = "OPENAI_API_KEY"
    base_url_variable = "OPENAI_BASE_URL"
    api_host = "api.openai.com"
    api_title = "the OpenAI API"
    sdk_errors = SDKErrors(
        base=openai.OpenAIError,
        timeout=openai.APITimeoutError,
        connection=openai.APIConnectionError,
        status=openai.APIStatusError,
        unreadable=openai.APIResponseValidationError,
    )

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        price: Price | None = None,
        timeout: float = 120.0,
        context_window: int | None = None,
    ) -> None:
        super().__init__(model_name, api_key=api_key, base_url=base_url, price=price, timeout=timeout)
        if context_window is not None:
            self.context_window = context_window
        elif model_name.startswith(_BIG_CONTEXT_PREFIXES):
            self.context_window = 128_000

    def _usable_key(self, key: str | None) -> str:
        if not key and not self.base_url:
            raise ModelConfigError(
                f"OPENAI_API_KEY is not set: export it (or pass api_key=...) to use '{self.name}', or set "
                "OPENAI_BASE_URL to an OpenAI-compatible server (Ollama, vLLM, LM Studio) that needs no key"
            )
        return key or NO_KEY

    def _client(self) -> openai.AsyncOpenAI:
        # One client per call, closed by the caller's `async with` (see `SDKModel`); the SSL context, the
        # costly part, is shared.
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=shared_ssl_context()),
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
        response_format: ResponseFormatJSONSchema | openai.Omit = openai.omit
        if output_schema is not None:
            response_format = {"type": "json_schema", "json_schema": {"name": "output", "schema": output_schema}}
        async with self._client() as client:
            with self._translated():
                completion = await client.chat.completions.create(
                    model=self.model_name,
                    messages=_messages(messages),
                    tools=[_tool(spec) for spec in tools] if tools else openai.omit,
                    tool_choice="required" if tools and tool_choice == "required" else openai.omit,
                    response_format=response_format,
                )
        return self._response(completion)

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the answer text as the server sends it."""
        async with self._client() as client:
            with self._translated():
                chunks = await client.chat.completions.create(
                    model=self.model_name, messages=_messages(messages), stream=True
                )
                async with chunks:
                    async for chunk in chunks:
                        if chunk.choices and chunk.choices[0].delta.content:
                            yield chunk.choices[0].delta.content

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """An `output_type` object through instructor's tool-calling mode, with the usage of every attempt."""
        async with self._client() as client:
            # instructor >= 1.17 counts `max_retries` after the first attempt, like our own `max_retries`.
            return await self._instructed(
                output_type,
                client.chat.completions.create,
                mode=instructor.Mode.TOOLS,
                max_retries=max_retries,
                messages=_messages(messages),
                model=self.model_name,
            )

    def _readable(self, completion: object) -> ChatCompletion:
        if not isinstance(completion, ChatCompletion):  # a body that is not JSON comes back as a str
            body = f"{completion!r:.200}"
            raise MalformedResponse(f"{self.name}: the server did not answer with a chat completion: {body}")
        if not completion.choices or not hasattr(completion.choices[0], "message"):
            raise MalformedResponse(f"{self.name}: malformed chat completion from the server (no message)")
        return completion

    def _response(self, completion: object) -> ModelResponse:
        completion = self._readable(completion)
        try:
            choice = completion.choices[0]
            calls = tuple(_tool_call(self.name, call) for call in choice.message.tool_calls or ())
            return ModelResponse(
                text=choice.message.content or "",
                model=self.name,
                tool_calls=calls,
                usage=self._usage(completion),
                finish_reason=_FINISH_REASONS.get(choice.finish_reason, choice.finish_reason or "stop"),
            )
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            # The SDK does not validate bodies: a JSON body of the wrong shape fails here, on first use.
            raise MalformedResponse(f"{self.name}: malformed chat completion from the server ({error})") from None

    def _usage(self, completion: ChatCompletion) -> Usage:
        usage = completion.usage  # some compatible servers leave it out
        return self.usage(usage.prompt_tokens, usage.completion_tokens) if usage else self.usage(0, 0)

    def _raw_text(self, completion: ChatCompletion) -> str | None:
        message = completion.choices[0].message
        calls = [call for call in message.tool_calls or () if isinstance(call, ChatCompletionMessageFunctionToolCall)]
        return calls[0].function.arguments if calls else message.content


def _messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    # `to_openai_dict` writes exactly these TypedDicts; it returns plain dicts so that base.py stays SDK-free.
    return [cast("ChatCompletionMessageParam", to_openai_dict(message)) for message in messages]


def _tool(spec: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
    }


def _tool_call(model: str, call: object) -> ToolCall:
    if not isinstance(call, ChatCompletionMessageFunctionToolCall):
        raise ModelError(f"{model}: unsupported tool call type {getattr(call, 'type', call)!r}")
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidOutput(
            f"{model}: tool call '{call.function.name}' has arguments that are not a JSON object",
            raw=call.function.arguments,
        )
    return ToolCall(id=call.id, name=call.function.name, arguments=arguments)
