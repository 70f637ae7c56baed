"""HTTP error handling shared by the provider adapters: status codes to Orquestra errors, Retry-After, SSL."""

from __future__ import annotations

import email.utils
import functools
import re
import ssl
import time
from collections.abc import Mapping
from typing import Protocol

import httpx2

from orquestra.exceptions import ContextLengthExceeded, ModelConfigError, ModelError, ModelUnavailable, OrquestraError
from orquestra.redaction import REDACTED

_CONTEXT_EXCEEDED = re.compile(
    r"context.{0,3}(length|window|limit)|maximum context|prompt is too long|too many tokens"
    r"|(maximum|max).{0,20}tokens.{0,40}exceed|exceed.{0,40}(maximum|max).{0,20}tokens",
    re.IGNORECASE,
)
_KEY_LIKE = re.compile(r"\bsk-[\w*.-]{4,}")  # OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-) keys


class HTTPStatusError(Protocol):
    """What OpenAI's and Anthropic's `APIStatusError` have in common."""

    status_code: int
    message: str
    body: object | None
    response: httpx2.Response


def status_error(model: str, error: HTTPStatusError, *, key_variable: str, secret: str) -> OrquestraError:
    """The Orquestra error for an HTTP error status from a provider's SDK (OpenAI's or Anthropic's).

    429, 408, 409 and 5xx are `ModelUnavailable` with the server's Retry-After; 401/403 a `ModelConfigError`;
    a request too long for the model `ContextLengthExceeded`; the rest `ModelError`. The message never carries
    the key, not even a masked part of it as OpenAI's 401 message does.
    """
    status: int = error.status_code
    message = _KEY_LIKE.sub(REDACTED, _api_message(error.body, str(error.message)).replace(secret, REDACTED))
    if status in (401, 403):
        return ModelConfigError(f"{model}: the API key was refused (HTTP {status}: {message}); check {key_variable}")
    if status in (408, 409, 429) or status >= 500:
        return ModelUnavailable(f"{model}: HTTP {status}: {message}", retry_after=retry_after(error.response.headers))
    code = error.body.get("code") if isinstance(error.body, dict) else None
    if status in (400, 413, 422) and (code == "context_length_exceeded" or _CONTEXT_EXCEEDED.search(message)):
        return ContextLengthExceeded(f"{model}: the request does not fit the context window: {message}")
    return ModelError(f"{model}: HTTP {status}: {message}")


def _api_message(body: object, fallback: str) -> str:
    """The human message in an error body: OpenAI's, Anthropic's or a compatible server's shape."""
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return str(inner["message"])
    if isinstance(inner, str) and inner.strip():
        return inner.strip()[:500]
    return fallback


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    try:
        if milliseconds := headers.get("retry-after-ms"):
            return max(0.0, float(milliseconds) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return float(value)
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None  # a header we cannot read is no reason to fail


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The SDK clients' default SSL context, built once: building it takes tens of ms of blocked event loop."""
    return httpx2.create_ssl_context()
