"""Tool calls that a model wrote as text instead of through its provider's tool-call channel.

Small models, and OpenAI-compatible servers that do not parse tool calls (llama.cpp's, for one), answer a
request with tools in text: Qwen/Hermes ``<tool_call>`` tags, ``<name>``/``<arguments>`` or
``<function=...>`` tags, a JSON object or a fenced JSON block naming a tool, a list of them, or a
Python-style ``calculate(expression="12*7")``. `read_text_calls` finds them so
that the agent loop can execute them like native calls. What it finds falls in three kinds:

- `calls`: calls of known tools with arguments that are a JSON object, ready to run;
- `problems`: text that is clearly a call but cannot run (an unknown tool, arguments that are not an
  object), each with the reason to send back to the model;
- nothing: the text is an answer.

Only text whose whole point is the call counts: a JSON object must be the whole answer, a fenced block, a
tagged call, or a line of its own that calls a known tool, so an answer that merely mentions a tool by name is
left alone.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orquestra.models.base import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
# `<name>calculator</name><arguments>{...}</arguments>` (seen from Qwen through llama.cpp's server) and
# Llama 3.1's `<function=calculator>{...}</function>`: a name tag, then the arguments as a JSON object.
_NAME_TAGS = re.compile(
    r"(?:<name>\s*([\w\-]+)\s*</name>\s*<arguments>|<function=([\w\-]+)>)\s*(\{.*?\})\s*(?:</arguments>|</function>|$)",
    re.DOTALL,
)
_FENCED = re.compile(r"```[ \t]*(?:json|JSON|tool_call|python|py)?[ \t]*\n?(.*?)```", re.DOTALL)
_PYTHON_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\((.*)\)\s*;?\s*$", re.DOTALL)

# The keys small models put a tool's name and its arguments under, seen across Qwen, Llama, Mistral and
# ReAct-style prompts: {"tool": ..., "arguments": ...}, {"name": ..., "parameters": ...},
# {"function": {"name": ..., "arguments": "..."}}, {"action": ..., "action_input": ...}, ...
_NAME_KEYS = ("tool", "name", "tool_name", "function", "action", "recipient_name")
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input", "tool_input", "action_input", "params")


@dataclass(frozen=True)
class TextCalls:
    """What a text holds in the way of tool calls."""

    calls: tuple[ToolCall, ...] = ()
    """Calls of known tools, with arguments that are a JSON object."""
    problems: tuple[str, ...] = ()
    """Why calls the text clearly makes cannot run: one line each, written for the model to read."""
    names: tuple[str, ...] = ()
    """The tool names the text tries to call, known or not."""

    def __bool__(self) -> bool:
        return bool(self.calls or self.problems)


def read_text_calls(text: str, tools: Mapping[str, Mapping[str, Any]] | Collection[str]) -> TextCalls:
    """The tool calls written in `text`, given the tools available (names, or names to argument schemas).

    An empty `tools` still detects calls (as problems): an agent with no tools that answers with a call has
    not answered.
    """
    known = set(tools)
    schemas: Mapping[str, Mapping[str, Any]] = tools if isinstance(tools, Mapping) else {}
    calls: list[ToolCall] = []
    problems: list[str] = []
    names: list[str] = []
    for name, arguments in _candidates(text, known):
        names.append(name)
        if name not in known:
            available = ", ".join(sorted(known)) or "none"
            problems.append(f"there is no tool named '{name}' (tools you may call: {available})")
        elif isinstance(arguments, str):
            problems.append(f"the arguments of '{name}' must be a JSON object, not {arguments!r:.80}")
        else:
            calls.append(ToolCall(f"call_{uuid.uuid4().hex[:12]}", name, _named(arguments, schemas.get(name))))
    return TextCalls(tuple(calls), tuple(problems), tuple(names))


def _candidates(text: str, known: set[str]) -> Iterator[tuple[str, dict[str, Any] | list[Any] | str]]:
    """Each (tool name, arguments) the text writes as a call; arguments may be positional (a list)."""
    stripped = text.strip()
    if not stripped:
        return
    named = _NAME_TAGS.findall(stripped)
    if named:
        for tag_name, function_name, arguments in named:
            parsed = _json(arguments)
            yield tag_name or function_name, parsed if isinstance(parsed, dict) else arguments
        return
    tagged = _TAGGED.findall(stripped)
    blocks = tagged or _FENCED.findall(stripped)
    if not blocks:
        blocks = [stripped]
    for block in blocks:
        yield from _calls_in(block.strip(), known)


def _calls_in(block: str, known: set[str]) -> Iterator[tuple[str, dict[str, Any] | list[Any] | str]]:
    data = _json(block)
    if data is not None:
        for item in data if isinstance(data, list) else [data]:
            call = _json_call(item, known)
            if call is not None:
                yield call
        return
    # One call per line, Python style (`calculate(expression="12*7")`) or a JSON object after some prose
    # (`Here it is:` then `{"tool": "calculator", ...}`). Only a known tool counts: a plain answer may well
    # contain a line like `f(x)` or a line of JSON data.
    for line in block.splitlines():
        data = _json(line.strip())
        call = _json_call(data, known) if isinstance(data, dict) else _python_call(line, known)
        if call is not None and call[0] in known:
            yield call


def _json(block: str) -> Any:
    if not block.startswith(("{", "[")):
        return None
    try:
        return json.loads(block)
    except (ValueError, RecursionError):  # nested thousands deep: not a call anyone means
        return None


def _json_call(item: Any, known: set[str]) -> tuple[str, dict[str, Any] | list[Any] | str] | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # {"type": "function", "function": {"name": ..., "arguments": ...}}
        return _json_call(item["function"], known)
    name_key = next((key for key in _NAME_KEYS if isinstance(item.get(key), str)), None)
    argument_key = next((key for key in _ARGUMENT_KEYS if key in item), None)
    if name_key is None:
        # {"calculator": {"expression": "..."}}: the tool's name as the only key.
        if len(item) == 1:
            (only, value), *_ = item.items()
            if only in known and isinstance(value, dict):
                return only, value
        return None
    name = str(item[name_key])
    # Only an unmistakable call shape counts for a name we do not know: {"name": "Ada", "age": 3} is data.
    unmistakable = name_key != "name" or argument_key is not None
    if name not in known and (not unmistakable or "answer" in item):
        return None
    if argument_key is None:
        # {"name": "write_file", "path": ..., "content": ...}: the arguments beside the name.
        arguments: Any = {key: value for key, value in item.items() if key != name_key}
    else:
        arguments = item[argument_key]
    if isinstance(arguments, str):
        parsed = _json(arguments.strip())
        arguments = parsed if isinstance(parsed, dict) else arguments
    if arguments is None:
        arguments = {}
    return name, arguments


def _python_call(line: str, known: set[str]) -> tuple[str, dict[str, Any] | list[Any]] | None:
    match = _PYTHON_CALL.match(line)
    if match is None or match.group(1) not in known:
        return None
    source = line.strip().rstrip(";")
    try:
        node = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # MemoryError: the parser's stack, not RAM
        # `calculate(12*7 + 3)` without quotes: the whole inside is the one argument.
        return match.group(1), [match.group(2).strip()]
    if not isinstance(node, ast.Call):
        return None
    positional: list[Any] = []
    for argument in node.args:
        positional.append(_literal(argument, source))
    named = {keyword.arg: _literal(keyword.value, source) for keyword in node.keywords if keyword.arg}
    if positional and not named:
        return match.group(1), positional
    return match.group(1), named | ({"": positional} if positional else {})


def _literal(node: ast.expr, source: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, MemoryError, RecursionError):
        # An expression such as 12*7, passed on as the text the model wrote.
        return ast.get_source_segment(source, node) or ast.unparse(node)


def _named(arguments: dict[str, Any] | list[Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments by name: positional ones take the schema's required parameters, then the others, in order."""
    if isinstance(arguments, dict) and "" not in arguments:
        return arguments
    positional = arguments if isinstance(arguments, list) else arguments.pop("")
    if not isinstance(positional, list):  # a JSON object's own "" key, not the positional arguments of a call
        positional = [positional]
    named = {} if isinstance(arguments, list) else dict(arguments)
    properties = list((schema or {}).get("properties", {}))
    required = [name for name in (schema or {}).get("required", []) if name in properties]
    order = required + [name for name in properties if name not in required and name not in named]
    for name, value in zip((name for name in order if name not in named), positional, strict=False):
        named[name] = value
    return named
