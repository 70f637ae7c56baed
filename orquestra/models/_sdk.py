"""What the adapters over an official provider SDK (OpenAI's, Anthropic's) share.

Both SDKs are generated alike: the same client options, the same exception classes under the same names. So
one base class reads the key and the base URL, turns every SDK failure into Orquestra's error (redacted, never
chained to the SDK's, whose message may hold what the provider echoed), and counts each attempt of a
structured call with the run's budget. An adapter says how its provider's answers are read.
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from orquestra.exceptions import MalformedResponse, ModelError, ModelUnavailable, OrquestraError
from orquestra.models._http import HTTPStatusError, status_error
from orquestra.models.base import FREE, Attempts, Model, OutputT, Price, Usage, instructed
from orquestra.redaction import register_secret

AnswerT = TypeVar("AnswerT")


class SDKErrors(NamedTuple):
    """One SDK's exception classes, by what went wrong."""

    base: type[Exception]
    """What every exception of the SDK is."""
    timeout: type[Exception]
    connection: type[Exception]
    """A connection that failed; `timeout` is one of these, and is told apart first."""
    status: type[HTTPStatusError]
    unreadable: type[Exception]
    """A body the SDK could not validate."""


class SDKModel(Model, Generic[AnswerT]):
    """A model behind a provider's HTTP API, through the provider's official SDK.

    Subclasses name their provider's SDK exceptions and environment variables, build a client per call (so
    that no socket outlives a call or the event loop it ran on: `run_sync` may use several loops), and say
    how one answer (`AnswerT`) is checked, counted and read. The SDKs never retry: `RetryingModel` does.
    """

    provider: ClassVar[str]
    """The prefix of the model string, e.g. ``"openai"``."""
    key_variable: ClassVar[str]
    """The environment variable holding the key, named when the provider refuses it."""
    base_url_variable: ClassVar[str]
    api_host: ClassVar[str]
    """Where the provider's own API is served, for `describe`."""
    api_title: ClassVar[str]
    """The provider's API in words, for a connection that fails."""
    sdk_errors: ClassVar[SDKErrors]
    needs_retries = True  # a hosted API: connections drop, rate limits and overloads pass

    model_name: str
    base_url: str | None
    timeout: float

    def __init__(
        self, model_name: str, *, api_key: str | None, base_url: str | None, price: Price | None, timeout: float
    ) -> None:
        self.name = f"{self.provider}:{model_name}"
        self.model_name = model_name
        self.base_url = base_url or os.environ.get(self.base_url_variable) or None
        key = api_key or os.environ.get(self.key_variable)
        self._api_key = self._usable_key(key)
        register_secret(key)
        self.price = price or FREE
        self.timeout = timeout

    @abstractmethod
    def _usable_key(self, key: str | None) -> str:
        """The key to send, given the one configured (if any); `ModelConfigError` when the provider needs one."""

    @abstractmethod
    def _readable(self, answer: object) -> AnswerT:
        """`answer` if it is one the provider's API would send, else `MalformedResponse` (the SDK checks nothing)."""

    @abstractmethod
    def _usage(self, answer: AnswerT) -> Usage:
        """The priced usage of one answer."""

    @abstractmethod
    def _raw_text(self, answer: AnswerT) -> str | None:
        """The answer as the model wrote it: the input of its first tool call, else its text."""

    def describe(self) -> str:
        """One line for the CLI: the model and where it is served."""
        return f"{self.name} at {self.base_url or self.api_host}"

    def _translated(self) -> _Translated:
        """A block whose SDK failures come out as Orquestra's errors (see `_error`)."""
        return _Translated(self)

    async def _instructed(
        self, output_type: type[OutputT], send: Callable[..., Awaitable[object]], **options: Any
    ) -> tuple[OutputT, Usage]:
        """An `output_type` object from instructor sending its requests with `send` (the SDK client's create).

        Each attempt is cleared with the run's budget before it is sent, and its answer checked and counted;
        `options` go to `instructed` (the mode, `max_retries`, and the request).
        """
        attempts = Attempts()

        async def attempt(**request: Any) -> AnswerT:
            attempts.start()
            with self._translated():
                answer = self._readable(await send(**request))
            attempts.answered(self._usage(answer), self._raw_text(answer))
            return answer

        return await instructed(self.name, output_type, attempt, attempts, **options)

    def _error(self, error: Exception) -> OrquestraError:
        """The Orquestra error for an SDK failure; never shows the key."""
        errors = self.sdk_errors
        if isinstance(error, errors.timeout):
            return ModelUnavailable(f"{self.name}: no answer within {self.timeout:g} s")
        if isinstance(error, errors.connection):
            return ModelUnavailable(f"{self.name}: cannot reach {self.base_url or self.api_title} ({error})")
        if isinstance(error, errors.status):
            return status_error(self.name, error, key_variable=self.key_variable, secret=self._api_key)
        if isinstance(error, json.JSONDecodeError | errors.unreadable):
            return MalformedResponse(f"{self.name}: the server's answer is not valid JSON ({error})")
        return ModelError(f"{self.name}: {type(error).__name__}: {error}")


class _Translated:
    """Raises `model._error(...)` for an SDK failure (or a body that is not JSON) inside the block."""

    def __init__(self, model: SDKModel[Any]) -> None:
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if isinstance(error, self.model.sdk_errors.base | json.JSONDecodeError):
            raise self.model._error(error) from None
