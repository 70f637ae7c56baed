"""The one backoff rule shared by the engine's task retries and the model wrapper's call retries."""

from __future__ import annotations

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_exponential_jitter


class BackoffWait(wait_base):
    """Exponential backoff with jitter that never waits less than the error's own `retry_after`.

    A provider that says "Retry-After: 7" is obeyed even when the exponential delay would be shorter; the
    cap `max_delay` bounds only our own guess.
    """

    def __init__(self, initial_delay: float, max_delay: float, jitter: float) -> None:
        self._exponential = wait_exponential_jitter(multiplier=initial_delay, max=max_delay, jitter=jitter)

    def __call__(self, retry_state: RetryCallState) -> float:
        """Seconds to wait before the next attempt."""
        delay: float = self._exponential(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return max(delay, float(retry_after)) if retry_after else delay
