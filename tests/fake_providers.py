"""Fake OpenAI and Anthropic HTTP servers on 127.0.0.1, for tests that go through the real SDKs.

    with FakeOpenAI() as server:
        server.reply_text("hello")
        model = OpenAIModel("gpt-test", api_key="sk-test", base_url=server.base_url)
        ...
        assert server.requests[0]["model"] == "gpt-test"

Each server listens on a free port in a background thread and answers POST /v1/chat/completions (OpenAI) or
POST /v1/messages (Anthropic), as JSON or, when the request says ``"stream": true``, as the provider's
server-sent events. Answers come from a queue filled with `reply_*` (or `reply(...)` with the module's reply
builders), or from a `responder` function of the request body, for multi-call scenarios. Every request body
is recorded in `requests` (its headers in `headers`). `reply_json` answers as a call of the tool the request
forces, if it forces one (instructor's tool mode, Anthropic's JSON answers), else as text.

For a subprocess or the CLI, `server.env()` gives the environment variables that point the SDK at the fake.
A responder that raises makes the server answer 500 and re-raise the error when the `with` block ends.

`Faults(responder)` wraps a responder so that a share of the requests (30% by default) get a fault instead:
an HTTP 429, 500 or 503, a dropped connection, a body that is not JSON or not the API's shape, or an answer
too slow for the client's timeout; `faults.injected` counts what it sent.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_NO_JSON = object()


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call in a scripted reply; `arguments` as a str is sent as is (to script broken JSON)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted answer: text and/or tool calls, JSON, an HTTP error, or a raw body."""

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    json_value: Any = _NO_JSON
    input_tokens: int = 10
    output_tokens: int = 5
    finish_reason: str | None = None
    """The provider's own value (``"length"``, ``"max_tokens"``...); by default it follows the content."""
    status: int = 200
    message: str = ""
    """An error's message (when `status` >= 400)."""
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """A body sent as is, with `content_type`, instead of a rendered one."""
    content_type: str = "application/json"
    chunks: tuple[str, ...] | None = None
    """The text deltas of a streamed answer; by default the text is split into words."""
    stream_error: str | None = None
    """An error type sent as an SSE error event after the first delta of a streamed answer."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    drop: bool = False
    """Close the connection without answering (a dropped connection)."""


Responder = Callable[[dict[str, Any]], "Reply | str"]


def text(value: str, *, input_tokens: int = 10, output_tokens: int = 5, **options: Any) -> Reply:
    """A text answer."""
    return Reply(text=value, input_tokens=input_tokens, output_tokens=output_tokens, **options)


def tool_call(name: str, arguments: dict[str, Any] | str, *, id: str | None = None, **options: Any) -> Reply:
    """An answer that calls one tool."""
    return Reply(tool_calls=(FakeToolCall(name, arguments, id),), **options)


def tool_calls(*calls: FakeToolCall, **options: Any) -> Reply:
    """An answer that calls several tools."""
    return Reply(tool_calls=calls, **options)


def json_reply(value: Any, **options: Any) -> Reply:
    """A JSON answer: the input of the tool the request forces, if any, else the text."""
    return Reply(json_value=value, **options)


def error(status: int, message: str = "", *, headers: dict[str, str] | None = None, **options: Any) -> Reply:
    """An HTTP error in the provider's error format."""
    return Reply(status=status, message=message or f"fake error {status}", headers=headers or {}, **options)


def raw(body: bytes | str, *, status: int = 200, content_type: str = "application/json") -> Reply:
    """A body sent as is, e.g. malformed JSON."""
    payload = body.encode() if isinstance(body, str) else body
    return Reply(raw=payload, status=status, content_type=content_type)


def dropped() -> Reply:
    """No answer at all: the server closes the connection."""
    return Reply(drop=True)


