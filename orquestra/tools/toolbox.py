"""The tools one agent may use in one run: their specs for the model, and calling them safely.

A tool's failure (a refusal, bad arguments, a bug) becomes the text of its result, so the model can read
it and try again; it never crashes the task.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import jsonschema

from orquestra.exceptions import RegistryError, ToolError
from orquestra.models.base import ToolCall, ToolSpec
from orquestra.registry import ToolCard
from orquestra.tools.context import QUOTED_CHARS, ToolContext, quoted
from orquestra.tools.threads import run_in_thread

PREVIEW_CHARS = 200
"""Characters of a refused, oversized argument that its record keeps."""


def preview(text: str) -> str:
    """`text` cut to `PREVIEW_CHARS` characters, saying how many were left out."""
    if len(text) <= PREVIEW_CHARS:
        return text
    return f"{text[:PREVIEW_CHARS]}… [{len(text) - PREVIEW_CHARS} more characters left out]"


def argument_chars(arguments: Any) -> int:
    """Characters of text in `arguments` (keys and string values, at any depth), counted without recursion."""
    total = 0
    pending = [arguments]
    seen: set[int] = set()  # JSON has no cycles, but a Python caller's dict may
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            total += len(value)
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            total += sum(len(str(key)) for key in value)
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return total


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
        """Run one tool call and return its result as text; errors are returned, not raised.

        A synchronous tool runs in a thread of its own, so the event loop (and every other task) goes on
        while it works, and a task's timeout stops the wait. Calls over `ToolLimits` get an error instead.
        """
        function = self._functions.get(call.name)
        if function is None:
            return f"error: there is no tool named '{call.name}' (available: {', '.join(self.cards)})"
        limits = self.context.limits
        size = argument_chars(call.arguments)
        if size > limits.max_argument_chars:
            return (
                f"error: the arguments of '{call.name}' hold {size} characters of text; one tool call takes at"
                f" most {limits.max_argument_chars}: send less, or split the work over several calls"
            )
        problem = self._argument_problem(call)
        if problem is None:
            problem = self._signature_problem(call, function)
        if problem is not None:
            return problem
        deadline = asyncio.timeout(limits.max_seconds)
        try:
            async with deadline:
                result = await self._run(function, call.arguments)
        except ToolError as error:  # a tool's own message: its length is the tool's to choose, within the cap
            return f"error: {error.message}"[: limits.max_result_chars]
        except TimeoutError as error:
            if deadline.expired():
                return f"error: tool '{call.name}' did not finish within {limits.max_seconds:g} s"
            return f"error: tool '{call.name}' failed: TimeoutError: {error}"
        except Exception as error:  # a tool's own bug is reported to the model, not raised
            return f"error: tool '{call.name}' failed: {type(error).__name__}: {error}"[: limits.max_result_chars]
        return self._result_text(call.name, result)

    def recordable(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """`arguments` as events and the conversation keep them: whole, unless the call was refused as too large.

        Then each long value is cut to a preview, so that a refused megabyte argument is not kept, logged
        and sent back to the model on every later request.
        """
        if argument_chars(arguments) <= self.context.limits.max_argument_chars:
            return arguments
        kept: dict[str, Any] = {}
        for key, value in arguments.items():
            size = argument_chars(value)
            if size <= PREVIEW_CHARS:
                kept[key] = value
            elif isinstance(value, str):
                kept[key] = preview(value)
            else:
                kept[key] = f"[{type(value).__name__} of {size} characters left out]"
        return kept

    async def _run(self, function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        """Call the tool: a coroutine function on the loop, anything else in a thread."""
        if inspect.iscoroutinefunction(function):
            return await function(self.context, **arguments)
        result = await run_in_thread(partial(function, self.context, **arguments))
        if inspect.isawaitable(result):
            result = await result
        return result

    def _result_text(self, name: str, result: Any) -> str:
        """The result as the model reads it: text, or JSON, cut at `ToolLimits.max_result_chars`."""
        limit = self.context.limits.max_result_chars
        try:
            text = result if isinstance(result, str) else json.dumps(result, default=str)
        except (TypeError, ValueError, RecursionError):  # keys that are not text, a cycle, absurd depth
            return f"error: tool '{name}' returned a {type(result).__name__} that cannot be written as JSON"
        if len(text) > limit:
            text = text[:limit] + f"\n[truncated: the result has {len(text)} characters; these are the first {limit}]"
        return text

    def _signature_problem(self, call: ToolCall, function: Callable[..., Any]) -> str | None:
        """Why the tool's function cannot take `call`'s arguments (checked before it runs), or None."""
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # some built-ins have none: the call itself will tell
            return None
        try:
            signature.bind(self.context, **call.arguments)
        except TypeError as error:
            expected = json.dumps(self.cards[call.name].arguments.get("properties", {}))
            return f"error: bad arguments for '{call.name}': {error}. Expected arguments: {expected}"
        return None

    def _argument_problem(self, call: ToolCall) -> str | None:
        """Why `call`'s arguments do not fit the tool's schema (for the model to fix), or None."""
        schema = self.cards[call.name].arguments
        try:
            jsonschema.validate(call.arguments, schema)
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path)
            expected = json.dumps(schema.get("properties", {}))
            # The message may quote the whole offending value, which can be megabytes long.
            said = error.message if len(error.message) <= QUOTED_CHARS else error.message[:QUOTED_CHARS] + "…"
            return (
                f"error: bad arguments for '{call.name}'{f' at {quoted(where)}' if where else ''}: {said}. "
                f"Expected arguments: {expected}"
            )
        except jsonschema.SchemaError:
            return None  # a card's own schema is broken: let the tool itself judge the arguments
        return None
