"""A run's translation is translated back before the run may report success: every content word must survive."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orquestra import AutoTeam
from orquestra.engine import RunStatus
from orquestra.events import AnswerChecked, Event
from orquestra.exceptions import ModelUnavailable
from orquestra.models import Message, ScriptedModel
from orquestra.translation_check import asks_for_translation, check_translation, text_to_translate

GOAL = "Translate into French: I would like a cup of coffee, please."
BACK = "You translate text into English"


def back_translator(back: str) -> ScriptedModel:
    return ScriptedModel(responses=[back], name="back")


@pytest.mark.parametrize(
    ("goal", "text"),
    [
        (GOAL, "I would like a cup of coffee, please."),
        ("How do you say this in Italian? Where is the train station?", "Where is the train station?"),
        ("How would you say 'the children are playing' in Spanish?", "the children are playing"),
        ('Translate "good morning, my friend" into German.', "good morning, my friend"),
        ("Translate into English: Le chat dort sur le lit.", None),  # into English: the text is not English
        ("Translate this for me.", None),
    ],
)
def test_the_text_to_translate_is_read_from_the_goal(goal: str, text: str | None) -> None:
    assert asks_for_translation(goal)
    assert text_to_translate(goal) == text


def test_a_goal_that_asks_no_translation_is_not_read_as_one() -> None:
    assert not asks_for_translation("What is 12 times 7? Say it in words.")


async def test_a_translation_whose_round_trip_keeps_every_content_word_is_confirmed() -> None:
    model = back_translator("I would like a cup of coffee, please!")
    verdict = await check_translation(model, GOAL, "Je voudrais une tasse de café, s'il vous plaît.")
    assert verdict.passed is True
    assert verdict.value == "I would like a cup of coffee, please!"
    (prompt,) = model.calls
    assert prompt[0].content.startswith(BACK)
    assert "cup" not in " ".join(message.content for message in prompt)  # the answer alone is translated back


async def test_a_translation_that_loses_a_word_is_not_confirmed_and_the_word_is_named() -> None:
    verdict = await check_translation(back_translator("I would like a coffee, please."), GOAL, "Je voudrais un café.")
    assert verdict.passed is False
    assert verdict.why == "translated back, the answer reads 'I would like a coffee, please.', which lacks 'cup'"


async def test_words_are_compared_by_stem_and_numbers_by_value() -> None:
    goal = "Translate into German: The train leaves at 8 o'clock."
    verdict = await check_translation(back_translator("The trains leave at eight."), goal, "Der Zug fährt um acht Uhr.")
    assert verdict.passed is True


async def test_an_answer_that_only_repeats_the_text_gives_no_translation() -> None:
    model = back_translator("unused")
    answer = "Here it is: I would like a cup of coffee, please."
    verdict = await check_translation(model, GOAL, answer)
    assert verdict.passed is False and verdict.why == "the answer gives no translation of the text"
    assert model.calls == []


async def test_an_answer_quoting_the_text_is_judged_on_its_translation_alone() -> None:
    model = back_translator("I would like a coffee.")
    answer = '"I would like a cup of coffee, please." in French is: Je voudrais un café.'
    verdict = await check_translation(model, GOAL, answer)
    assert verdict.passed is False and "lacks 'cup'" in verdict.why
    (prompt,) = model.calls
    assert "cup" not in prompt[-1].content  # the quoted English would have passed every word by itself


@pytest.mark.parametrize(
    "goal",
    ["Summarise the report in two lines.", "Translate into English: Je voudrais un café.", "Translate this for me."],
)
async def test_what_cannot_be_judged_is_not(goal: str) -> None:
    model = back_translator("unused")
    verdict = await check_translation(model, goal, "Some answer.")
    assert verdict.passed is None
    assert model.calls == []


async def test_a_back_translation_that_cannot_be_made_judges_nothing() -> None:
    def down(messages: Sequence[Message]) -> str:
        raise ModelUnavailable("gone: connection refused")

    verdict = await check_translation(ScriptedModel(down, name="gone"), GOAL, "Je voudrais une tasse.")
    assert verdict.passed is None and verdict.why.startswith("the check could not be made")


def translating_brain(first: str, again: str):
    """Plans one translation task for GOAL, answered `first`; the goal run again is answered `again`.

    Translated back, a text with 'tasse' says the cup, one without it does not.
    """

    def answer(messages: Sequence[Message]) -> str | dict:
        system, last = messages[0].content, messages[-1]
        if "planner of a team" in system:
            return {"tasks": [{"id": "translate", "instruction": GOAL, "capability": "translation"}]}
        if system.startswith(BACK):
            return "I would like a cup of coffee, please." if "tasse" in last.content else "I would like a coffee."
        if "final answer of a team" in system:
            return first
        return again if "Your task (worked_again)" in last.content else first

    return answer


async def test_a_run_whose_translation_is_not_confirmed_fails_naming_the_lost_word() -> None:
    events: list[Event] = []
    team = AutoTeam(model=ScriptedModel(translating_brain("Je voudrais un café.", "Un café."), name="b"), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.FAILED
    assert result.run.reason == (
        "the translation is not confirmed: translated back, the answer reads 'I would like a coffee.',"
        " which lacks 'cup'"
    )
    assert result.answer.startswith("Je voudrais un café.\n\nNot confirmed: translated back")
    verdicts = [event.passed for event in events if isinstance(event, AnswerChecked)]
    assert verdicts[-1] is False


async def test_a_translation_not_confirmed_is_run_again_as_one_task_and_kept_when_it_passes() -> None:
    events: list[Event] = []
    brain = translating_brain("Je voudrais un café.", "Je voudrais une tasse de café, s'il vous plaît.")
    team = AutoTeam(model=ScriptedModel(brain, name="b"), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.answer == "Je voudrais une tasse de café, s'il vous plaît."
    assert "the goal run again as one task is" in result.run.reason
    assert result.outputs["translate"] == "Je voudrais un café."  # the plan's own work is kept as it was
    verdicts = [event.passed for event in events if isinstance(event, AnswerChecked)]
    assert verdicts[-2:] == [False, True]


async def test_a_run_whose_translation_is_confirmed_succeeds_without_running_again() -> None:
    model = ScriptedModel(translating_brain("Je voudrais une tasse de café.", "unused"), name="b")
    result = await AutoTeam(model=model, memory=False).arun(GOAL)
    assert result.run.status is RunStatus.SUCCEEDED and result.run.reason == ""
    assert result.answer_checks[-1].passed is True
    asked = " ".join(message.content for call in model.calls for message in call)
    assert "Your task (worked_again)" not in asked


async def test_an_answer_in_english_prose_is_judged_on_the_translation_it_quotes() -> None:
    goal = "Translate into Spanish: The children are playing in the garden."
    model = back_translator("The children are playing in the house.")
    answer = "In Spanish, you would say 'Los niños juegan en la casa', and that is how the children play in a garden."
    verdict = await check_translation(model, goal, answer)
    assert verdict.passed is False and verdict.why.endswith("which lacks 'garden' and adds 'house'")
    (prompt,) = model.calls
    assert prompt[-1].content == "Los niños juegan en la casa"  # the English around it would pass by itself

    prose = "The children are playing in the garden, which is what it means, and that is the translation."
    verdict = await check_translation(back_translator("unused"), goal, prose)
    assert verdict.passed is False and verdict.why == "the answer gives no translation of the text"


async def test_a_round_trip_that_adds_a_content_word_is_not_confirmed() -> None:
    goal = "How do you say this in Spanish? Where is the bus stop?"
    model = back_translator("How do you say this in Spanish? Where is the bus stop of the park?")
    verdict = await check_translation(model, goal, "¿Cómo se dice esto en español? ¿Dónde está la parada del parque?")
    assert verdict.passed is False and verdict.why.endswith("which adds 'park'")  # the goal's own words may return