FAULTS: dict[str, Callable[[float], Reply]] = {
    "429": lambda slow: error(429, "Rate limit reached", headers={"Retry-After": "0"}),
    "500": lambda slow: error(500, "The server had an error while processing your request."),
    "503": lambda slow: error(503, "Service Unavailable"),
    "dropped connection": lambda slow: dropped(),
    "truncated JSON": lambda slow: raw('{"id": "chatcmpl-1", "choices": ['),
    "HTML page": lambda slow: raw("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    "wrong shape": lambda slow: raw('{"unexpected": true}'),
    "timeout": lambda slow: text("too late", delay=slow),
}
"""Each kind of fault `Faults` injects, given the delay that outlasts the client's timeout."""


class Faults:
    """A responder that answers `rate` of the requests with a fault (a kind of `FAULTS`, at random) instead.

    The draws come from a generator seeded with `seed`, so a run that sends its requests in the same order
    meets the same faults. `slow` is the delay of a "timeout" fault: longer than the client's timeout.
    """

    def __init__(self, responder: Responder, *, rate: float = 0.3, seed: int = 0, slow: float = 1.0) -> None:
        self.responder = responder
        self.rate = rate
        self.slow = slow
        self.injected: Counter[str] = Counter()
        """How many faults of each kind were sent."""
        self.answered = 0
        """How many requests got a real answer."""
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply | str:
        with self._lock:
            kind = self._random.choice(sorted(FAULTS)) if self._random.random() < self.rate else None
            if kind is None:
                self.answered += 1
            else:
                self.injected[kind] += 1
        return self.responder(request) if kind is None else FAULTS[kind](self.slow)


class FakeServer:
    """The provider-neutral part: the HTTP server, the reply queue and the record of requests."""

    path = ""
    """The path suffix this provider answers on."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        """Every request body received, parsed from JSON."""
        self.headers: list[dict[str, str]] = []
        """The headers of every request, lower-cased names."""
        self.errors: list[BaseException] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Scripting

    def reply(self, *replies: Reply | str) -> None:
        """Queue replies (a str is a text reply), answered in order."""
        with self._lock:
            self._queue.extend(text(item) if isinstance(item, str) else item for item in replies)

    def reply_text(self, value: str, **options: Any) -> None:
        """Queue a text answer."""
        self.reply(text(value, **options))

    def reply_tool_call(self, name: str, arguments: dict[str, Any] | str, **options: Any) -> None:
        """Queue an answer that calls one tool."""
        self.reply(tool_call(name, arguments, **options))

    def reply_json(self, value: Any, **options: Any) -> None:
        """Queue a JSON answer (a forced tool's input, or the text)."""
        self.reply(json_reply(value, **options))

    def reply_error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None) -> None:
        """Queue an HTTP error."""
        self.reply(error(status, message, headers=headers))

    def reply_raw(self, body: bytes | str, *, status: int = 200, content_type: str = "application/json") -> None:
        """Queue a body sent as is."""
        self.reply(raw(body, status=status, content_type=content_type))

    @property
    def pending(self) -> int:
        """Queued replies not yet sent."""
        with self._lock:
            return len(self._queue)

    # Lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What the SDK takes as its base URL."""
        return self.url

    def env(self, api_key: str | None = "sk-fake") -> dict[str, str]:
        """Environment variables pointing the provider's SDK (and Orquestra) at this server."""
        raise NotImplementedError

    def start(self) -> FakeServer:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and join every thread."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.end_connections()
        self._httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> None:
        self.stop()
        if kind is None and self.errors:
            raise AssertionError(f"{type(self).__name__} failed while answering: {self.errors[0]!r}") from self.errors[
                0
            ]

    # Answering

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """Status, headers and body for one request (called from the server's threads); None to hang up."""
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            request = {"_raw": body.decode(errors="replace")}
        with self._lock:
            self.requests.append(request)
            self.headers.append({name.lower(): value for name, value in headers.items()})
            number = len(self.requests)
        if not path.rstrip("/").endswith(self.path):
            return self._error(error(404, f"{type(self).__name__}: no route for {path}"))
        try:
            reply = self._next_reply(request, number)
        except Exception as failure:  # re-raised by __exit__
            self.errors.append(failure)
            return self._error(error(500, f"{type(self).__name__}: the responder failed: {failure!r}"))
        if reply.delay:
            self._stopping.wait(reply.delay)  # cut short by stop(), so that a timeout test does not wait it out
        if reply.drop:
            return None
        if reply.raw is not None:
            return reply.status, {"Content-Type": reply.content_type, **reply.headers}, reply.raw
        if reply.status >= 400:
            return self._error(reply)
        reply = self._resolve_json(reply, request)
        if request.get("stream"):
            return 200, {"Content-Type": "text/event-stream", **reply.headers}, self._stream(reply, request)
        return (
            200,
            {"Content-Type": "application/json", **reply.headers},
            json.dumps(self._body(reply, request)).encode(),
        )

    def _next_reply(self, request: dict[str, Any], number: int) -> Reply:
        if self.responder is not None:
            answer = self.responder(request)
            return text(answer) if isinstance(answer, str) else answer
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return error(400, f"{type(self).__name__}: no reply scripted for request #{number}")

    def _resolve_json(self, reply: Reply, request: dict[str, Any]) -> Reply:
        if reply.json_value is _NO_JSON:
            return reply
        forced = self.forced_tool(request)
        if forced is None:
            return replace(reply, text=json.dumps(reply.json_value), json_value=_NO_JSON)
        return replace(reply, tool_calls=(FakeToolCall(forced, reply.json_value),), json_value=_NO_JSON)

    def _error(self, reply: Reply) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(self._error_body(reply)).encode()
        return reply.status, {"Content-Type": "application/json", **reply.headers}, body

    # The provider's formats

    def forced_tool(self, request: dict[str, Any]) -> str | None:
        """The tool a request body makes the model call, if it makes it call one."""
        raise NotImplementedError

    def tool_results(self, request: dict[str, Any]) -> list[str]:
        """The contents of the tool results in the last turn of a request body, in order."""
        raise NotImplementedError

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    def _body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _stream(self, reply: Reply, request: dict[str, Any]) -> bytes:
        raise NotImplementedError


class FakeOpenAI(FakeServer):
    """A fake of OpenAI's chat completions API; use `base_url` (``.../v1``) as the SDK's base URL."""

    path = "/chat/completions"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def env(self, api_key: str | None = "sk-fake") -> dict[str, str]:
        """`OPENAI_BASE_URL`, and `OPENAI_API_KEY` unless `api_key` is None."""
        return {"OPENAI_BASE_URL": self.base_url, **({"OPENAI_API_KEY": api_key} if api_key else {})}

    def forced_tool(self, request: dict[str, Any]) -> str | None:
        """The function `tool_choice` names."""
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            return str(choice["function"]["name"])
        return None

    def tool_results(self, request: dict[str, Any]) -> list[str]:
        """The `tool` messages that end the conversation: one per call of the turn before."""
        results: list[str] = []
        for message in reversed(request.get("messages", [])):
            if message.get("role") != "tool":
                break
            results.insert(0, message["content"])
        return results

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kind = reply.error_type or _OPENAI_ERROR_TYPES.get(reply.status, "api_error")
        return {"error": {"message": reply.message, "type": kind, "param": None, "code": None}}

    def _body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [_openai_call(call, index) for index, call in enumerate(reply.tool_calls)]
        elif not reply.text:
            message["content"] = ""
        return {
            **_openai_head(request, "chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": _openai_finish(reply), "logprobs": None}],
            "usage": _openai_usage(reply),
        }

    def _stream(self, reply: Reply, request: dict[str, Any]) -> bytes:
        head = _openai_head(request, "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        for number, piece in enumerate(_pieces(reply)):
            events.append(chunk({"content": piece}))
            if number == 0 and reply.stream_error:
                events.append({"error": {"message": "fake stream error", "type": reply.stream_error}})
        for index, call in enumerate(reply.tool_calls):
            events.append(chunk({"tool_calls": [{"index": index, **_openai_call(call, index)}]}))
        events.append(chunk({}, _openai_finish(reply)))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**head, "choices": [], "usage": _openai_usage(reply)})
        return b"".join(_sse(None, event) for event in events) + b"data: [DONE]\n\n"


