"""A goal that asks to convert a quantity is checked by converting it exactly, not by asking a model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orquestra import AutoTeam
from orquestra.engine import RunStatus
from orquestra.goal_review import CONVERT_WITH_UNITS
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.unit_check import check_conversion, conversion_in


@pytest.mark.parametrize(
    ("goal", "written", "value"),
    [
        ("How many minutes are in 2.5 hours?", "2.5 hours in minutes", 150),
        ("A film runs for 3 hours and 20 minutes. How many seconds long is it?", "3 hours and 20 minutes in", 12000),
        ("A person is 5 feet 10 inches tall. What is that in centimetres?", "5 feet 10 inches in", 177.8),
        ("The oven reads 77 degrees Fahrenheit. What is that in degrees Celsius?", "77 degF in degC", 25),
        ("Convert 10 km to miles, to 2 decimal places.", "10 km in miles", 6.2137119),
        ("A road is 1,500 metres long. How long is it in km?", "1,500 metres in km", 1.5),
    ],
)
def test_a_conversion_is_the_goals_one_quantity_in_the_unit_it_asks_for(goal, written, value):
    conversion = conversion_in(goal)
    assert conversion is not None and conversion.written.startswith(written)
    assert conversion.value() == pytest.approx(value)


@pytest.mark.parametrize(
    ("goal", "value"),
    [
        ("A bag holds 2.5 pounds of flour. Taking 1 pound as 453.6 grams, how many grams is that?", 1134),
        ("A tank holds 45 litres. Using 1 US gallon = 3.785 litres, how many US gallons does it hold?", 45 / 3.785),
        ("There are 2.54 cm in an inch. How many cm is 12 inches?", 30.48),
        ("A bag holds 2 kg of rice. If 1 pound is 453.6 grams, how many pounds is that?", 2000 / 453.6),
    ],
)
def test_the_factor_a_goal_gives_is_the_one_used(goal, value):
    conversion = conversion_in(goal)
    assert conversion is not None and conversion.factor is not None
    assert conversion.value() == pytest.approx(value, rel=1e-12)  # Pint's own factors differ in the 4th digit


@pytest.mark.parametrize(
    "goal",
    [
        "A car travels 60 km in 1.5 hours. How many km does it travel in 4 hours?",  # a rate, not a conversion
        "A recipe for 4 people needs 500 grams of flour. How many pounds is that for 6 people?",
        "A car travels 150 km in 2 hours. What is its speed in km/h?",
        "A room is 5 m by 4 m. What is its area in square feet?",
        "I ran 5 km on Monday and 3 km on Tuesday. How many miles did I run?",  # two quantities, not one in parts
        "The meeting starts at 3 pm and lasts 90 minutes. When does it end?",
        "A shelf is 2 metres long. How many metres is it?",  # the unit it already has
        "What is 15% of 80?",
        "Translate into French: I have 3 cats.",
    ],
)
def test_a_goal_that_asks_more_or_other_than_a_conversion_is_not_read_as_one(goal):
    assert conversion_in(goal) is None


def test_an_answer_is_judged_by_the_exact_conversion():
    goal = "A film runs for 3 hours and 20 minutes. How many seconds long is it?"
    passed = check_conversion(goal, "The film is 12,000 seconds long.")
    assert passed is not None and passed.passed is True and passed.value == "12000"
    failed = check_conversion(goal, "The film is 200 seconds long.")
    assert failed is not None and failed.passed is False
    assert failed.why == "the answer states 200, but converted exactly, 3 hours and 20 minutes in seconds = 12000"
    rounded = check_conversion(
        "A tank holds 45 litres. Using 1 US gallon = 3.785 litres, how many US gallons, to one decimal place?",
        "About 11.9 US gallons.",
    )
    assert rounded is not None and rounded.passed is True
    assert rounded.expression == "45 litres in gallons, taking 1 gallon = 3.785 litres"
    assert check_conversion("What is 15% of 80?", "12") is None


def brain(stated: str, checker_says: str, told: str = "") -> object:
    """A team whose one task states `stated` seconds, with a checking model that works out `checker_says`.

    A task told to let the calculator convert units (`CONVERT_WITH_UNITS`) computes `told` instead.
    """

    def answer(messages: Sequence[Message]) -> str | dict | ModelResponse:
        system, last = messages[0].content, messages[-1]
        if "planner of a team" in system:
            task = {"id": "seconds", "instruction": "Give the film's length in seconds", "capability": "math"}
            return {"tasks": [task]}
        if "working out the figure yourself" in system:
            return {"expression": checker_says}
        if "final answer of a team" in system:
            return f"The film is {stated} seconds long. [seconds]"
        if last.role == "tool":
            return f"The result is {last.content}."
        expression = told if told and CONVERT_WITH_UNITS in last.content else stated
        call = ToolCall("1", "calculator", {"expression": expression})
        return ModelResponse(text="", model="brain", tool_calls=(call,))

    return answer


async def test_a_wrong_conversion_fails_the_run_even_when_the_checking_model_would_agree_with_it():
    # The checking model makes the team's mistake (3*60+20 seconds): the conversion does not.
    team = AutoTeam(model=ScriptedModel(brain("200", checker_says="3 * 60 + 20"), name="brain"), memory=False)
    result = await team.arun("A film runs for 3 hours and 20 minutes. How many seconds long is it?")
    assert result.run.status is RunStatus.FAILED
    assert "converted exactly, 3 hours and 20 minutes in seconds = 12000" in (result.run.reason or "")


async def test_a_goal_that_is_no_conversion_is_still_worked_out_by_the_checking_model():
    goal = "A film of 200 minutes is shown 3 times a day. How many minutes of film are shown a day?"
    team = AutoTeam(model=ScriptedModel(brain("600", checker_says="200 * 3"), name="brain"), memory=False)
    result = await team.arun(goal)
    assert result.run.status is RunStatus.SUCCEEDED
    assert [check.expression for check in result.answer_checks] == ["200 * 3"]


async def test_a_conversion_worked_again_is_told_to_let_the_calculator_convert_and_kept_when_it_agrees():
    model = ScriptedModel(brain("200", "3 * 60 + 20", told="(3 hours + 20 minutes) in seconds"), name="brain")
    team = AutoTeam(model=model, memory=False)
    result = await team.arun("A film runs for 3 hours and 20 minutes. How many seconds long is it?")
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer.startswith("The result is 12000 second.")
    assert result.outputs["seconds"] == "The result is 200."  # the plan's own work is kept as it was
