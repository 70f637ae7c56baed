"""Agent and tool cards, loaded from YAML files in registry folders, and capability lookup.

A registry is built from the package's built-in folder and any folders a user adds; a card in a later
folder replaces a card of the same name from an earlier one, so users extend or override the starter set
without touching the package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orquestra.checks import CheckSpec
from orquestra.datafile import read_data
from orquestra.exceptions import RegistryError, describe_validation_error
from orquestra.models.base import Price, ToolChoice
from orquestra.resources import data_dir

CardT = TypeVar("CardT", bound=BaseModel)

_NAME = r"^[a-z][a-z0-9_\-]*$"

Permission = Literal["compute", "read_workspace", "write_workspace"]


class AgentCard(BaseModel):
    """An agent: what it can do, which model and tools it uses, and how it is chosen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME, description="Unique name, e.g. 'researcher'.")
    description: str = Field(min_length=1, description="What this agent is good at, in one sentence.")
    capabilities: tuple[str, ...] = Field(min_length=1, description="Capabilities this agent offers.")
    model: str | None = Field(default=None, description="Model string; the run's default model when unset.")
    tools: tuple[str, ...] = Field(default=(), description="Names of the tools this agent may use.")
    prompt: str = Field(default="agent", description="System prompt template in prompts/agents/, without .j2.")
    persona: str = Field(default="", description="Extra instructions placed in the system prompt.")
    fallback_models: tuple[str, ...] = Field(
        default=(), description="Models to try, in order, when this agent's model fails after its retries."
    )
    fallbacks: tuple[str, ...] = Field(default=(), description="Agents to try when this one fails for good.")
    cost: float = Field(default=1.0, ge=0, description="Relative cost; cheaper agents win ties.")
    priority: int = Field(default=0, description="Higher priority wins before cost is compared.")
    requires_approval: bool = Field(
        default=False, description="Every task given to this agent waits for a person's approval before it starts."
    )
    tool_choice: ToolChoice = Field(
        default="auto",
        description="'required': the agent's first answer must be a tool call (compute or look up, never guess).",
    )
    checks: tuple[CheckSpec, ...] = Field(
        default=(), description="Checks every answer of this agent must pass, beyond the built-in ones."
    )


class ToolCard(BaseModel):
    """A tool an agent may call: its argument schema, where its code lives, and what it may touch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    description: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(description="JSON schema of the arguments object.")
    entry_point: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="'module:function'.")
    permissions: tuple[Permission, ...] = ()

    @field_validator("arguments")
    @classmethod
    def _arguments_are_an_object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("must be a JSON schema with type: object")
        return value


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: dict[str, Price] = Field(default_factory=dict)


class Registry:
    """The agents, tools and model prices available to a run."""

    def __init__(
        self,
        agents: Iterable[AgentCard] = (),
        tools: Iterable[ToolCard] = (),
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        self.agents: dict[str, AgentCard] = {card.name: card for card in agents}
        self.tools: dict[str, ToolCard] = {card.name: card for card in tools}
        self.prices: dict[str, Price] = dict(prices or {})
        self._check_references()

    @classmethod
    def load(cls, *folders: str | Path, builtin: bool = True) -> Registry:
        """Load the built-in cards (unless `builtin` is False), then each folder's, later ones winning."""
        roots = [data_dir("registry")] if builtin else []
        roots += [Path(folder) for folder in folders]
        agents: dict[str, AgentCard] = {}
        tools: dict[str, ToolCard] = {}
        prices: dict[str, Price] = {}
        for root in roots:
            if not root.is_dir():
                raise RegistryError(f"{root}: registry folder not found")
            for path in _card_files(root / "agents"):
                card = _load_card(path, AgentCard)
                agents[card.name] = card
            for path in _card_files(root / "tools"):
                tool = _load_card(path, ToolCard)
                tools[tool.name] = tool
            if (root / "models.yaml").is_file():
                prices.update(_load_card(root / "models.yaml", _PricesFile).prices)
        return cls(agents.values(), tools.values(), prices)

    def capabilities(self) -> set[str]:
        """Every capability some agent offers."""
        return {capability for card in self.agents.values() for capability in card.capabilities}

    def agents_for(self, capability: str) -> list[AgentCard]:
        """Agents offering `capability`, best first: higher priority, then lower cost, then name."""
        cards = [card for card in self.agents.values() if capability in card.capabilities]
        return sorted(cards, key=lambda card: (-card.priority, card.cost, card.name))

    def agent(self, name: str) -> AgentCard:
        """The agent called `name`; `RegistryError` names the known ones when there is none."""
        try:
            return self.agents[name]
        except KeyError:
            raise RegistryError(f"no agent named '{name}' (known: {', '.join(sorted(self.agents))})") from None

    def _check_references(self) -> None:
        for card in self.agents.values():
            for tool in card.tools:
                if tool not in self.tools:
                    raise RegistryError(f"agent '{card.name}': field 'tools': unknown tool '{tool}'")
            for fallback in card.fallbacks:
                if fallback not in self.agents or fallback == card.name:
                    raise RegistryError(f"agent '{card.name}': field 'fallbacks': unknown agent '{fallback}'")


def _card_files(folder: Path) -> Sequence[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix in (".yaml", ".yml"))


def _load_card(path: Path, card_type: type[CardT]) -> CardT:
    data = read_data(path, RegistryError)
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return card_type.model_validate(data)
    except ValidationError as error:
        raise RegistryError(f"{path}: {describe_validation_error(error)}") from None
