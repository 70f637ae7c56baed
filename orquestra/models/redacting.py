r"""A wrapper that keeps configured secrets out of a model's answers (see `orquestra.redaction`).

A provider, or a proxy in front of it, may echo the request's key in its answer; an answer goes on into task
outputs, events, the run store, memory and the terminal. The team wraps every model in `RedactedModel`, so
that no answer it receives holds a secret, whichever provider wrote it: whole, streamed in pieces, or shown
growing to a watcher (`orquestra.models.progress`), which is how a streamed plan's tasks reach the run before
the answer ends. Errors need no wrapper: every Orquestra error redacts its own message.

It also replaces, with U+FFFD, the lone surrogates that a JSON escape (``"\ud800"``) puts in an answer's text or
tool arguments: no UTF-8 encoder takes them, so the run store's write, or the next request that quotes the
answer, would fail on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from orquestra.models.base import Message, ModelResponse, OutputT, ToolCall, ToolChoice, ToolSpec, Usage, WrapperModel
from orquestra.models.progress import Watcher, current_watcher, watching
from orquestra.redaction import GrowingText, contains_secret, redact

_SURROGATE = re.compile("[\ud800-\udfff]")
"""A code point of the surrogate range: a Python text holds one only alone, where a JSON escape put it."""


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


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
        with _redacted_progress():
            response = await self.wrapped.request(
                messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice
            )
        calls = tuple(_redacted_call(call) for call in response.tool_calls)
        text = response.text
        if not contains_secret(text) and not _SURROGATE.search(text) and calls == response.tool_calls:
            return response
        return replace(response, text=_encodable(redact(text)), tool_calls=calls)

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """The wrapped model's validated answer, with secrets redacted from its fields (and validated again)."""
        with _redacted_progress():
            result, usage = await self.wrapped.structured(messages, output_type, max_retries=max_retries)
        dumped = result.model_dump_json()
        if not contains_secret(dumped):
            return result, usage
        return output_type.model_validate_json(redact(dumped)), usage

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The wrapped model's answer in pieces, redacted; a secret cut across pieces is redacted as a whole."""
        text = GrowingText()
        async for piece in self.wrapped.stream(messages):
            if let_out := text.add(piece):
                yield _encodable(let_out)
        if rest := text.end():
            yield _encodable(rest)


@contextmanager
def _redacted_progress() -> Iterator[None]:
    """Inside the block, the watcher of the call (if any) sees the answer growing redacted, secrets cut or not."""
    watcher = current_watcher()
    if watcher is None:
        yield
        return
    redacted = _RedactedWatcher(watcher)
    with watching(redacted):
        yield
    redacted.finish()


class _RedactedWatcher:
    """Passes a provider's growing answer on to `watcher` redacted, never the first characters of a secret."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self._written = ""
        """The answer so far, as the provider wrote it."""
        self._shown = ""
        """What `watcher` saw of it."""
        self._text = GrowingText()

    def __call__(self, written: str) -> None:
        restarted = not written.startswith(self._written)  # a new answer: the model was asked again
        if restarted:
            self._written, self._shown, self._text = "", "", GrowingText()
        let_out = self._text.add(written[len(self._written) :])
        self._written = written
        if let_out or restarted:
            self._shown += let_out
            self.watcher(self._shown)

    def finish(self) -> None:
        """Show the rest of the answer, now that it is complete."""
        if rest := self._text.end():
            self._shown += rest
            self.watcher(self._shown)


def _redacted_call(call: ToolCall) -> ToolCall:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    if not contains_secret(arguments) and not _SURROGATE.search(arguments):
        return call
    return replace(call, arguments=json.loads(_encodable(redact(arguments))))
