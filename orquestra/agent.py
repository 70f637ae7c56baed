"""One task with one agent: its prompts, its dependencies' outputs, and the call to its model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orquestra.dispatch import Assignment
from orquestra.graph import Task
from orquestra.models import Message, Model, Usage
from orquestra.prompts import render
from orquestra.registry import AgentCard


@dataclass
class AgentRunner:
    """Runs tasks through their assigned agents; usable directly as the engine's `run_task`.

    Args:
        assignments: the dispatcher's choice for each task id.
        model_for: the model an agent card uses.
        goal: the run's overall goal, shown to every agent.

    """

    assignments: Mapping[str, Assignment]
    model_for: Callable[[AgentCard], Model]
    goal: str = ""
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost of every call made so far."""

    async def __call__(self, task: Task, inputs: Mapping[str, Any]) -> str:
        """Run `task` with its agent and return the agent's answer."""
        agent = self.assignments[task.id].agent
        messages = [
            Message("system", render(f"agents/{agent.prompt}.j2", agent=agent)),
            Message("user", render("task.j2", goal=self.goal, task=task, inputs=inputs, trimmed=False)),
        ]
        response = await self.model_for(agent).request(messages)
        self.usage = self.usage + response.usage
        return response.text
