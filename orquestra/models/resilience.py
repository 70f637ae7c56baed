"""Wrappers that add resilience around any `Model`: retries of transient provider failures.

Adapters create their SDK clients with retries switched off, so that every provider is retried the same
way here: exponential backoff with jitter, never sooner than the provider's Retry-After. What counts as
transient is `TransientError`: `ModelUnavailable` (429, 5xx, timeouts, dropped connections) and
`MalformedResponse` (a body that cannot be read), from an adapter or from any model of one's own.

Each retry is logged, and reported to the callback of `reporting_retries`, if one is set around the call:
the team turns those reports into `ModelRetrying` events of the run.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from orquestra.backoff import BackoffWait
from orquestra.exceptions import TransientError
from orquestra.models.attempts import starting_attempt
from orquestra.models.base import Message, Model, ModelResponse, OutputT, ToolChoice, ToolSpec, Usage, WrapperModel

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 10
"""Retries of one call after its first attempt: enough that a run of some tens of calls completes through 30%
of transient faults (each call fails for good once in 0.3**11, about two in a million), and, with waits
capped at `MAX_DELAY`, a provider that is down for good is given up on within about a minute."""
MAX_DELAY = 8.0
"""The longest wait between two attempts that the backoff chooses itself (a Retry-After may ask for more);
the OpenAI SDK's own cap."""


@dataclass(frozen=True, slots=True)
class Retry:
    """One attempt of a model call failed transiently; the next starts after `delay` seconds."""

    model: str
    attempt: int
    """The attempt that failed, from 1."""
    error: str
    delay: float


RetryListener = Callable[[Retry], None]

_listener: ContextVar[RetryListener | None] = ContextVar("orquestra_retry_listener", default=None)


@contextmanager
def reporting_retries(listener: RetryListener) -> Iterator[None]:
    """Tell `listener` of every retry of the model calls made inside the block (tasks started in it too)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


class RetryingModel(WrapperModel):
    """`model`, with each request retried up to `retries` times on a `TransientError`.

    Every attempt after the first is cleared with the run's budget before it starts (see
    `orquestra.models.attempts`). Streams are not retried once text has been yielded (the caller already
    holds part of the answer).
    """

    def __init__(
        self, model: Model, *, retries: int = DEFAULT_RETRIES, initial_delay: float = 1.0, max_delay: float = MAX_DELAY
    ) -> None:
        super().__init__(model)
        self.retries = retries
        self._wait = BackoffWait(initial_delay, max_delay, jitter=initial_delay / 2)

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            before=_clear_with_budget,
            before_sleep=self._report_retry,
            reraise=True,
        )

    def _report_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        # Provider errors already start with the model's name.
        log.warning("%s; retry %d in %.1fs", error, state.attempt_number, delay)
        listener = _listener.get()
        if listener is not None:
            listener(Retry(self.name, state.attempt_number, str(error), delay))

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


def _clear_with_budget(state: RetryCallState) -> None:
    """Before a retry, ask the run's budget: the wait may have spent its time, or other calls its tokens."""
    if state.attempt_number > 1:
        starting_attempt()


def is_retrying(model: Model) -> bool:
    """Whether `model`, or a model it wraps, is a `RetryingModel` (so that wrapping it again would add nothing)."""
    seen: Model | None = model
    while seen is not None:
        if isinstance(seen, RetryingModel):
            return True
        seen = seen.wrapped if isinstance(seen, WrapperModel) else None
    return False
