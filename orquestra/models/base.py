"""The one model interface that planner, reflector and agents call, and the data it speaks.

A provider implements `request` (messages in; text or tool calls out, with usage) and, where it can,
`stream` and `structured`. The default `structured` drives instructor over `request` through an
OpenAI-shaped shim, so providers without an instructor integration of their own (the embedded model, the
scripted one) still get instructor's validation and re-asking. Nothing here knows about graphs or agents.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from orquestra.exceptions import (
    BudgetExceeded,
    InvalidOutput,
    OrquestraError,
    ReaskRefused,
    describe_validation_error,
)
from orquestra.models.attempts import finished_attempt, starting_attempt
from orquestra.trimming import estimate_tokens

if TYPE_CHECKING:
    import instructor
    from openai.types.chat import ChatCompletion

Role = Literal["system", "user", "assistant", "tool"]
OutputT = TypeVar("OutputT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool with JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """For an `assistant` message: the tools it asked to call."""
    tool_call_id: str | None = None
    """For a `tool` message: which call this is the result of."""
    name: str | None = None
    """For a `tool` message: the tool's name (some providers want it)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a model sees it: a name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError("prices cannot be negative")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost of a call with these token counts."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


FREE = Price()


@dataclass(slots=True)
class Usage:
    """Requests, tokens and cost, added up across calls."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost + other.cost,
        )


MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens a chat template adds around each message (role markers, separators), allowed for in estimates."""

ToolChoice = Literal["auto", "required"]
"""Whether a request with tools may answer in text ("auto") or must call a tool ("required")."""


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """What one call returned: text and/or tool calls, and what it cost."""

    text: str
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"


class Model(ABC):
    """A chat model behind a provider.

    Subclasses set `name` (the full model string, e.g. ``"openai:gpt-5-mini"``) and implement `request`.
    `price` turns token counts into cost; `usage()` builds a priced `Usage` for one call.
    """

    name: str
    price: Price = FREE
    context_window: int = 32_768
    """Tokens the model can take in one request (used to trim inputs); providers refine it."""
    max_tokens: int | None = None
    """The most tokens one answer may have, where the provider sets such a limit (room to leave for it)."""
    weak: bool = False
    """A small model for which sending a validation error back rarely helps: the planner goes straight to
    its deterministic repair instead of re-asking."""
    plans_in_stages: bool = False
    """Whether the planner's "auto" strategy asks this model in stages (decompose, assign, link) rather
    than for the whole graph in one answer: set for models measured to plan better that way."""
    needs_retries: bool = False
    """Whether a request may fail for a passing reason (a dropped connection, a rate limit, an overloaded
    server), so that whoever uses the model alone should wrap it in `RetryingModel`: the hosted providers'."""
    max_concurrent_requests: int | None = None
    """The most requests the models of this class answer at once, all together, or None for no limit of
    their own: the embedded models answer one at a time, on the same cores. A run gives each such class one
    slot of that size (`request_slot`), so a task waiting for it shows as waiting, not running."""

    @abstractmethod
    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Send `messages`.

        With `tools`, the answer may be tool calls instead of text; with `tool_choice="required"` it must be
        (for an agent that should compute or look up rather than guess). With `output_schema`, the answer
        text must be JSON matching that schema (constrained decoding where the provider supports it).
        Raises `ModelUnavailable` for transient failures, `ContextLengthExceeded`, or `ModelError`.
        """

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the answer text in pieces; providers that cannot stream yield it whole."""
        response = await self.request(messages)
        yield response.text

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """Return an `output_type` object validated by instructor, and the usage of every attempt.

        A validation error goes back to the model for up to `max_retries` more attempts; after that,
        `InvalidOutput` carries the last raw answer in `.raw` and the usage in `.usage`. A provider failure
        (`ModelUnavailable`, `MalformedResponse`...) is raised as it is, for the retry wrapper to retry.
        """
        import instructor  # here: instructor and the openai SDK are heavy, and the CLI must start fast

        shim = _OpenAIShim(self)
        return await instructed(
            self.name,
            output_type,
            shim.create,
            shim.attempts,
            mode=instructor.Mode.JSON_SCHEMA,
            max_retries=max_retries,  # instructor makes max_retries + 1 attempts
            messages=[to_openai_dict(message) for message in messages],
            model=self.name,
        )

    async def count_tokens(self, messages: Sequence[Message], *, output_schema: dict[str, Any] | None = None) -> int:
        """The tokens of the context window that `messages` take, `output_schema` included (it may be prompted).

        This default is an estimate that errs on the high side; a provider with its own tokenizer counts exactly.
        """
        text = "".join(message.content for message in messages)
        if output_schema is not None:
            text += json.dumps(output_schema, separators=(",", ":"))
        return estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS * len(messages)

    def usage(self, input_tokens: int, output_tokens: int) -> Usage:
        """A priced `Usage` for one request."""
        return Usage(1, input_tokens, output_tokens, self.price.cost(input_tokens, output_tokens))

    def __repr__(self) -> str:
        # Never show keys or clients: a model's repr may end up in logs.
        return f"{type(self).__name__}({self.name!r})"


