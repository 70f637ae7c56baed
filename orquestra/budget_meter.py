"""The meter every model call of a run goes through, holding the run to its `Budget`.

A call is refused before it starts once a limit is reached, and so is every further attempt of a call
(instructor's re-asks, retries after a transient failure), so a budget is never exceeded by more than the
attempts already in flight. Near a limit (by default at 90%) the loop starts no new tasks and writes its
answer from what it has; the share left is room for that answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from orquestra.budget import Budget
from orquestra.exceptions import BudgetExceeded
from orquestra.models.attempts import metering
from orquestra.models.base import Message, Model, ModelResponse, OutputT, ToolChoice, ToolSpec, Usage, WrapperModel


class BudgetMeter:
    """What a run has spent so far, against its budget.

    Its clock is the run's clock: it starts when the meter is made (before planning), and the run's summary
    reads the same clock, so the time a budget message reports and the time of the run agree.
    """

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.usage = Usage()
        # The engine's clock too, so the two can be compared.
        self.started = time.perf_counter()

    def add(self, usage: Usage) -> None:
        """Count a finished call."""
        self.usage = self.usage + usage

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def shares(self, elapsed: float | None = None) -> dict[str, float]:
        """The share of each limit spent, by limit name; `elapsed` fixes the moment of the time share."""
        budget, shares = self.budget, {}
        if budget.max_tokens is not None:
            shares["tokens"] = self.usage.total_tokens / budget.max_tokens
        if budget.max_cost is not None:
            shares["cost"] = self.usage.cost / budget.max_cost
        if budget.max_seconds is not None:
            shares["time"] = (self.elapsed() if elapsed is None else elapsed) / budget.max_seconds
        return shares

    def exhausted(self) -> str | None:
        """Why no new call may start, or None while the budget lasts."""
        return self._over(1.0, "spent")

    def near_limit(self) -> str | None:
        """Why the loop should start no new work, or None while there is room."""
        return self._over(self.budget.near, "nearly spent")

    def _over(self, threshold: float, word: str) -> str | None:
        elapsed = self.elapsed()  # one reading: the share judged and the figure reported are the same
        for name, share in self.shares(elapsed).items():
            if share >= threshold:
                return f"the {name} budget is {word} ({self.describe(name, elapsed)})"
        return None

    def describe(self, name: str, elapsed: float | None = None) -> str:
        """The spending on one limit, e.g. '9,120 of 10,000 tokens'; `elapsed` fixes the moment of the time."""
        budget = self.budget
        if name == "tokens":
            return f"{self.usage.total_tokens:,} of {budget.max_tokens:,} tokens"
        if name == "cost":
            return f"${self.usage.cost:.4f} of ${budget.max_cost:.4f}"
        seconds = self.elapsed() if elapsed is None else elapsed
        return f"{seconds:.2f} of {budget.max_seconds:g} seconds"

    def spending(self, elapsed: float | None = None) -> list[str]:
        """The spending on every limit the budget sets, time as of `elapsed` (now by default)."""
        names = [
            name
            for name, limit in (
                ("tokens", self.budget.max_tokens),
                ("cost", self.budget.max_cost),
                ("time", self.budget.max_seconds),
            )
            if limit is not None
        ]
        return [self.describe(name, elapsed) for name in names]

    def check(self) -> None:
        """Raise `BudgetExceeded` when the budget is spent."""
        reason = self.exhausted()
        if reason:
            raise BudgetExceeded(reason)


class MeteredModel(WrapperModel):
    """`model`, with every attempt of every call checked against a run's meter before it starts, and counted.

    A structured call's answers are counted one by one as they arrive (see `orquestra.models.attempts`), so an
    instructor re-ask is judged on what the attempts before it spent.
    """

    def __init__(self, model: Model, meter: BudgetMeter) -> None:
        super().__init__(model)
        self.meter = meter

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Send `messages` if the budget allows, and count what the call cost."""
        self.meter.check()
        with metering(_Attempts(self.meter)):
            response = await self.wrapped.request(
                messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice
            )
        self.meter.add(response.usage)
        return response

    async def structured(
        self, messages: Sequence[Message], output_type: type[OutputT], *, max_retries: int = 2
    ) -> tuple[OutputT, Usage]:
        """A validated `output_type` if the budget allows; every attempt is checked first and counted."""
        self.meter.check()
        attempts = _Attempts(self.meter)
        try:
            with metering(attempts):
                result, usage = await self.wrapped.structured(messages, output_type, max_retries=max_retries)
        except Exception as error:
            spent = getattr(error, "usage", None)
            if not attempts.counted and isinstance(spent, Usage):
                self.meter.add(spent)
            raise
        if not attempts.counted:  # a model whose `structured` reports no attempts: count the call as a whole
            self.meter.add(usage)
        return result, usage

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Stream the answer if the budget allows (streams report no usage to count)."""
        self.meter.check()
        async for piece in self.wrapped.stream(messages):
            yield piece


class _Attempts:
    """A meter's view of the attempts of one call: each is checked first, and the answers counted as they come."""

    def __init__(self, meter: BudgetMeter) -> None:
        self.meter = meter
        self.counted = False

    def before_attempt(self) -> None:
        self.meter.check()

    def after_attempt(self, usage: Usage) -> None:
        self.meter.add(usage)
        self.counted = True
