"""The tools one agent may use in one run: their specs for the model, and calling them safely.

A tool's failure (a refusal, bad arguments, a bug) becomes the text of its result, so the model can read
it and try again; it never crashes the task.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema

from orquestra.exceptions import RegistryError
from orquestra.models.base import ToolCall, ToolSpec
from orquestra.registry import ToolCard
from orquestra.tools.context import ToolContext, ToolError

MAX_RESULT_CHARS = 8_000


def load_entry_point(card: ToolCard) -> Callable[..., Any]:
    """Import the function named by `card.entry_point` ('module:function')."""
    module_name, _, attribute = card.entry_point.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise RegistryError(
            f"tool '{card.name}': field 'entry_point': cannot load '{card.entry_point}': {error}"
        ) from None
    if not callable(function):
        raise RegistryError(f"tool '{card.name}': field 'entry_point': '{card.entry_point}' is not callable")
    return function  # type: ignore[no-any-return]


class Toolbox:
    """Tools by name, bound to a run's `ToolContext`."""

    def __init__(self, cards: Iterable[ToolCard], context: ToolContext) -> None:
        self.cards = {card.name: card for card in cards}
        self.context = context
        self._functions = {name: load_entry_point(card) for name, card in self.cards.items()}

    def __bool__(self) -> bool:
        return bool(self.cards)

    def schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON schema of each tool's arguments, by tool name."""
        return {name: card.arguments for name, card in self.cards.items()}

    def specs(self) -> list[ToolSpec]:
        """The tools as the model sees them."""
        return [ToolSpec(card.name, card.description, card.arguments) for card in self.cards.values()]

    async def call(self, call: ToolCall) -> str:
        """Run one tool call and return its result as text; errors are returned, not raised."""
        function = self._functions.get(call.name)
        if function is None:
            return f"error: there is no tool named '{call.name}' (available: {', '.join(self.cards)})"
        problem = self._argument_problem(call)
        if problem is not None:
            return problem
        try:
            result = function(self.context, **call.arguments)
            if inspect.isawaitable(result):
                result = await result
        except ToolError as error:
            return f"error: {error.message}"
        except TypeError as error:
            expected = json.dumps(self.cards[call.name].arguments.get("properties", {}))
            return f"error: bad arguments for '{call.name}': {error}. Expected arguments: {expected}"
        except Exception as error:  # a tool's own bug is reported to the model, not raised
            return f"error: tool '{call.name}' failed: {type(error).__name__}: {error}"
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"\n[truncated: {len(text) - MAX_RESULT_CHARS} more characters]"
        return text

    def _argument_problem(self, call: ToolCall) -> str | None:
        """Why `call`'s arguments do not fit the tool's schema (for the model to fix), or None."""
        schema = self.cards[call.name].arguments
        try:
            jsonschema.validate(call.arguments, schema)
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path)
            expected = json.dumps(schema.get("properties", {}))
            return (
                f"error: bad arguments for '{call.name}'{f' at {where!r}' if where else ''}: {error.message}. "
                f"Expected arguments: {expected}"
            )
        except jsonschema.SchemaError:
            return None  # a card's own schema is broken: let the tool itself judge the arguments
        return None