class WrapperModel(Model):
    """Base of models that wrap another (retries, budgets): same name, price and limits as the wrapped one."""

    def __init__(self, model: Model) -> None:
        self.wrapped = model
        self.name = model.name
        self.price = model.price
        self.context_window = model.context_window
        self.max_tokens = model.max_tokens
        self.weak = model.weak
        self.plans_in_stages = model.plans_in_stages
        self.needs_retries = model.needs_retries
        self.max_concurrent_requests = model.max_concurrent_requests

    async def count_tokens(self, messages: Sequence[Message], *, output_schema: dict[str, Any] | None = None) -> int:
        """The wrapped model's count (its own tokenizer, where it has one)."""
        return await self.wrapped.count_tokens(messages, output_schema=output_schema)

    def describe(self) -> str:
        """What the wrapped model says about itself."""
        describe = getattr(self.wrapped, "describe", None)
        return str(describe()) if callable(describe) else self.name


def request_slot(model: Model) -> tuple[str, int] | None:
    """The slot `model`'s requests take in a run, by name, and how many it holds; None for a model without a limit.

    The models of one class that limits its requests (`Model.max_concurrent_requests`) share one slot, through
    any wrappers: ``local``, ``local:small`` and a GGUF file are answered on the same cores.
    """
    inner = model
    while isinstance(inner, WrapperModel):
        inner = inner.wrapped
    limit = inner.max_concurrent_requests
    return None if limit is None else (f"{type(inner).__module__}.{type(inner).__qualname__}", limit)


def plain(output_type: type[OutputT], result: BaseModel) -> OutputT:
    """`result` as a plain `output_type`: instructor returns a subclass carrying its raw response along."""
    return output_type.model_validate(result.model_dump())


