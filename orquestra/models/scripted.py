"""A deterministic model for tests and demos: answers come from a function or a recorded list.

It is never the default: it exists so that the whole loop can be exercised and shown with no network and
no weights. Token counts are whitespace-separated words, so usage is deterministic too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from orquestra.exceptions import ScriptExhausted
from orquestra.models.base import Message, Model, ModelResponse, ToolChoice, ToolSpec
from orquestra.models.progress import current_watcher

_PIECE = 8
"""Characters per step when a watched answer is shown growing."""
_TOKEN = re.compile(r"\s*\S+")
"""One token of an answer written at `token_latency`: a word with the space before it."""

Answer = str | ModelResponse | BaseModel | dict[str, Any] | list[Any]
Responder = Callable[[Sequence[Message]], Answer]


class ScriptedModel(Model):
    """Answers with `responder(messages)`, or else the next of `responses`, after `latency` seconds.

    An answer may be text, a full `ModelResponse` (for tool calls), or a pydantic object, dict or list
    (sent as JSON, for structured calls). With neither a responder nor responses, it echoes the last user
    message, which is enough to demonstrate a graph run.

    With `token_latency`, the answer is also written one token (word) at a time, that many seconds each,
    watched or not, so a benchmark or a test sees a plan arrive task by task and pays the same time for it
    either way.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        responses: Iterable[Answer] = (),
        latency: float = 0.0,
        token_latency: float = 0.0,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self._responder = responder
        self._responses = list(responses)
        self._scripted = bool(self._responses)
        self.latency = latency
        self.token_latency = token_latency
        self.calls: list[list[Message]] = []
        """Every request received, for tests to inspect."""
        self.tool_choices: list[ToolChoice | None] = []
        """The tool choice of each request (None when it offered no tools)."""

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Return the scripted answer for `messages`."""
        self.calls.append(list(messages))
        self.tool_choices.append(tool_choice if tools else None)
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = self._next_answer(messages)
        text = answer.text if isinstance(answer, ModelResponse) else _as_text(answer)
        watcher = current_watcher()
        if self.token_latency:
            written = ""
            for token in _TOKEN.findall(text):
                await asyncio.sleep(self.token_latency)
                written += token
                if watcher is not None:
                    watcher(written)
        elif watcher is not None:  # show the answer growing, as the embedded model does, a few characters at a time
            for end in range(_PIECE, len(text) + _PIECE, _PIECE):
                watcher(text[:end])
        usage = self.usage(sum(len(message.content.split()) for message in messages), len(text.split()))
        if isinstance(answer, ModelResponse):
            # A recorded response counts as a request too, unless it brings usage of its own.
            return answer if answer.usage.requests else replace(answer, usage=usage)
        return ModelResponse(text=text, model=self.name, usage=usage)

    def _next_answer(self, messages: Sequence[Message]) -> Answer:
        if self._responder is not None:
            return self._responder(messages)
        if self._responses:
            return self._responses.pop(0)
        if self._scripted:
            raise ScriptExhausted(f"scripted model '{self.name}' has no answers left (call {len(self.calls)})")
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return f"[{self.name}] {last_user.strip().splitlines()[0] if last_user.strip() else 'done'}"


def _as_text(answer: Answer) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    return json.dumps(answer)
