"""The one model interface that planner, reflector and agents call, and the data it speaks.

Providers implement `Model.request`; everything else (structured output, usage accounting) is shared.
Nothing here knows about graphs or agents.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from orquestra.exceptions import OrquestraError

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
    tool_call_id: str | None = None
    """For a `tool` message: which call this is the result of."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a model sees it: a name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Tokens and cost, added up across calls."""

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


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """What one call returned: text and/or tool calls, and what it cost."""

    text: str
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)


class InvalidOutput(OrquestraError):
    """A model's answer did not validate against the requested output type."""


class Model(ABC):
    """A chat model behind a provider. Subclasses implement `request`; streaming is optional."""

    name: str

    @abstractmethod
    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
    ) -> ModelResponse:
        """Send `messages`; with `output_schema`, the answer text must be JSON matching that schema."""

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the answer in pieces; providers that cannot stream yield it whole."""
        response = await self.request(messages)
        yield response.text

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT]
    ) -> tuple[OutputT, ModelResponse]:
        """Ask for a JSON answer matching `output_type` and return it validated, with the raw response."""
        response = await self.request(messages, output_schema=output_type.model_json_schema())
        try:
            return output_type.model_validate(json.loads(response.text)), response
        except (ValueError, ValidationError) as error:
            raise InvalidOutput(f"{self.name} returned an invalid {output_type.__name__}: {error}") from error