class Attempts:
    """The attempts of one structured call: their usage added up, and the raw text of the last answer.

    Whatever sends the requests calls `start` before each (the run's budget may refuse it) and `answered`
    after each answer, re-asks included.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self.last_text: str | None = None

    def start(self) -> None:
        """Clear one more attempt with the budget of the call being made (`BudgetExceeded` when it is spent)."""
        starting_attempt()

    def answered(self, usage: Usage, text: str | None) -> None:
        """Count one answer."""
        self.usage = self.usage + usage
        self.last_text = text
        finished_attempt(usage)


async def instructed(
    name: str,
    output_type: type[OutputT],
    create: Callable[..., Awaitable[Any]],
    attempts: Attempts,
    *,
    mode: instructor.Mode,
    provider: instructor.Provider | None = None,
    max_retries: int,
    cut_off: str = "at the token limit",
    **request: Any,
) -> tuple[OutputT, Usage]:
    """An `output_type` object from instructor driving `create` (one call per attempt), and what it cost.

    `create` sends one request, calling `attempts.start()` first and `attempts.answered(...)` after, and
    raises Orquestra's errors, never an SDK's. Those errors come out as they are (a provider failure is
    the retry wrapper's to retry, a spent budget the run's to handle); an answer that never validates is an
    `InvalidOutput`, and one the budget allows no re-ask for a `ReaskRefused`. No SDK or instructor
    exception is chained to what is raised: their messages may hold what a provider echoed.
    """
    import instructor
    from instructor.core import IncompleteOutputException, InstructorRetryException

    patched: Any = instructor.patch(create=create, mode=mode, provider=provider or instructor.Provider.OPENAI)
    try:
        result = await patched(response_model=output_type, max_retries=max_retries, **request)
    except InstructorRetryException as error:
        raise _gave_up(name, output_type, error, attempts) from None
    except IncompleteOutputException:
        # The answer hit the token limit: what came before the cut may still hold a usable plan.
        raise InvalidOutput(
            f"{name}: the answer was cut off {cut_off}", raw=attempts.last_text, usage=attempts.usage
        ) from None
    return plain(output_type, result), attempts.usage


def _gave_up(name: str, output_type: type[BaseModel], error: Exception, attempts: Attempts) -> OrquestraError:
    """What a structured call raises when instructor gives up, by what made it give up."""
    cause = error.__cause__
    if isinstance(cause, BudgetExceeded) and attempts.last_text is not None:
        return ReaskRefused(
            f"{name} did not write a valid {describe_output(output_type)}, and {cause.message}: no re-ask",
            raw=attempts.last_text,
            usage=attempts.usage,
        )
    if isinstance(cause, OrquestraError):
        return cause  # a provider failure or a spent budget, not a bad answer
    return invalid_output(name, output_type, error, attempts.usage, attempts.last_text)


def invalid_output(
    model: str, output_type: type[BaseModel], error: Exception, usage: Usage, raw: str | None
) -> InvalidOutput:
    """The `InvalidOutput` raised when instructor gives up: the reason, the last raw answer and the usage."""
    return InvalidOutput(
        f"{model} did not write a valid {describe_output(output_type)}: {_reason(error)}",
        raw=raw,
        usage=usage,
    )


def describe_output(output_type: type[BaseModel]) -> str:
    """What `output_type` is, in words for a user: its `what`, else its class name in lower case."""
    what = getattr(output_type, "what", None)
    return what if isinstance(what, str) else re.sub(r"(?<!^)(?=[A-Z])", " ", output_type.__name__).lower()


def _reason(error: BaseException) -> str:
    """The validation problem behind instructor's retry exception, in one line."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ValidationError):
            return describe_validation_error(seen)
        seen = seen.__cause__ or seen.__context__
    lines = [line for line in str(error).splitlines() if line.strip() and "errors.pydantic.dev" not in line]
    return lines[-1].strip() if lines else type(error).__name__


def to_openai_dict(message: Message) -> dict[str, Any]:
    """A `Message` in the OpenAI chat format."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def from_openai_dict(data: dict[str, Any]) -> Message:
    """A `Message` from the OpenAI chat format (as instructor builds them while re-asking)."""
    content = data.get("content") or ""
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    calls = tuple(
        ToolCall(
            id=call.get("id", ""),
            name=call["function"]["name"],
            arguments=json.loads(call["function"].get("arguments") or "{}"),
        )
        for call in data.get("tool_calls") or ()
    )
    return Message(data["role"], str(content), tool_calls=calls, tool_call_id=data.get("tool_call_id"))


class _OpenAIShim:
    """An OpenAI-shaped `chat.completions.create` over `Model.request`, for instructor to drive."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.attempts = Attempts()

    async def create(self, **kwargs: Any) -> ChatCompletion:
        from openai.types.chat import ChatCompletion

        messages = [from_openai_dict(message) for message in kwargs["messages"]]
        response_format = kwargs.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("schema")
        self.attempts.start()
        response = await self.model.request(messages, output_schema=schema)
        self.attempts.answered(response.usage, response.text)
        return ChatCompletion.model_validate(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model.name,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": response.finish_reason,
                        "message": {"role": "assistant", "content": response.text},
                    }
                ],
                "usage": {
                    "prompt_tokens": response.usage.input_tokens,
                    "completion_tokens": response.usage.output_tokens,
                    "total_tokens": response.usage.total_tokens,
                },
            }
        )
