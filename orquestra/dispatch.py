"""Which agent takes each task: by capability, then priority, cost and past success; fallbacks recorded.

The dispatcher is pure: it reads the registry and, when given one, a record of agents' past success. It
never calls a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orquestra.exceptions import DispatchError
from orquestra.graph import Task, TaskGraph
from orquestra.registry import AgentCard, Registry

SuccessRate = Callable[[str, str], float | None]
"""Past success of an agent (name) on a capability, between 0 and 1, or None when unknown."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """The agent chosen for a task, and the agents to try, in order, once its retries are exhausted."""

    task_id: str
    agent: AgentCard
    fallbacks: tuple[AgentCard, ...] = ()

    def chain(self) -> tuple[AgentCard, ...]:
        """The chosen agent followed by its fallbacks."""
        return (self.agent, *self.fallbacks)


class Dispatcher:
    """Assigns tasks to agents of a registry.

    Among agents offering a task's capability, the highest priority wins, then the lowest cost, then the
    best past success (when `success` knows it), then the name, so the choice is deterministic. A task
    pinned to an agent gets that agent. Fallbacks are the chosen agent's own declared fallbacks first,
    then the other agents offering the capability, in the same order.
    """

    def __init__(self, registry: Registry, success: SuccessRate | None = None) -> None:
        self.registry = registry
        self.success = success

    def candidates(self, capability: str) -> list[AgentCard]:
        """Agents offering `capability`, best first."""
        cards = self.registry.agents_for(capability)
        success = self.success
        if success is None:
            return cards

        def rank(card: AgentCard) -> tuple[int, float, float, str]:
            rate = success(card.name, capability)
            return (-card.priority, card.cost, -(rate if rate is not None else 0.5), card.name)

        return sorted(cards, key=rank)

    def assign(self, task: Task) -> Assignment:
        """Choose the agent for `task`; `DispatchError` says why when none can take it."""
        candidates = self.candidates(task.capability)
        if task.agent is not None:
            agent = self.registry.agents.get(task.agent)
            if agent is None:
                raise DispatchError(f"task '{task.id}' is pinned to agent '{task.agent}', which is not in the registry")
            if task.capability not in agent.capabilities:
                raise DispatchError(
                    f"task '{task.id}' is pinned to agent '{agent.name}', which lacks capability '{task.capability}'"
                )
        elif candidates:
            agent = candidates[0]
        else:
            raise DispatchError(f"task '{task.id}': no agent offers capability '{task.capability}'")
        declared = [self.registry.agents[name] for name in agent.fallbacks]
        ordered = [*declared, *candidates]
        fallbacks: list[AgentCard] = []
        for card in ordered:
            if card.name != agent.name and card not in fallbacks:
                fallbacks.append(card)
        return Assignment(task.id, agent, tuple(fallbacks))

    def assign_all(self, graph: TaskGraph) -> dict[str, Assignment]:
        """Assign every task of `graph`, after checking that the registry knows each capability."""
        graph.check_capabilities(self.registry.capabilities())
        return {task.id: self.assign(task) for task in graph.tasks}
