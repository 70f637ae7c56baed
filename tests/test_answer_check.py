"""A run's figure is worked out again from the goal alone before the run may report success."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orquestra import AutoTeam
from orquestra.answer_check import AnswerCheck, check_answer, claimed_figures
from orquestra.engine import RunStatus
from orquestra.evals.runs import RunCase, run_goal
from orquestra.events import AnswerChecked, Event
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.store import RunStore

GOAL = "A film runs for 3 hours and 20 minutes. How many seconds long is it?"


def checker(expression: str) -> ScriptedModel:
    return ScriptedModel(responses=[{"expression": expression}], name="checker")


async def test_an_answer_stating_the_worked_out_figure_is_confirmed():
    verdict = await check_answer(checker("(3 * 60 + 20) * 60"), GOAL, "The film is 12,000 seconds long.")
    assert verdict.passed is True
    assert verdict.value == "12000" and verdict.expression == "(3 * 60 + 20) * 60"


async def test_an_answer_stating_another_figure_is_not_confirmed():
    verdict = await check_answer(checker("(3 * 60 + 20) * 60"), GOAL, "The film is 200 seconds long.")
    assert verdict.passed is False
    assert verdict.why == "the answer states 200, but worked out from the goal alone, (3 * 60 + 20) * 60 = 12000"


async def test_the_goal_is_all_the_checking_model_sees():
    model = checker("(3 * 60 + 20) * 60")
    await check_answer(model, GOAL, "The film is 12000 seconds long.")
    (prompt,) = model.calls
    assert "12000" not in " ".join(message.content for message in prompt)
    assert GOAL in prompt[-1].content


async def test_a_rounded_answer_is_confirmed_at_the_places_it_gives():
    goal = "A tank holds 45 litres. Using 1 US gallon = 3.785 litres, how many gallons, to one decimal place?"
    verdict = await check_answer(checker("45 / 3.785"), goal, "About 11.9 US gallons.")
    assert verdict.passed is True


@pytest.mark.parametrize(
    ("goal", "answer", "expression", "why"),
    [
        ("Translate 'the cat sleeps' into Spanish.", "El gato duerme.", "1+1", "the goal gives too few figures"),
        (GOAL, "It is 12000 seconds.", "", "the checking model found no figure to work out"),
        (GOAL, "It is 12000 seconds.", "seconds(3, 20)", "the calculator could not evaluate"),
        (GOAL, "It is 12000 seconds.", "3 + 0", "is a figure the goal gives"),
    ],
)
async def test_what_cannot_be_judged_is_not(goal, answer, expression, why):
    model = checker(expression)
    verdict = await check_answer(model, goal, answer)
    assert verdict.passed is None and why in verdict.why


async def test_a_checking_model_that_gives_no_valid_answer_judges_nothing():
    model = ScriptedModel(responses=["not json", "still not json"], name="checker")
    verdict = await check_answer(model, GOAL, "It is 200 seconds.")
    assert verdict.passed is None and verdict.why.startswith("the check could not be made")


def test_claimed_figures_are_the_answers_figures_that_the_goal_does_not_give():
    assert claimed_figures("From 3 hours and 20 minutes: 12,000 seconds.", GOAL) == [12000.0]
    assert claimed_figures("12000 seconds, so 12,000 in all, or 200 minutes", GOAL) == [12000.0, 200.0]


def brain(seconds: str, again: str = "200", written: str | None = None):
    """Plans two math tasks for GOAL, the last of which computes `seconds`; the checking model writes the right sum.

    The written answer states `written` (by default, `seconds`).
    """

    def answer(messages: Sequence[Message]) -> str | dict | ModelResponse:
        system, last = messages[0].content, messages[-1]
        if "planner of a team" in system:
            tasks = [
                {"id": "minutes", "instruction": "Convert 3 hours 20 minutes to minutes", "capability": "math"},
                {"id": "seconds", "instruction": "Give the film's length in seconds", "capability": "math"},
            ]
            tasks[1]["depends_on"] = ["minutes"]
            return {"tasks": tasks}
        if "working out the figure yourself" in system:
            return {"expression": "(3 * 60 + 20) * 60"}
        if "final answer of a team" in system:
            return f"The film is {written or seconds} seconds long. [seconds]"
        if last.role == "tool":
            return f"The result is {last.content}."
        expression = "3 * 60 + 20" if "Your task (minutes)" in last.content else seconds
        if "Your task (worked_again)" in last.content:
            expression = again
        return ModelResponse(
            text="", model="brain", tool_calls=(ToolCall("1", "calculator", {"expression": expression}),)
        )

    return answer


async def test_a_run_whose_figure_is_not_confirmed_fails_and_says_why(tmp_path):
    events: list[Event] = []
    store = RunStore(tmp_path / "runs.sqlite3")
    team = AutoTeam(model=ScriptedModel(brain("200"), name="brain"), memory=False, store=store)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.FAILED
    assert result.run.reason == (
        "the answer's figure is not confirmed: the answer states 200, but converted exactly,"
        " 3 hours and 20 minutes in seconds = 12000"
    )
    assert result.answer.startswith("The film is 200 seconds long. [seconds]")
    assert result.answer.endswith("\n\nNot confirmed: " + result.run.reason.split(": ", 1)[1] + ".")
    assert result.outputs["seconds"] == "The result is 200."  # the team's work is kept as it was
    [checked] = [event for event in events if isinstance(event, AnswerChecked)]
    assert checked.passed is False and checked.value == "12000"
    with store:
        stored = store.get(result.run.run_id)
    assert stored.run.status == "failed" and stored.run.reason == result.run.reason
    assert "AnswerChecked" in [event.type for event in stored.events]


async def test_a_run_whose_figure_is_confirmed_succeeds():
    events: list[Event] = []
    team = AutoTeam(model=ScriptedModel(brain("12000"), name="brain"), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer == "The film is 12000 seconds long. [seconds]"
    [checked] = [event for event in events if isinstance(event, AnswerChecked)]
    assert checked.passed is True
    assert result.answer_checks == [AnswerCheck(True, checked.why, "3 hours and 20 minutes in seconds", "12000")]


async def test_the_check_can_be_turned_off():
    team = AutoTeam(model=ScriptedModel(brain("200"), name="brain"), memory=False, check_answers=False)
    result = await team.arun(GOAL)
    assert result.run.status is RunStatus.SUCCEEDED


async def test_a_figure_not_confirmed_is_worked_again_as_one_task_and_kept_when_both_agree():
    events: list[Event] = []
    team = AutoTeam(model=ScriptedModel(brain("200", again="(3 * 60 + 20) * 60"), name="brain"), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer.startswith("The result is 12000.\n\n(Worked out again: the answer states 200,")
    assert "the goal run again as one task agrees" in result.run.reason
    assert result.outputs["seconds"] == "The result is 200."  # the plan's own work is kept as it was
    verdicts = [(event.passed, event.value) for event in events if isinstance(event, AnswerChecked)]
    assert verdicts == [(False, "12000"), (True, "12000")]


async def test_a_written_answer_that_lost_a_tasks_confirmed_figure_is_that_tasks_result():
    events: list[Event] = []
    model = ScriptedModel(brain("12000", written="200"), name="brain")
    team = AutoTeam(model=model, memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer.startswith("[seconds] The result is 12000.\n\n(Worked out again: the answer states 200,")
    assert "the result of task 'seconds' agrees" in result.run.reason
    verdicts = [(event.passed, event.why) for event in events if isinstance(event, AnswerChecked)]
    assert verdicts[-1] == (True, "task 'seconds' states 12000")
    asked = " ".join(message.content for call in model.calls for message in call)
    assert "Your task (worked_again)" not in asked  # confirmed without running the goal again


async def test_an_answer_stating_no_figure_of_its_own_is_judged_but_claims_nothing():
    verdict = await check_answer(checker("(3 * 60 + 20) * 60"), GOAL, "The film is long: 3 hours and 20 minutes.")
    assert verdict.passed is False and not verdict.claims
    assert verdict.why.startswith("the answer states no figure of its own, but worked out from the goal alone")


async def test_a_run_whose_answer_states_no_figure_of_its_own_keeps_its_status_unless_a_task_states_the_figure():
    events: list[Event] = []
    team = AutoTeam(model=ScriptedModel(brain("200", written="3 hours and 20 minutes"), name="brain"), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED and result.run.reason == ""
    assert result.answer == "The film is 3 hours and 20 minutes seconds long. [seconds]"
    verdicts = [event.passed for event in events if isinstance(event, AnswerChecked)]
    assert verdicts == [False, None]

    found = AutoTeam(model=ScriptedModel(brain("12000", written="3 hours and 20 minutes"), name="b"), memory=False)
    result = await found.arun(GOAL)
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer.startswith("[seconds] The result is 12000.")


async def test_a_run_evals_record_keeps_each_answer_check(tmp_path):
    team = AutoTeam(model=ScriptedModel(brain("12000", written="200"), name="brain"), memory=False)
    record = (await run_goal(team, RunCase(id="film", goal=GOAL, answer_contains="12000"), tmp_path)).record()
    assert record["passed"] is True
    assert [(check["passed"], check["value"]) for check in record["answer_checks"]] == [
        (False, "12000"),
        (True, "12000"),
    ]


FILE_GOAL = "Work out 6 times 7 and write the result to answer.txt."


def file_brain(*, writes: bool):
    """Plans one math task that computes 42 and writes no file; the writer then writes answer.txt if `writes`."""

    def answer(messages: Sequence[Message]) -> str | dict | ModelResponse:
        system, last = messages[0].content, messages[-1]
        if "planner of a team" in system:
            return {"tasks": [{"id": "product", "instruction": "Compute 6 times 7", "capability": "math"}]}
        if "working out the figure yourself" in system:
            return {"expression": "6 * 7"}
        if last.role == "tool":
            return "Wrote answer.txt." if "Your task (write_files)" in messages[1].content else "The result is 42."
        if "Your task (write_files)" in last.content:
            if not writes:
                return "The result is 42."
            call = ToolCall("2", "write_file", {"path": "answer.txt", "content": "42"})
            return ModelResponse(text="", model="brain", tool_calls=(call,))
        return ModelResponse(text="", model="brain", tool_calls=(ToolCall("1", "calculator", {"expression": "6 * 7"}),))

    return answer


async def test_a_file_the_goal_names_that_no_task_wrote_is_written_by_an_agent_that_may(tmp_path):
    team = AutoTeam(model=ScriptedModel(file_brain(writes=True), name="brain"), memory=False)
    record = (
        await run_goal(team, RunCase(id="f", goal=FILE_GOAL, file={"path": "answer.txt", "contains": "42"}), tmp_path)
    ).record()
    assert record["status"] == "succeeded" and record["checks_passed"] is True
    assert (tmp_path / "answer.txt").read_text() == "42"
    assert record["reason"] == (
        "the goal asks for answer.txt, which no task wrote; task 'write_files' added by the review wrote it"
    )


async def test_a_run_fails_naming_the_file_its_goal_asks_for_when_it_cannot_be_written(tmp_path):
    team = AutoTeam(model=ScriptedModel(file_brain(writes=False), name="brain"), memory=False)
    result = await team.arun(FILE_GOAL)
    assert result.run.status is RunStatus.FAILED
    assert result.run.reason.startswith("the goal asks for answer.txt, which no task wrote, and writing it failed: ")
    assert result.outputs == {"product": "The result is 42."}  # the team's work is kept
    assert "42" in result.answer
