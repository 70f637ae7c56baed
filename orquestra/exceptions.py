"""Every exception Orquestra raises on purpose, in one place.

`OrquestraError` is the root. Errors that come from a user's input (a graph file, a registry card, a flag)
derive from `UserError`, whose message is one line: the CLI prints it and exits non-zero, never a traceback.
Every message is redacted when the error is made (see `orquestra.redaction`): no configured secret reaches a
log, a run record or a terminal through an error, whatever a provider echoed.
"""

from __future__ import annotations

from typing import Any

from orquestra.redaction import redact
from orquestra.safe_text import clean


class OrquestraError(Exception):
    """Root of all Orquestra errors; `message` is the redacted message."""

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message


class UserError(OrquestraError):
    r"""A mistake in something the user gave us: a file, a flag, a card, a graph.

    Its message is one line, whatever the input held: a newline, a tab or any other control character in a
    field name or a value it quotes is written as an escape (``\n``, ``\x1b``; see `orquestra.safe_text`).
    """

    def __init__(self, message: str) -> None:
        super().__init__(clean(message, one_line=True))


class GraphError(UserError, ValueError):
    """A task graph or a patch that fails a check: the message names the problem and the task ids involved.

    It is also a `ValueError`, so that pydantic validators (and instructor retries) treat it as a
    validation failure whose message goes back to the model.
    """


class PatchRefused(GraphError):
    """A patch that would change a task which has already started or finished."""


class RegistryError(UserError):
    """An agent or tool card that cannot be loaded: the message names the file and the field."""


class DispatchError(UserError):
    """No agent in the registry can take a task."""


class PlanningError(UserError):
    """The planner could not produce a valid graph, even after re-asking and repair."""


class ManifestError(UserError):
    """A manifest that cannot be loaded or run: the message names the file, the line and the field."""


class MemoryUnavailable(UserError):
    """The memory folder cannot be used: damaged, unreadable, not a folder, or the embedding model missing."""


class UnknownRun(UserError, LookupError):
    """No recorded run has this id (or prefix), or the prefix matches several runs."""


class UnknownApproval(UserError, LookupError):
    """No task of this run asked for approval under this id."""


class Refused(OrquestraError):
    """A person refused a task: it fails for good, and no patch may remove or replace it."""


class ApprovalRejected(Refused):
    """A person rejected a task (or no decision came in time): the task fails and its dependents are skipped."""


class TransientError(OrquestraError):
    """A failure worth retrying (rate limit, timeout, dropped connection).

    Raise it (or a subclass) from a task to ask the engine to retry with backoff. `retry_after` is the
    delay in seconds the other side asked for, if it said one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TaskTimeout(TransientError):
    """One attempt of a task ran past its timeout."""


class ModelError(OrquestraError):
    """A model call failed for good: the provider refused it, or retries and fallbacks ran out."""


class ModelUnavailable(ModelError, TransientError):
    """A provider failure worth retrying: rate limit (429), server error (5xx), timeout, dropped connection.

    `retry_after` carries the provider's Retry-After, in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        TransientError.__init__(self, message, retry_after=retry_after)


class MalformedResponse(ModelError, TransientError):
    """A provider answered, but not with a body that can be read: not JSON, or not the API's shape.

    A proxy's error page or an overloaded server writes such bodies now and then, so the call is worth
    retrying like a `ModelUnavailable` one; it is not a refusal of the request.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        TransientError.__init__(self, message, retry_after=retry_after)


class ContextLengthExceeded(ModelError):
    """The request did not fit the model's context window."""


class InvalidOutput(ModelError):
    """A model's structured answer did not validate, even after the validation error was sent back.

    `raw` is the model's last answer as text (for a deterministic repair to work on), `usage` what every
    attempt cost (a `Usage`).
    """

    def __init__(self, message: str, *, raw: str | None = None, usage: Any = None) -> None:
        super().__init__(message)
        self.raw = None if raw is None else redact(raw)
        self.usage = usage


class CheckFailed(ModelError):
    """An agent's answers to a task failed their checks, also after being told why."""


class ModelConfigError(UserError):
    """A model that cannot be used as configured: unknown provider, missing key or package, bad option."""


class StopRun(OrquestraError):
    """Raised from a task to end the run on purpose: the task is cancelled, not failed, and nothing new starts."""

    status = "stopped"
    """The `RunStatus` value the run ends with."""


class BudgetExceeded(StopRun):
    """A run's budget of tokens, cost or time is spent: no new model call may start."""

    status = "out_of_budget"


class ReaskRefused(InvalidOutput, BudgetExceeded):
    """A structured answer did not validate, and the budget allows no attempt to ask again.

    Both what it derives from hold: as an `InvalidOutput` it carries the last answer (`raw`) for a
    deterministic repair to work on, and as a `BudgetExceeded` it ends a run's work when nothing catches it.
    """

    status = BudgetExceeded.status


class ScriptExhausted(OrquestraError):
    """A scripted model was asked for more answers than it was given."""


class ReplanError(OrquestraError):
    """The replanner's model could not produce a valid patch of the plan."""


class ToolError(OrquestraError):
    """A tool refused or failed; the message goes back to the model as the tool's result."""


def describe_validation_error(error: Any) -> str:
    """One readable line from a pydantic `ValidationError`: each problem as ``field 'where': what``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"field '{where}': {message}" if where else message)
    return "; ".join(parts)
