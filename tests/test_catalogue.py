"""Catalogues of any size: fitting the planner's prompt into the model's context, and examples for any catalogue."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from orquestra.catalogue import CatalogueView, first_sentence, rank
from orquestra.exceptions import ModelConfigError
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolChoice, ToolSpec
from orquestra.plan_examples import (
    BUILTIN_EXAMPLE,
    BUILTIN_SINGLE,
    PlanExample,
    action,
    default_examples,
    derived_example,
)
from orquestra.planner import ID_PATTERN, Planner, PlanningError, plan_model
from orquestra.registry import AgentCard, Registry

TOPICS = [
    "translate text between languages",
    "summarise long documents into short notes",
    "detect objects in photographs",
    "book flights between airports",
    "convert speech recordings to text",
]
FILLER = "It is dependable, well documented and used by many teams every day across the whole organisation."


def big_registry(size: int = 300) -> Registry:
    """`size` capabilities: five useful ones among many about unrelated chores, with long descriptions."""
    cards = [
        AgentCard(name=f"tool-{index}", description=f"Tool {index}: {topic}. {FILLER}", capabilities=(f"tool_{index}",))
        for index, topic in enumerate(TOPICS)
    ]
    cards += [
        AgentCard(
            name=f"chore-{index}",
            description=f"Handles chore number {index} of the warehouse inventory ledger. {FILLER}",
            capabilities=(f"chore_{index}",),
        )
        for index in range(size - len(TOPICS))
    ]
    return Registry(cards)


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A fake sentence embedding: hashed word counts, normalised (similar words, similar vectors)."""
    vectors = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            vectors[row, zlib.crc32(word[:5].encode()) % 256] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-9, None)


