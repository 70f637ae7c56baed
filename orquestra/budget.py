"""Budgets of tokens, cost and wall time for one run, as data.

The meter that holds a run to its budget is in `orquestra.budget_meter`; this module imports no model, so
that the settings (which carry a default budget) do not pull in the model layer, which reads the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from orquestra.exceptions import UserError


@dataclass(frozen=True)
class Budget:
    """Limits for one run; None means no limit."""

    max_tokens: int | None = None
    max_cost: float | None = None
    """US dollars."""
    max_seconds: float | None = None
    near: float = 0.9
    """The share of a limit at which the loop stops starting new work."""

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_cost", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"budget: {name} must be positive, got {value}")
        if not 0 < self.near <= 1:
            raise UserError(f"budget: near must be in (0, 1], got {self.near}")

    @property
    def unlimited(self) -> bool:
        """True when no limit is set."""
        return self.max_tokens is None and self.max_cost is None and self.max_seconds is None
