"""Tool calls written as text are found in every shape small models use, and data is not mistaken for one."""

from __future__ import annotations

import pytest

from orquestra.tools.textcalls import read_text_calls

TOOLS = {
    "calculator": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    "write_file": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
}


@pytest.mark.parametrize(
    "text",
    [
        '{"tool": "calculator", "arguments": {"expression": "12*7"}}',
        '{"name": "calculator", "arguments": {"expression": "12*7"}}',
        '{"name": "calculator", "parameters": {"expression": "12*7"}}',
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"12*7\\"}"}',
        '{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "12*7"}}}',
        '{"action": "calculator", "action_input": {"expression": "12*7"}}',
        '{"calculator": {"expression": "12*7"}}',
        '{"name": "calculator", "expression": "12*7"}',
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "12*7"}}\n</tool_call>',
        'I will compute it.\n```json\n{"tool": "calculator", "arguments": {"expression": "12*7"}}\n```',
        '```\n{"tool": "calculator", "arguments": {"expression": "12*7"}}\n```',
        '[{"tool": "calculator", "arguments": {"expression": "12*7"}}]',
        'calculator(expression="12*7")',
        'calculator("12*7")',
        "```python\ncalculator(12*7)\n```",
        '<tools>\n{"type": "function"}\n</tools>\n\n<name>calculator</name>\n<arguments>{"expression": "12*7"}',
        '<function=calculator>{"expression": "12*7"}</function>',
        'Here is the call.\n{"name": "calculator", "arguments": {"expression": "12*7"}}',
    ],
)
def test_every_shape_of_a_calculator_call_is_read(text):
    found = read_text_calls(text, TOOLS)
    assert not found.problems
    assert len(found.calls) == 1
    assert found.calls[0].name == "calculator"
    assert found.calls[0].arguments == {"expression": "12*7"}


def test_positional_arguments_take_the_required_parameters_in_order():
    found = read_text_calls('write_file("notes.md", "hello")', TOOLS)
    assert found.calls[0].arguments == {"path": "notes.md", "content": "hello"}


def test_several_tagged_calls_are_all_read():
    text = (
        '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>\n'
        '<tool_call>{"name": "write_file", "arguments": {"path": "a.txt", "content": "2"}}</tool_call>'
    )
    assert [call.name for call in read_text_calls(text, TOOLS).calls] == ["calculator", "write_file"]


def test_an_unknown_tool_is_a_problem_naming_the_tools_that_exist():
    found = read_text_calls('{"tool": "web_search", "arguments": {"query": "x"}}', TOOLS)
    assert not found.calls
    assert found.problems == ("there is no tool named 'web_search' (tools you may call: calculator, write_file)",)
    assert found.names == ("web_search",)


def test_arguments_that_are_not_an_object_are_a_problem():
    found = read_text_calls('{"tool": "calculator", "arguments": "twelve times seven"}', TOOLS)
    assert not found.calls
    assert "must be a JSON object" in found.problems[0]


def test_an_agent_without_tools_still_sees_a_call_as_a_call():
    found = read_text_calls('{"tool": "write_file", "arguments": {"path": "a", "content": "b"}}', {})
    assert found and not found.calls
    assert "tools you may call: none" in found.problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "The cost of 12 widgets is $84.",
        '{"name": "Ada", "age": 36}',
        '```json\n{"total": 84, "currency": "USD"}\n```',
        "Use the calculator tool to check: 12 * 7 = 84.",
        "def f(x):\n    return calculator_helper(x)",
        '{"answer": "84"}',
        'The rows, one a line:\n{"name": "Ada", "age": 36}\n{"name": "calculator", "arguments": "none"}x',
        "",
    ],
)
def test_answers_and_data_are_not_calls(text):
    assert not read_text_calls(text, TOOLS)
