"""Running a synchronous tool off the event loop, in a thread that cannot outlive the process's wish to exit.

Not `asyncio.to_thread`: the threads of an executor are joined when the interpreter exits (and `asyncio.run`
waits for the default executor's), so one tool that never returns would keep a finished run's process alive,
long after its task timed out; and stuck tools would use up the pool that the store and memory share.
A daemon thread of its own per call has neither problem. Awaiting the call can be cancelled (a task's timeout
does): the thread then runs on unobserved until the tool returns, and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_in_thread(function: Callable[[], T], *, name: str = "orquestra-tool") -> T:
    """Call `function` in a new daemon thread and await what it returns or raises."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            result = context.run(function)
        except Exception as error:
            _deliver(loop, _set_exception, future, error)
        except BaseException as error:  # SystemExit from a tool must not end the run: report it as a failure
            _deliver(loop, _set_exception, future, RuntimeError(f"the tool raised {type(error).__name__}"))
        else:
            _deliver(loop, _set_result, future, result)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future


def _deliver(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *arguments: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *arguments)
    except RuntimeError:  # the loop closed while the tool ran: nobody waits for it any more
        pass


def _set_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # a cancelled wait (the task timed out) wants nothing
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