class SchemaModel(ScriptedModel):
    """A scripted model with a small context window that records the schema of each request."""

    def __init__(self, *args: Any, context_window: int = 4096, max_tokens: int = 1024, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context_window = context_window
        self.max_tokens = max_tokens
        self.schemas: list[dict[str, Any] | None] = []

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ModelResponse:
        self.schemas.append(output_schema)
        return await super().request(messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice)


GOAL = "Translate the French text to English, then summarise it into short notes."
PLAN = {
    "tasks": [
        {"id": "translate", "instruction": "Translate the text.", "capability": "tool_0", "depends_on": []},
        {"id": "notes", "instruction": "Summarise it.", "capability": "tool_1", "depends_on": ["translate"]},
    ]
}


def enum_of(schema: dict[str, Any]) -> set[str]:
    """The capability names a plan schema allows."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "capability" in node.get("properties", {}):
                capability = node["properties"]["capability"]
                found.update(capability.get("enum", [capability.get("const")]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


# ---------------------------------------------------------------------------------------------- fitting


async def test_a_large_catalogue_is_cut_to_the_relevant_capabilities_and_the_prompt_fits():
    model = SchemaModel(responses=[PLAN])
    planner = Planner(model, big_registry(), embed=bag_of_words)
    prompt = await planner.prompt(GOAL)
    shown = prompt.view.shown
    assert prompt.view.total == 300 and 5 < len(shown) < 300
    assert {"tool_0", "tool_1"} <= set(shown)
    assert {"tool_0", "tool_1"} <= set(list(shown)[:3])  # the most relevant come first
    schema = prompt.output_type.model_json_schema()
    assert await model.count_tokens(prompt.messages, output_schema=schema) <= 4096 - 1024
    result = await planner.plan(GOAL)
    assert [task.capability for task in result.graph.tasks] == ["tool_0", "tool_1"]
    # The schema the model was sent allows only the capabilities shown, and the note says what happened.
    assert enum_of(model.schemas[0] or {}) == set(shown)
    assert result.notes == [
        f"the catalogue has 300 capabilities, more than fit the planner's context; the planner saw the {len(shown)} "
        "most relevant to the goal, each described by its first sentence"
    ]
    assert FILLER not in model.calls[0][0].content  # descriptions were cut to their first sentence


async def test_without_embeddings_the_words_of_the_goal_rank_the_catalogue():
    def missing(texts: Sequence[str]) -> np.ndarray:
        raise ModelConfigError("local embeddings need the package(s) onnxruntime")

    prompt = await Planner(SchemaModel(), big_registry(), embed=missing).prompt(GOAL)
    assert prompt.view.cut and {"tool_0", "tool_1"} <= set(prompt.view.shown)


async def test_a_catalogue_that_fits_is_shown_whole_and_without_a_note():
    registry = Registry([card for card in big_registry(12).agents.values()])
    prompt = await Planner(SchemaModel(), registry, embed=bag_of_words).prompt(GOAL)
    assert len(prompt.view.shown) == 12 and prompt.notes == [] and FILLER in prompt.messages[0].content
    assert enum_of(prompt.output_type.model_json_schema()) == set(registry.capabilities())


async def test_descriptions_are_cut_to_their_first_sentence_before_any_capability_is_dropped():
    registry = Registry([card for card in big_registry(40).agents.values()])
    # A window where the 40 long descriptions do not fit, but their first sentences do.
    prompt = await Planner(SchemaModel(context_window=3000, max_tokens=512), registry, embed=bag_of_words).prompt(GOAL)
    assert len(prompt.view.shown) == 40 and prompt.view.shortened
    assert prompt.notes == [
        "the catalogue's 40 descriptions were cut to their first sentence to fit the planner's context"
    ]


async def test_a_goal_too_long_for_the_context_is_shortened_and_a_tiny_window_is_a_clear_error():
    registry = Registry([card for card in big_registry(8).agents.values()])
    goal = "Translate this text. " + "word " * 3000
    prompt = await Planner(SchemaModel(context_window=1500, max_tokens=256), registry, embed=bag_of_words).prompt(goal)
    assert prompt.view.shown and any(note.startswith("the goal was shortened") for note in prompt.notes)
    assert "the worked examples were left out to fit the planner's context" in prompt.notes
    with pytest.raises(PlanningError, match="does not fit scripted's context window of 300 tokens"):
        await Planner(SchemaModel(context_window=300, max_tokens=100), registry, embed=bag_of_words).prompt(goal)


def test_first_sentence_skips_abbreviations():
    assert first_sentence("Finds tools, e.g. hammers. Then more.") == "Finds tools, e.g. hammers."
    assert first_sentence("No full stop here") == "No full stop here"
    assert first_sentence("Ok. This is short.") == "Ok. This is short."  # too short a first sentence is kept going


def test_rank_puts_the_capabilities_named_by_the_goal_first():
    catalogue = {"get_weather": "Get the weather for a city.", "send_email": "Send an email.", "x": "Other."}
    assert rank("What is the weather in Paris?", catalogue, None)[0] == "get_weather"
    assert rank("Email my boss", catalogue, bag_of_words)[0] == "send_email"


def test_view_notes():
    assert CatalogueView({"a": "A"}, 1).note() is None
    assert "saw the 1 most relevant" in (CatalogueView({"a": "A"}, 5).note() or "")


# ---------------------------------------------------------------------------------------------- examples


CATALOGUE = {
    "Image Downloader": "Downloads an image from a given URL.",
    "Translation": "Translation is the task of converting text from one language to another.",
    "send_email": "Send an email to a specific email address",
    "getLongUrl": "Retrieves the original long URL from a given short link.",
}


def test_a_derived_example_chains_real_capabilities_of_the_catalogue():
    example = derived_example(CATALOGUE, ranked=["send_email", "nonexistent"])
    assert example is not None
    plan = json.loads(example.plan)
    tasks = plan["tasks"]
    assert len(tasks) == 3 and tasks[0]["capability"] == "send_email"
    assert {task["capability"] for task in tasks} <= set(CATALOGUE)
    assert all(re.match(ID_PATTERN, task["id"]) for task in tasks)
    assert [task["depends_on"] for task in tasks] == [[], [tasks[0]["id"]], [tasks[1]["id"]]]
    plan_model(list(CATALOGUE), 8).model_validate(plan)  # a valid plan for this catalogue
    assert example.goal.startswith("Send an email to a specific email address, then ")


def test_examples_exist_for_any_catalogue_and_the_builtin_one_for_its_own():
    assert default_examples({"research": "", "math": "", "writing": "", "x": ""}) == [BUILTIN_SINGLE, BUILTIN_EXAMPLE]
    assert default_examples({}) == []
    one, chain = default_examples({"only": "Does the only thing."})
    assert one.goal == "Do the only thing." and len(json.loads(one.plan)["tasks"]) == 1
    assert [task["capability"] for task in json.loads(chain.plan)["tasks"]] == ["only", "only"]
    # Any catalogue: a one-task goal first, then a chain of three, on the first capabilities ranked.
    one, chain = default_examples(CATALOGUE, ranked=["getLongUrl", "send_email"])
    assert [task["capability"] for task in json.loads(one.plan)["tasks"]] == ["getLongUrl"]
    tasks = json.loads(chain.plan)["tasks"]
    assert [task["capability"] for task in tasks] == ["getLongUrl", "send_email", "Image Downloader"]
    assert {task["capability"] for task in tasks} <= set(CATALOGUE)


def test_actions_read_verbs_and_names():
    assert action("Image Downloader", CATALOGUE["Image Downloader"]) == "download an image from a given URL"
    assert action("Translation", CATALOGUE["Translation"]) == "apply Translation"
    assert action("getLongUrl", CATALOGUE["getLongUrl"]) == "retrieve the original long URL from a given short link"
    assert action("x", "Applies effects, such as reverb.") == "apply effects"


async def test_the_planner_shows_a_derived_example_unless_past_runs_are_recalled():
    registry = Registry(
        [AgentCard(name=f"a{i}", description=CATALOGUE[c], capabilities=(c,)) for i, c in enumerate(CATALOGUE)]
    )
    planner = Planner(ScriptedModel(), registry)
    user = planner.messages("goal")[1].content
    assert user.count("Example goal:") == 2 and "apply Translation" in user
    for part in user.split("Example plan: ")[1:]:
        example = json.loads(part.split("\n", 1)[0])
        assert {task["capability"] for task in example["tasks"]} <= set(CATALOGUE)
    recalled = PlanExample(goal="an old goal", plan=json.dumps(PLAN))
    assert "apply Translation" not in planner.messages("goal", [recalled])[1].content
    assert "Example goal" not in planner.messages("goal", None)[1].content


# ---------------------------------------------------------------------------------------------- embedded model


@pytest.mark.slow
async def test_the_embedded_model_plans_against_a_catalogue_of_260_capabilities(weights_home, monkeypatch):
    from orquestra.models.local import LocalModel

    monkeypatch.setenv("ORQUESTRA_HOME", str(weights_home))
    model = LocalModel()
    planner = Planner(model, big_registry(260))  # the local MiniLM embeddings rank the catalogue
    prompt = await planner.prompt(GOAL)
    schema = prompt.output_type.model_json_schema()
    assert await model.count_tokens(prompt.messages, output_schema=schema) <= model.context_window - model.max_tokens
    assert {"tool_0", "tool_1"} <= set(prompt.view.shown)
    result = await planner.plan(GOAL)
    assert 1 <= len(result.graph) <= 8 and result.notes and "260 capabilities" in result.notes[0]
    assert {task.capability for task in result.graph.tasks} <= set(prompt.view.shown)
    # The real prompts' lengths, as llama.cpp counted them, fit (one call, or one per planning stage).
    assert result.usage.input_tokens / result.usage.requests <= model.context_window - model.max_tokens


async def test_the_planned_event_carries_the_notes_so_a_streamed_run_can_show_them():
    from orquestra.events import Event, Planned
    from orquestra.team import AutoTeam

    team = AutoTeam(model=SchemaModel(responses=[PLAN]), registry=big_registry(), memory=False, store=False)
    events: list[Event] = []
    result = await team.plan(GOAL, subscribers=[events.append])
    [planned] = [event for event in events if isinstance(event, Planned)]
    assert result.notes and planned.notes == tuple(result.notes)
    assert "300 capabilities" in planned.notes[0]
