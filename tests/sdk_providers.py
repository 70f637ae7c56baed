"""The OpenAI and Anthropic adapters as `tests/test_provider_contract.py` drives them, and what the tests share.

Each `Provider` pairs an adapter with its fake server, and holds what its API says differently: the value of a
required tool choice, the stop reason of a cut answer, the words of its errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orquestra.models._sdk import SDKModel
from orquestra.models.anthropic import AnthropicModel
from orquestra.models.base import Message, Price, ToolSpec
from orquestra.models.openai import OpenAIModel
from tests.fake_providers import FakeAnthropic, FakeOpenAI, FakeServer, free_url

CHAT = [Message("system", "Be brief."), Message("user", "What is 2+2?")]
CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate an arithmetic expression.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


class Verdict(BaseModel):
    ok: bool
    note: str


@dataclass(frozen=True)
class Unreadable:
    """A body the provider's API would never send, and what the error about it says."""

    body: str
    content_type: str
    says: str


@dataclass(frozen=True)
class Provider:
    """One SDK adapter, its fake server, and how its API differs from the other's."""

    name: str
    adapter: type[SDKModel[Any]]
    fake: type[FakeServer]
    model_name: str
    key: str
    price: Price
    environment: tuple[str, ...]
    """The variables the adapter reads, cleared around each test."""
    api_path: str
    """What follows the host in the adapter's base URL."""
    required_tool_choice: Any
    """The `tool_choice` sent when a tool call is required."""
    length_reason: str
    """The stop reason of an answer cut off at the token limit."""
    cut_off: str
    """What `InvalidOutput` says of a structured answer cut off."""
    key_refused: str
    """What the provider answers to a wrong key, `{key}` standing for it."""
    unreadable: dict[str, Unreadable]
    """By kind: truncated JSON, an HTML page, JSON of the wrong shape."""
    options: dict[str, Any] = field(default_factory=dict)
    """Options of the adapter the tests set (besides key, base URL and price)."""

    def model(self, base_url: str, **options: Any) -> SDKModel[Any]:
        """The adapter at `base_url`, with the test key and price."""
        return self.adapter(
            self.model_name, api_key=self.key, base_url=base_url, price=self.price, **{**self.options, **options}
        )

    def nowhere(self) -> str:
        """A base URL where nothing listens."""
        return free_url() + self.api_path


OPENAI = Provider(
    name="openai",
    adapter=OpenAIModel,
    fake=FakeOpenAI,
    model_name="gpt-test",
    key="sk-test-0123456789SECRET",
    price=Price(input=2.0, output=8.0),
    environment=("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    api_path="/v1",
    required_tool_choice="required",
    length_reason="length",
    cut_off="cut off at the token limit",
    key_refused="Incorrect API key provided: {key}. You can find your API key at ...",
    unreadable={
        "truncated JSON": Unreadable('{"id": "chatcmpl-1", "choices": [', "application/json", "not valid JSON"),
        "HTML page": Unreadable("<html>Bad gateway</html>", "text/html", "did not answer with a chat completion"),
        "wrong shape": Unreadable('{"unexpected": true}', "application/json", "malformed chat completion"),
    },
)

ANTHROPIC = Provider(
    name="anthropic",
    adapter=AnthropicModel,
    fake=FakeAnthropic,
    model_name="claude-test",
    key="sk-ant-test-0123456789SECRET",
    price=Price(input=3.0, output=15.0),
    environment=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"),
    api_path="",
    required_tool_choice={"type": "any"},
    length_reason="max_tokens",
    cut_off="cut off at max_tokens=512",
    key_refused="invalid x-api-key {key}",
    unreadable={
        "truncated JSON": Unreadable('{"id": "msg_1", "content": [', "application/json", "not valid JSON"),
        "HTML page": Unreadable("<html>Bad gateway</html>", "text/html", "did not answer with a message"),
        "wrong shape": Unreadable('{"unexpected": true}', "application/json", "malformed message"),
    },
    options={"max_tokens": 512},
)

PROVIDERS = (OPENAI, ANTHROPIC)

UNREADABLE_KINDS = ("truncated JSON", "HTML page", "wrong shape")
