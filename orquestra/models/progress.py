"""Text progress of a model call in flight, for callers that want signs of life from a long answer.

A caller sets `watching(callback)` around a call; a provider that can see its answer grow (the embedded
model, token by token) passes the text so far to the callback, on the caller's event loop. Providers that
cannot see it say nothing, and the call is the same either way. A context variable keeps this out of the
model interface: only the call made inside the `with` block is watched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Watcher = Callable[[str], None]
"""Receives the whole answer text so far, each time it grows."""

_watcher: ContextVar[Watcher | None] = ContextVar("orquestra_text_watcher", default=None)


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Send the text of model calls made inside the block to `watcher` as it grows."""
    token = _watcher.set(watcher)
    try:
        yield
    finally:
        _watcher.reset(token)


def current_watcher() -> Watcher | None:
    """The watcher of the call being made, if any."""
    return _watcher.get()
