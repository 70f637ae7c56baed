"""The built-in checks of an answer, the user's `checks:`, and the agent loop that acts on their verdicts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from orquestra import Registry, Task
from orquestra.agent import AgentRunner
from orquestra.checks import Attempt, CheckSpec, ToolResult, promised_files, run_checks, states_number
from orquestra.dispatch import Dispatcher
from orquestra.events import Event, ResultChecked, ToolCalled
from orquestra.exceptions import ModelError
from orquestra.models import Message, Model, ModelResponse, ScriptedModel, ToolCall
from orquestra.registry import AgentCard
from tests.helpers import within_wall

SYSTEM = (
    "You are writer, one member of a team of AI agents working towards a shared goal. Turns notes and results "
    "into clear prose for a reader. Do exactly the task you are given, using the results of earlier tasks."
)


def attempt(output: str, **fields) -> Attempt:
    return Attempt(output=output, instruction=fields.pop("instruction", "Write one sentence."), **fields)


def failures(output: str, **fields) -> tuple[str, ...]:
    return run_checks(attempt(output, **fields)).failures


def test_a_plain_answer_passes_every_built_in_check(tmp_path):
    verdict = run_checks(attempt("The cost of 12 widgets is $84.", system_prompt=SYSTEM, workspace=tmp_path))
    assert verdict.passed
    assert verdict.checks == (
        "not_empty",
        "no_tool_call_text",
        "not_refusal",
        "not_echo",
        "not_a_formula",
        "files_written",
        "tool_numbers",
        "figures_from_sources",
    )


def test_an_empty_answer_fails():
    assert failures("  \n") == ("not_empty: the answer is empty",)


def test_a_tool_call_written_as_text_is_not_an_answer():
    text = '```json\n{"tool": "calculator", "arguments": {"expression": "12*7"}}\n```'
    (failure,) = failures(text, tools={"calculator": {"type": "object"}})
    assert failure.startswith("no_tool_call_text: the answer is a call of calculator written as text")


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't assist with that request.",
        "I’m sorry, but I can’t help with that.",
        "I cannot provide that information.",
        "As an AI language model, I do not have opinions.",
        "Unfortunately, I am unable to complete this task.",
    ],
)
def test_refusals_fail(text):
    (failure,) = failures(text)
    assert failure.startswith("not_refusal: the answer declines the task")


def test_an_answer_that_only_mentions_sorry_later_is_not_a_refusal():
    assert not failures("Prices rose 4%. Sorry to say, the cheaper plan is gone.")


def test_an_echo_of_the_system_prompt_fails():
    (failure,) = failures(SYSTEM, system_prompt=SYSTEM)
    assert failure == "not_echo: the answer repeats the agent's instructions instead of doing the task"


@pytest.mark.parametrize("text", ["No preamble, no questions back.", "Answer with the result itself."])
def test_a_short_clause_lifted_from_the_system_prompt_fails(text):
    system = "Do the task. Answer with the result itself: no preamble, no questions back."
    (failure,) = failures(text, system_prompt=system)
    assert failure == "not_echo: the answer repeats the agent's instructions instead of doing the task"


def test_a_short_answer_with_a_word_or_two_of_the_system_prompt_is_not_an_echo():
    system = "Answer with the result itself: no preamble, no questions back."
    assert not failures("The result: 89.", system_prompt=system)
    assert not failures("No.", system_prompt=system)


def test_a_sentence_of_the_instructions_copied_before_a_call_fails():
    system = (
        "Answer with the result itself: no preamble, no questions back. If information you need is missing, say so."
    )
    text = "no preamble, no questions back. If information you need is missing, say so.\nThe total is 89."
    (failure,) = failures(text, system_prompt=system)
    assert failure == "not_echo: the answer repeats the agent's instructions instead of doing the task"


def test_an_echo_of_the_instruction_fails():
    instruction = "Draft a short welcome note for new members of the chess club and mention the Friday meetings."
    (failure,) = failures(f"Task: {instruction}", instruction=instruction)
    assert failure.startswith("not_echo: the answer repeats the task")


def test_an_answer_that_restates_the_task_with_its_result_is_not_an_echo():
    instruction = "Find the cost of 12 widgets at $7 each."
    assert not failures("The cost of 12 widgets at $7 each is $84.", instruction=instruction)
    (failure,) = failures("The cost of 12 widgets at $7 each.", instruction=instruction)
    assert failure.startswith("not_echo: the answer repeats the task")


def test_a_short_answer_that_reuses_words_of_the_instruction_is_not_an_echo():
    assert not failures("The total is 84 dollars.", instruction="Compute the total in dollars.")


@pytest.mark.parametrize(
    ("text", "files"),
    [
        ("Write the launch post to post.md", ["post.md"]),
        ("Read notes.md and save a summary as out/summary.txt", ["out/summary.txt"]),
        ("Using data.csv, create report.html.", ["report.html"]),
        ("Summarise facts.md for the reader.", []),
        ("Open config.yaml and list its keys.", []),
        ("Summarise notes.md into summary.md.", ["summary.md"]),
        ("Read the facts and append them to a file named `log.txt`.", ["log.txt"]),
    ],
)
def test_promised_files_are_those_the_text_says_are_written(text, files):
    assert promised_files(text) == files


def test_a_promised_file_must_exist_in_the_workspace(tmp_path):
    (failure,) = failures("Done.", instruction="Save the poem to poem.txt", workspace=tmp_path)
    assert failure.startswith("files_written: the task writes poem.txt, but the workspace has no such file")
    (tmp_path / "poems").mkdir()
    (tmp_path / "poems" / "poem.txt").write_text("roses")
    assert not failures("Done.", instruction="Save the poem to poem.txt", workspace=tmp_path)


def test_the_answer_must_state_the_number_the_tool_computed():
    computed = (ToolResult("calculator", {"expression": "12*7"}, "84"),)
    assert not failures("12 widgets cost $84.", tool_results=computed)
    (failure,) = failures("12 widgets cost $96.", tool_results=computed)
    assert failure == "tool_numbers: calculator computed 84, but the answer states 12, 96: give the tool's result"


@pytest.mark.parametrize(
    ("text", "value", "stated"),
    [
        ("$1,234.50", 1234.5, True),
        ("about 33.33", 100 / 3, True),
        ("15%", 0.15, True),
        ("84.0", 84, True),
        ("83", 84, False),
        ("no figure", 84, False),
        ("12.35", 12.345678, True),
        ("12.34", 12.345678, False),
    ],
)
def test_states_number_allows_rounding_and_separators(text, value, stated):
    assert states_number(text, value) is stated


def test_user_checks_from_data(tmp_path):
    (tmp_path / "report.md").write_text("# Summary\nAll good.")
    specs = [
        CheckSpec(contains="total"),
        CheckSpec(matches=r"\d+ widgets"),
        CheckSpec(file="report.md", contains="summary"),
        CheckSpec(file="missing.md"),
        CheckSpec(max_chars=10),
        CheckSpec(function="tests.test_checks:says_hello"),
    ]
    verdict = run_checks(attempt("The total for 12 widgets.", workspace=tmp_path), specs)
    assert verdict.failures == (
        "file missing.md: the workspace has no file missing.md",
        "max_chars 10: the answer has 25 characters; at most 10 are allowed",
        "function 'tests.test_checks:says_hello': the answer does not say hello",
    )


def says_hello(attempt: Attempt) -> str | None:
    return None if "hello" in attempt.output.lower() else "the answer does not say hello"


def test_a_check_spec_takes_exactly_one_kind():
    with pytest.raises(ValidationError, match="give exactly one of"):
        CheckSpec(contains="a", min_chars=3)
    with pytest.raises(ValidationError, match="not a regular expression"):
        CheckSpec(matches="(")


def test_a_matches_check_that_would_backtrack_for_hours_ends_within_its_time(tmp_path):
    # Python's re takes hours on both of these, holding the interpreter: not even a task's timeout fired.
    runaway = "a" * 40 + "!"
    assert within_wall(lambda: CheckSpec(matches="(a+)+$").check(attempt(runaway)), 10) == (
        "the answer does not match '(a+)+$'"
    )
    reason = within_wall(lambda: CheckSpec(matches="(a|aa)+$").check(attempt(runaway)), 10)
    assert reason is not None and reason.startswith("searching the answer for '(a|aa)+$' takes longer than 1 s")
    (tmp_path / "notes.md").write_text(runaway)
    spec = CheckSpec(file="notes.md", matches="(a|aa)+$")
    reason = within_wall(lambda: spec.check(attempt("Saved.", workspace=tmp_path)), 10)
    assert reason is not None and reason.startswith("searching notes.md for")


# ---------------------------------------------------------------------------------------- the agent loop


def runner(models: dict[str, Model], tmp_path, events: list[Event], agent: AgentCard | None = None) -> AgentRunner:
    builtin = Registry.load()
    agents = [
        agent
        or AgentCard(
            name="mathy",
            description="Computes.",
            capabilities=("math",),
            tools=("calculator", "write_file"),
            model="primary",
            fallbacks=("plain",),
        ),
        AgentCard(
            name="plain", description="Plain.", capabilities=("math",), model="plain-model", tools=("calculator",)
        ),
    ]
    return AgentRunner(
        dispatcher=Dispatcher(Registry(agents, builtin.tools.values())),
        model_for=models.__getitem__,
        default_model="primary",
        workspace=tmp_path,
        emit=events.append,
        run_id="r",
    )


TASK = Task(id="cost", instruction="Compute the cost of 12 widgets at $7 each.", capability="math")
GREETING = Task(id="greet", instruction="Write a one-line greeting for the shop's customers.", capability="math")


async def test_a_tool_call_written_as_text_runs_and_its_result_goes_back(tmp_path):
    def answer(messages: Sequence[Message]) -> str:
        if messages[-1].content.startswith("Result of calculator: 84"):
            return "12 widgets cost $84."
        return 'Let me compute.\n```json\n{"tool": "calculator", "arguments": {"expression": "12*7"}}\n```'

    events: list[Event] = []
    model = ScriptedModel(answer)
    assert await runner({"primary": model}, tmp_path, events)(TASK, {}) == "12 widgets cost $84."
    called = [event for event in events if isinstance(event, ToolCalled)]
    assert [(e.tool, e.arguments, e.result) for e in called] == [("calculator", {"expression": "12*7"}, "84")]
    checked = [event for event in events if isinstance(event, ResultChecked)]
    assert [(e.passed, e.attempt) for e in checked] == [(True, 1)]


async def test_an_unknown_tool_written_as_text_goes_back_with_the_reason(tmp_path):
    answers = iter(['{"tool": "web_search", "arguments": {"query": "widgets"}}', "Welcome to the widget shop!"])
    model = ScriptedModel(lambda messages: next(answers))
    assert await runner({"primary": model}, tmp_path, [])(GREETING, {}) == "Welcome to the widget shop!"
    told = model.calls[1][-1].content
    assert told.startswith("Your tool call cannot run: there is no tool named 'web_search'")


async def test_bad_arguments_go_back_with_the_schema(tmp_path):
    answers = iter(['{"tool": "calculator", "arguments": {"expr": "12*7"}}', "Welcome!"])
    events: list[Event] = []
    model = ScriptedModel(lambda messages: next(answers))
    await runner({"primary": model}, tmp_path, events)(GREETING, {})
    (called,) = [event for event in events if isinstance(event, ToolCalled)]
    assert called.result.startswith("error: bad arguments for 'calculator': 'expression' is a required property")


async def test_a_failed_check_is_retried_with_the_reason_then_the_fallback_takes_over(tmp_path):
    events: list[Event] = []
    refusing = ScriptedModel(lambda messages: "I'm sorry, but I can't assist with that request.")
    plain = ScriptedModel(lambda messages: "Welcome to the widget shop!")
    result = await runner({"primary": refusing, "plain-model": plain}, tmp_path, events)(GREETING, {})
    assert result == "Welcome to the widget shop!"
    assert len(refusing.calls) == 2  # asked again once, told why
    assert refusing.calls[1][-1].content.startswith("Your answer was not accepted:\n- not_refusal:")
    verdicts = [(e.agent, e.passed, e.attempt) for e in events if isinstance(e, ResultChecked)]
    assert verdicts == [("mathy", False, 1), ("mathy", False, 2), ("plain", True, 1)]


async def test_when_every_agent_fails_its_checks_the_task_fails_with_the_reasons(tmp_path):
    empty = ScriptedModel(lambda messages: "")
    with pytest.raises(ModelError, match="the answer failed its checks: not_empty: the answer is empty"):
        await runner({"primary": empty, "plain-model": empty}, tmp_path, [])(TASK, {})


async def test_an_agent_without_tools_that_writes_a_call_is_asked_again(tmp_path):
    agent = AgentCard(name="mathy", description="Words only.", capabilities=("math",), model="primary")
    answers = iter(['{"tool": "read_file", "arguments": {"path": "capitals.md"}}', "Paris."])
    events: list[Event] = []
    model = ScriptedModel(lambda messages: next(answers))
    task = Task(id="capital", instruction="Name the capital of France.", capability="math")
    assert await runner({"primary": model}, tmp_path, events, agent)(task, {}) == "Paris."
    assert not [event for event in events if isinstance(event, ToolCalled)]
    first = next(e for e in events if isinstance(e, ResultChecked))
    assert first.failures[0].startswith("no_tool_call_text:")


async def test_checks_of_the_card_and_the_task_both_apply(tmp_path):
    agent = AgentCard(
        name="mathy",
        description="Computes.",
        capabilities=("math",),
        model="primary",
        tools=("calculator",),
        checks=(CheckSpec(contains="dollars"),),
    )
    task = GREETING.model_copy(update={"checks": (CheckSpec(matches=r"\b84\b"),)})
    answers = iter(["It costs 84.", "It costs 96 dollars.", "It costs 84 dollars."])
    events: list[Event] = []
    model = ScriptedModel(lambda messages: next(answers))
    run = runner({"primary": model, "plain-model": model}, tmp_path, events, agent)
    assert await run(task, {}) == "It costs 84 dollars."
    verdicts = [e.failures for e in events if isinstance(e, ResultChecked)]
    assert verdicts[0] == ("contains 'dollars': the answer does not contain 'dollars'",)
    assert verdicts[1] == ("matches '\\\\b84\\\\b': the answer does not match '\\\\b84\\\\b'",)
    assert verdicts[2] == ()


@pytest.mark.parametrize(
    "text",
    ["$2,000 * (1 + 0.03) * (1 + 0.03)", "[0.645 * 3.785]", "The balance is 2000 × 1.03^2 dollars."],
)
def test_a_formula_without_its_value_fails(text):
    (failure,) = failures(text)
    assert failure.startswith("not_a_formula: the answer gives a formula instead of its value")


@pytest.mark.parametrize(
    "text",
    [
        "12 * 7 = 84, so the widgets cost $84.",
        "The area is about 3.14 * 4 ≈ 12.57 square metres.",
        "Run it with:\n```python\nprint(3 * 4)\n```",
        "Use `2 * 3` in the cell.",
        "Meet on 12/05 at 10.",
    ],
)
def test_values_and_code_are_not_formulas(text):
    assert not failures(text)


def test_a_write_up_must_take_its_figures_from_the_earlier_results():
    earlier = ("calculate_tip: 9.72",)
    goal = "Our bill came to $64.80 and we leave a 15% tip."
    assert not failures("The tip on $64.80 at 15% is $9.72.", inputs=earlier, goal=goal)
    (failure,) = failures("The tip is $15.72, so leave 3 coins.", inputs=earlier, goal=goal)
    assert failure.startswith("figures_from_sources: the answer states 15.72, which no earlier result")


def test_a_task_without_earlier_results_may_state_its_own_figures():
    assert not failures("The Eiffel Tower is 330 metres tall.")


def test_a_sum_worked_out_in_the_head_of_an_agent_that_cannot_compute_fails():
    goal = "I buy three notebooks at $4.25 each, and an 8% sales tax is added. How much do I pay?"
    (failure,) = failures("$13.09", goal=goal, instruction="Write the total.")
    assert failure.startswith("figures_from_sources: the answer states 13.09")
    assert not failures("Three notebooks at $4.25 each, plus 8% tax.", goal=goal, instruction="Restate the purchase.")


def test_an_agent_that_computes_states_new_figures_only_from_its_tools():
    inputs = ("price: $7", "count: 12")
    (failure,) = failures("12 widgets at $7 cost $84.", inputs=inputs, computes=True)
    assert failure.endswith("compute new ones with a tool")
    computed = (ToolResult("calculator", {"expression": "12*7"}, "84"),)
    assert not failures("12 widgets at $7 cost $84.", inputs=inputs, computes=True, tool_results=computed)


async def test_a_task_that_writes_a_file_must_call_a_writing_tool_until_it_has(tmp_path):
    answers = iter(
        [
            ModelResponse("", "m", (ToolCall("c1", "write_file", {"path": "poem.txt", "content": "roses"}),)),
            "Saved the poem to poem.txt.",
        ]
    )
    model = ScriptedModel(lambda messages: next(answers))
    task = Task(id="poem", instruction="Write a two-word poem and save it to poem.txt", capability="math")
    assert await runner({"primary": model}, tmp_path, [])(task, {}) == "Saved the poem to poem.txt."
    assert model.tool_choices == ["required", "auto"]
    assert (tmp_path / "poem.txt").read_text() == "roses"


def test_a_promised_file_from_before_the_attempt_is_not_its_work(tmp_path):
    import os

    (tmp_path / "result.txt").write_text("27 characters to result.txt")
    os.utime(tmp_path / "result.txt", (1_000, 1_000))
    fields = {"instruction": "Write the result to result.txt", "workspace": tmp_path}
    (failure,) = failures("437", started=2_000.0, **fields)
    assert failure.startswith("files_written: the task writes result.txt, but this answer did not write it")
    (tmp_path / "result.txt").write_text("437")
    assert not failures("437", started=2_000.0, **fields)