class FakeAnthropic(FakeServer):
    """A fake of Anthropic's Messages API; use `base_url` (no ``/v1``) as the SDK's base URL."""

    path = "/v1/messages"

    def env(self, api_key: str | None = "sk-ant-fake") -> dict[str, str]:
        """`ANTHROPIC_BASE_URL`, and `ANTHROPIC_API_KEY` unless `api_key` is None."""
        return {"ANTHROPIC_BASE_URL": self.base_url, **({"ANTHROPIC_API_KEY": api_key} if api_key else {})}

    def forced_tool(self, request: dict[str, Any]) -> str | None:
        """The tool `tool_choice` names, or the last tool when it says `any` (the answer tool, in these tests)."""
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "tool":
            return str(choice["name"])
        if isinstance(choice, dict) and choice.get("type") == "any" and request.get("tools"):
            return str(request["tools"][-1]["name"])  # `any` with JSON scripted: the last tool, the answer one
        return None

    def tool_results(self, request: dict[str, Any]) -> list[str]:
        """The `tool_result` blocks of the last message: the results of one turn travel in one user message."""
        messages = request.get("messages") or [{}]
        content = messages[-1].get("content")
        blocks = content if isinstance(content, list) else []
        return [block["content"] for block in blocks if block.get("type") == "tool_result"]

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kind = reply.error_type or _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.message}}

    def _body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        content += [_anthropic_call(call, index) for index, call in enumerate(reply.tool_calls)]
        return {
            **_anthropic_head(request),
            "content": content,
            "stop_reason": _anthropic_finish(reply),
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    def _stream(self, reply: Reply, request: dict[str, Any]) -> bytes:
        start = {
            **_anthropic_head(request),
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
        }
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        index = 0
        if reply.text or not reply.tool_calls:
            block: dict[str, Any] = {"type": "text", "text": ""}
            events.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
            events.append(("ping", {"type": "ping"}))
            for number, piece in enumerate(_pieces(reply)):
                delta = {"type": "text_delta", "text": piece}
                events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
                if number == 0 and reply.stream_error:
                    failure = {"type": reply.stream_error, "message": "fake stream error"}
                    events.append(("error", {"type": "error", "error": failure}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for offset, call in enumerate(reply.tool_calls):
            block = {**_anthropic_call(call, offset), "input": {}}
            arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events += [
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
            index += 1
        finish = {"stop_reason": _anthropic_finish(reply), "stop_sequence": None}
        usage = {"output_tokens": reply.output_tokens}
        events.append(("message_delta", {"type": "message_delta", "delta": finish, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return b"".join(_sse(name, data) for name, data in events)


# Format helpers

_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "not_found",
    429: "rate_limit_exceeded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _pieces(reply: Reply) -> Iterable[str]:
    return reply.chunks if reply.chunks is not None else re.findall(r"\s*\S+|\s+$", reply.text)


def _sse(event: str | None, data: dict[str, Any]) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {json.dumps(data)}\n\n".encode()


def _openai_head(request: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": kind, "created": 1_700_000_000, "model": request.get("model", "fake")}


def _openai_call(call: FakeToolCall, index: int) -> dict[str, Any]:
    arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return {
        "id": call.id or f"call_{index}",
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _openai_finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _openai_usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens, "total_tokens": total}


def _anthropic_head(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "fake"),
        "stop_sequence": None,
    }


def _anthropic_call(call: FakeToolCall, index: int) -> dict[str, Any]:
    arguments = json.loads(call.arguments) if isinstance(call.arguments, str) else call.arguments
    return {"type": "tool_use", "id": call.id or f"toolu_{index}", "name": call.name, "input": arguments}


def _anthropic_finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")


# The HTTP server


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that can end its open keep-alive connections and join its threads on close."""

    daemon_threads = False  # server_close() joins them: no thread outlives the test
    block_on_close = True
    request_queue_size = 128  # many clients at once (concurrent runs) must not be refused by a full backlog

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """Wake handlers blocked on idle keep-alive connections, so that they end."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a timeout test) is not a server failure; responder errors are kept apart


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect; every answer has a Content-Length
    server: _HTTPServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.fake.answer(self.path, dict(self.headers.items()), body)
        if answer is None:  # a dropped connection: close it without a word
            self.close_connection = True
            return
        status, headers, payload = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `server.requests` instead


def free_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (to test refused connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def iter_tool_results(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The `tool_result` blocks of an Anthropic request body, in order."""
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            yield from (block for block in content if block.get("type") == "tool_result")
