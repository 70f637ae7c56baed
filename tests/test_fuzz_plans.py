"""Property-based tests over plans and patches: whatever a model answers, generated, not listed.

A planner's answer (any JSON, a near-plan with cycles, unknown capabilities, duplicate or odd ids, a text cut
short or with bytes changed, hostile fragments) becomes a checked graph of known capabilities within the size
limit, or a one-line `PlanningError`; the tasks watched as the answer streams in are reported without a crash.
A replanner's answer becomes a patch the engine accepts (finished work untouched), or a one-line
`ReplanError`. Every case ends within `WALL` seconds (`within_wall`); no speed is asserted.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from orquestra.engine import TaskStatus, frozen_ids
from orquestra.graph import Task, TaskGraph
from orquestra.models import ScriptedModel
from orquestra.models.redacting import RedactedModel
from orquestra.planner import PlannedTask, Planner, PlanningError
from orquestra.reflect import Replan
from orquestra.replanner import ReplanError, Replanner

from .helpers import within_wall
from .test_fuzz_loaders import _DATA, FUZZ, REGISTRY

MAX_TASKS = 8
GOAL = "Fuzz the plan."
CAPABILITIES = sorted(REGISTRY.capabilities())

# ---------------------------------------------------------------- strategies

_IDS = st.sampled_from(["a", "b", "c", "b_2", "A", "a b", "", "x" * 300, "\x1b[2J", "tasks", "0"])
_CAPABILITY = st.sampled_from([*CAPABILITIES, "unknown", "", "Research", "research "])
_TASK = st.fixed_dictionaries(
    {"id": _IDS | _DATA, "instruction": st.text(max_size=30) | _DATA, "capability": _CAPABILITY | _DATA},
    optional={"depends_on": st.lists(_IDS, max_size=4) | _DATA, "expected_output": st.text(max_size=10), "x": _DATA},
)
_PLAN = st.fixed_dictionaries({"tasks": st.lists(_TASK, max_size=MAX_TASKS + 3) | _DATA}, optional={"x": _DATA})
_PATCH = st.fixed_dictionaries(
    {},
    optional={
        "add": st.lists(_TASK, max_size=4) | _DATA,
        "remove": st.lists(_IDS, max_size=4) | _DATA,
        "rewire": st.lists(st.fixed_dictionaries({"task_id": _IDS | _DATA, "depends_on": st.lists(_IDS) | _DATA}))
        | _DATA,
        "x": _DATA,
    },
)
_FRAGMENTS = st.sampled_from(["[" * 5_000, "9" * 5_000, '{"tasks": [', "\x00", "```json\n", "}" * 50, "\ud800"])


@st.composite
def _answers(draw: st.DrawFn, shape: st.SearchStrategy[Any]) -> str:
    """An answer's text: JSON of `shape` or of anything, then perhaps cut short, or spliced with a fragment."""
    text = json.dumps(draw(shape | _DATA))
    change = draw(st.sampled_from(["none", "cut", "splice"]))
    if change == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif change == "splice":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_FRAGMENTS | st.text(max_size=5)) + text[at:]
    return text


# ---------------------------------------------------------------- plans


def plan(answer: str) -> tuple[Any, list[PlannedTask]]:
    """The planner's result for a model that always answers `answer` (re-asks too), and the tasks it watched."""
    drafted: list[PlannedTask] = []
    # Redacted as a team's models are: the watched answer passes through the redaction's hold-back too.
    model = RedactedModel(ScriptedModel(lambda messages: answer, name="planner"))
    planner = Planner(model, REGISTRY, max_tasks=MAX_TASKS)
    return within_wall(lambda: asyncio.run(planner.plan(GOAL, drafted=drafted.append))), drafted


@FUZZ
@given(_answers(_PLAN))
@example(json.dumps({"tasks": [{"id": "a", "instruction": "x", "capability": "research", "depends_on": ["a"]}]}))
@example('{"tasks": [{"id": "a", "instruction": "x", "capability": "research"}, {"id": "a"')
# What it found: dependencies that are not a list, an integer past Python's digit limit, nesting deeper than
# the JSON reader goes, and a lone surrogate (which pydantic cannot read) each escaped as a traceback.
@example('{"tasks": [{"id": "a", "instruction": "x", "capability": "research", "depends_on": 1}, {"id": "a"}]}')
@example("9" * 5_000 + '{"tasks": []}')
@example("[" * 5_000)
@example('\ud800{"tasks": []}')
def test_any_plan_a_model_writes_is_a_checked_graph_or_one_planning_error(answer: str) -> None:
    try:
        result, drafted = plan(answer)
    except PlanningError as error:
        assert "\n" not in error.message, error.message
        return
    graph = result.graph
    assert isinstance(graph, TaskGraph) and 0 < len(graph) <= MAX_TASKS
    graph.check_capabilities(CAPABILITIES)
    assert all(isinstance(task, PlannedTask) for task in drafted)


# ---------------------------------------------------------------- patches

GRAPH = TaskGraph(
    tasks=[
        Task(id="a", instruction="Find facts.", capability="research"),
        Task(id="b", instruction="Write it up.", capability="writing", depends_on=("a",)),
        Task(id="c", instruction="Check it.", capability="research"),
    ]
)
STATUSES = {"a": TaskStatus.SUCCEEDED, "b": TaskStatus.PENDING, "c": TaskStatus.FAILED}


@FUZZ
@given(_answers(_PATCH))
@example(json.dumps({"add": [{"id": "a", "instruction": "Again.", "capability": "research"}]}))
@example(json.dumps({"add": [{"id": ["a"], "instruction": "x", "capability": "research"}], "remove": 5}))
def test_any_patch_a_model_writes_is_one_the_engine_accepts_or_one_replan_error(answer: str) -> None:
    replanner = Replanner(ScriptedModel(lambda messages: answer, name="replanner"), CAPABILITIES)
    verdict = Replan(reason="c failed", change="try another way")
    try:
        patch = within_wall(lambda: asyncio.run(replanner.patch(GOAL, GRAPH, STATUSES, {"a": "facts"}, verdict)))
    except ReplanError as error:
        assert "\n" not in error.message, error.message
        return
    frozen = frozen_ids(STATUSES, {}, patch.remove)
    patched = GRAPH.apply(patch, frozen=frozen)  # raises if the engine would refuse it
    patched.check_capabilities(CAPABILITIES)
    assert all(patched[task_id] == GRAPH[task_id] for task_id in frozen)  # finished work is untouched
