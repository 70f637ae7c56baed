from __future__ import annotations

import pytest

from orquestra import Registry, Task
from orquestra.dispatch import Dispatcher
from orquestra.exceptions import DispatchError, GraphError
from orquestra.registry import AgentCard

from .helpers import make_graph


def card(name: str, *capabilities: str, cost: float = 1.0, priority: int = 0, fallbacks=()) -> AgentCard:
    return AgentCard(
        name=name,
        description=name,
        capabilities=capabilities,
        cost=cost,
        priority=priority,
        fallbacks=tuple(fallbacks),
    )


REGISTRY = Registry(
    [
        card("pricey", "research", cost=3),
        card("cheap", "research", cost=1, fallbacks=["backup"]),
        card("also_cheap", "research", cost=1),
        card("backup", "writing"),
        card("boss", "review", priority=2, cost=10),
        card("intern", "review", cost=0.1),
    ]
)


def task(capability: str, agent: str | None = None) -> Task:
    return Task(id="t", instruction="x", capability=capability, agent=agent)


def test_cheapest_agent_wins_and_name_breaks_exact_ties():
    assignment = Dispatcher(REGISTRY).assign(task("research"))
    assert assignment.agent.name == "also_cheap"  # same cost as 'cheap': name decides


def test_priority_beats_cost():
    assert Dispatcher(REGISTRY).assign(task("review")).agent.name == "boss"


def test_fallbacks_are_declared_ones_then_other_candidates():
    assignment = Dispatcher(REGISTRY).assign(task("research", agent="cheap"))
    assert [c.name for c in assignment.chain()] == ["cheap", "backup", "also_cheap", "pricey"]


def test_past_success_breaks_ties_between_equal_agents():
    rates = {("cheap", "research"): 0.9, ("also_cheap", "research"): 0.2}
    dispatcher = Dispatcher(REGISTRY, success=lambda agent, capability: rates.get((agent, capability)))
    assert dispatcher.assign(task("research")).agent.name == "cheap"


def test_pinned_agent_is_used_and_checked():
    assert Dispatcher(REGISTRY).assign(task("research", agent="pricey")).agent.name == "pricey"
    with pytest.raises(DispatchError, match="pinned to agent 'nobody', which is not in the registry"):
        Dispatcher(REGISTRY).assign(task("research", agent="nobody"))
    with pytest.raises(DispatchError, match="pinned to agent 'backup', which lacks capability 'research'"):
        Dispatcher(REGISTRY).assign(task("research", agent="backup"))


def test_assign_all_checks_capabilities_first():
    graph = make_graph({"a": [], "b": ["a"]}, capability="research")
    assignments = Dispatcher(REGISTRY).assign_all(graph)
    assert {task_id: a.agent.name for task_id, a in assignments.items()} == {"a": "also_cheap", "b": "also_cheap"}
    with pytest.raises(GraphError, match="task 'a' needs capability 'juggling'"):
        Dispatcher(REGISTRY).assign_all(make_graph({"a": []}, capability="juggling"))
