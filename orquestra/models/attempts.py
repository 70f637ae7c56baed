"""Each attempt of a model call, as a run's budget sees it: cleared before it starts, counted when it ends.

One call to a model may send several requests: instructor asks again when an answer does not validate, and
`RetryingModel` sends a request again after a transient failure. A run's meter (`orquestra.budget`) sets
`metering(meter)` around a call; whatever sends a request inside it calls `starting_attempt()` first, which
raises `BudgetExceeded` once the budget is spent, and a structured call reports each answer's usage with
`finished_attempt(usage)`, so the next attempt is judged on everything spent so far. A context variable keeps
this out of the model interface, as `orquestra.models.progress` does for watchers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orquestra.models.base import Usage


class AttemptMeter(Protocol):
    """What a budget does around each attempt."""

    def before_attempt(self) -> None:
        """Raise (`BudgetExceeded`) if no new attempt may start."""

    def after_attempt(self, usage: Usage) -> None:
        """Count what one attempt cost."""


_meter: ContextVar[AttemptMeter | None] = ContextVar("orquestra_attempt_meter", default=None)


@contextmanager
def metering(meter: AttemptMeter) -> Iterator[None]:
    """Clear and count with `meter` every attempt of the model calls made inside the block."""
    token = _meter.set(meter)
    try:
        yield
    finally:
        _meter.reset(token)


def starting_attempt() -> None:
    """Called before each request is sent: raises if the budget of the call being made is spent."""
    meter = _meter.get()
    if meter is not None:
        meter.before_attempt()


def finished_attempt(usage: Usage) -> None:
    """Called with the usage of each answer of a structured call, re-asks included."""
    meter = _meter.get()
    if meter is not None:
        meter.after_attempt(usage)
