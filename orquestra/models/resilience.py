"""Wrappers that add resilience around any `Model`: retries of transient provider failures.

Adapters create their SDK clients with retries switched off, so that every provider is retried the same
way here: exponential backoff with jitter, never sooner than the provider's Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from orquestra.backoff import BackoffWait
from orquestra.exceptions import ModelUnavailable
from orquestra.models.base import Message, Model, ModelResponse, OutputT, ToolChoice, ToolSpec, Usage, WrapperModel

log = logging.getLogger(__name__)


class RetryingModel(WrapperModel):
    """`model`, with each request retried up to `retries` times on `ModelUnavailable`.

    Streams are not retried once text has been yielded (the caller already holds part of the answer).
    """

    def __init__(self, model: Model, *, retries: int = 3, initial_delay: float = 1.0, max_delay: float = 30.0) -> None:
        super().__init__(model)
        self.retries = retries
        self._wait = BackoffWait(initial_delay, max_delay, jitter=initial_delay / 2)

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(ModelUnavailable),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        # Provider errors already start with the model's name.
        log.warning("%s; retry %d in %.1fs", error, state.attempt_number, delay)

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Send `messages`, retrying transient failures."""
        result: ModelResponse = await self._retrying()(
            self.wrapped.request, messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice
        )
        return result

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """A validated `output_type`, retrying transient failures (validation re-asks are the model's own)."""
        result: tuple[OutputT, Usage] = await self._retrying()(
            self.wrapped.structured, messages, output_type, max_retries=max_retries
        )
        return result

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Stream the answer; a failure before the first piece is retried, one after it is not."""
        async for attempt in self._retrying():
            with attempt:
                pieces = self.wrapped.stream(messages)
                first = await anext(pieces, None)
        if first is None:
            return
        yield first
        async for piece in pieces:
            yield piece
