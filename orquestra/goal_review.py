"""What a run's goal asks, reviewed before the run may report success: the files it names, the figure it asks.

Each task's result is checked on its own (`orquestra.checks`), but a team whose every task passed can still
miss its goal: a plan whose instructions dropped the file the goal names, or an answer whose figure a later
task recomputed wrongly. So a run that succeeded is reviewed against its goal:

- **Files.** Each file the goal says is written must be in the workspace. When one is missing, one added task
  writes it from the final results, pinned to an agent that may write files; its own checks make sure the
  file is there. If it cannot, the run fails, naming the file.
- **The figure.** It is worked out once more from the goal alone: converted exactly when the goal asks to
  convert a quantity (`orquestra.unit_check`), else by the model and the calculator
  (`orquestra.answer_check`). An answer that does not state it is replaced by a task's result that does;
  failing that, the goal is run again as one task by an agent that computes (told, for a conversion, to let
  the calculator convert the units), and that task's answer is kept if it states the figure. If nothing
  confirms the figure, the run fails with both figures in its reason.
- **The translation.** A goal that asks to translate an English text has its answer translated back
  (`orquestra.translation_check`). An answer whose round trip loses a word of the text is replaced by the
  latest task's result if that one keeps them all; failing that, the goal is run again as one task by the
  agent of the run's last task, and its answer is kept if it passes. Else the run fails, naming the words.

The added tasks run through the run's own `AgentRunner`, so they are checked, metered and recorded as the
plan's tasks are; they are not added to the run's graph, which stays the graph that was planned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orquestra.agent import AgentRunner
from orquestra.answer_check import AnswerCheck, check_answer
from orquestra.checks import find_in_workspace, promised_files, states_number
from orquestra.engine import RunResult
from orquestra.exceptions import OrquestraError
from orquestra.graph import Task, numbered_id
from orquestra.models import Model
from orquestra.registry import AgentCard, Registry
from orquestra.translation_check import asks_for_translation, check_translation
from orquestra.unit_check import check_conversion

WRITES_FILES = "write_workspace"
"""The permission of a tool that writes into the workspace."""
COMPUTES = "compute"
"""The permission of a tool that computes (the calculator)."""
CONVERT_WITH_UNITS = (
    "Let the calculator do the conversion: write the quantity with its units and end the expression with"
    " `in` and the unit asked for, as in `(2 hours + 15 minutes) in minutes`."
)
"""How a conversion is worked again: small models convert in their heads (`3*60+20` seconds) unless told."""


@dataclass
class Review:
    """What the review found: the answer to give, and why the run fails (None when nothing does).

    `notes` say how the answer came to be confirmed another way; the run's status stands with them.
    """

    answer: str
    failure: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class GoalReview:
    """Reviews one finished run against its goal, with the run's agents and the registry they came from."""

    registry: Registry
    runner: AgentRunner
    run: RunResult
    report: Callable[[AnswerCheck], None]
    """Hears each verdict on the answer's figure."""
    notes: list[str] = field(default_factory=list)
    """What the review did that the plan had not (a file written by an added task), for the run's reason."""

    async def missing_files(self, goal: str) -> str | None:
        """Write each file `goal` names that the workspace lacks; the reason the run fails when one stays missing."""
        missing = [name for name in promised_files(goal) if find_in_workspace(self.runner.workspace, name) is None]
        if not missing:
            return None
        names = ", ".join(missing)
        writer = self._agent_with(WRITES_FILES, self._run_agents())
        if writer is None:
            return f"the goal asks for {names}, which no task wrote, and no agent may write files"
        instruction = f"Write {names} as the overall goal asks, from the results below."
        task = Task(
            id=self._free_id("write_files"),
            instruction=instruction,
            capability=writer.capabilities[0],
            agent=writer.name,
        )
        inputs = {t.id: self.run.outputs[t.id] for t in self.run.graph.sinks() if t.id in self.run.finished}
        try:
            await self.runner(task, inputs)
        except OrquestraError as error:  # its checks failed (no file written), a provider, the budget
            return f"the goal asks for {names}, which no task wrote, and writing it failed: {error}"
        self.notes.append(
            f"the goal asks for {names}, which no task wrote; task {task.id!r} added by the review wrote it"
        )
        return None

    async def figure(self, model: Model, goal: str, answer: str) -> Review:
        """`answer` with its figure confirmed, replaced by one that is, or failed (see the module docstring)."""
        conversion = check_conversion(goal, answer)
        verdict = conversion or await check_answer(model, goal, answer)
        self.report(verdict)
        if verdict.passed is not False:
            return Review(answer)
        agreeing = self._result_stating(float(verdict.value))
        if agreeing is not None:  # a task worked the figure out and the written answer lost it: quote that task
            task_id, output = agreeing
            self.report(
                AnswerCheck(True, f"task {task_id!r} states {verdict.value}", verdict.expression, verdict.value)
            )
            note = f"the written answer was not confirmed ({verdict.why}); the result of task {task_id!r} agrees"
            told = f"[{task_id}] {output}\n\n(Worked out again: {verdict.why}; the result of task {task_id!r} agrees.)"
            return Review(told, notes=[note])
        if not verdict.claims:  # the answer may answer a goal that asks for no figure: it is not judged
            self.report(AnswerCheck(None, f"{verdict.why}, which no task's result states"))
            return Review(answer)
        again = await self._worked_again(
            f"{goal}\n\n{CONVERT_WITH_UNITS}" if conversion else goal, float(verdict.value)
        )
        if again is None:
            return Review(
                f"{answer}\n\nNot confirmed: {verdict.why}.", f"the answer's figure is not confirmed: {verdict.why}"
            )
        confirmed = f"the goal run again as one task states {verdict.value}"
        self.report(AnswerCheck(True, confirmed, verdict.expression, verdict.value))
        note = f"the team's answer was not confirmed ({verdict.why}); the goal run again as one task agrees"
        return Review(
            f"{again}\n\n(Worked out again: {verdict.why}, and the goal run again as one task agrees.)", notes=[note]
        )

    async def translation(self, model: Model, goal: str, answer: str) -> Review:
        """`answer` with its translation confirmed, replaced by one that is, or failed (see the module docstring)."""
        if not asks_for_translation(goal):
            return Review(answer)
        verdict = await check_translation(model, goal, answer)
        self.report(verdict)
        if verdict.passed is not False:
            return Review(answer)
        latest = self._latest_result()
        if latest is not None and latest[1].strip() != answer.strip():
            task_id, output = latest
            if await self._confirmed(model, goal, output, f"the result of task {task_id!r}"):
                note = f"the written answer was not confirmed ({verdict.why}); the result of task {task_id!r} is"
                return Review(output, notes=[note])
        agents = self._run_agents()
        again = await self._run_again(goal, agents[0]) if agents and agents[0].capabilities else None
        if again is not None and await self._confirmed(model, goal, again, "the goal run again as one task"):
            note = f"the team's answer was not confirmed ({verdict.why}); the goal run again as one task is"
            return Review(again, notes=[note])
        return Review(f"{answer}\n\nNot confirmed: {verdict.why}.", f"the translation is not confirmed: {verdict.why}")

    async def _confirmed(self, model: Model, goal: str, output: str, whose: str) -> bool:
        """Whether `output` passes as the goal's translation; a pass is reported as `whose`."""
        verdict = await check_translation(model, goal, output)
        if verdict.passed:
            self.report(AnswerCheck(True, f"{whose}: {verdict.why}", verdict.expression, verdict.value))
        return verdict.passed is True

    async def _worked_again(self, goal: str, value: float) -> str | None:
        """The answer of the goal run as one task by a computing agent of the run, if it states `value`."""
        agent = self._agent_with(COMPUTES, self._run_agents(), only_these=True)
        if agent is None:
            return None
        output = await self._run_again(goal, agent)
        return output if output is not None and states_number(output, value) else None

    async def _run_again(self, goal: str, agent: AgentCard) -> str | None:
        """The answer of `goal` run as one task by `agent`, or None when the task fails."""
        task = Task(
            id=self._free_id("worked_again"), instruction=goal, capability=agent.capabilities[0], agent=agent.name
        )
        try:
            return await self.runner(task, {})
        except OrquestraError:  # the agent failed its checks, a provider, the budget: nothing confirms the answer
            return None

    def _latest_result(self) -> tuple[str, str] | None:
        """The last finished task of the run in plan order, with its result."""
        for task in reversed(self.run.graph.tasks):
            if task.id in self.run.finished:
                return task.id, str(self.run.outputs[task.id])
        return None

    def _result_stating(self, value: float) -> tuple[str, str] | None:
        """The latest finished task of the run (in plan order) whose result states `value`, with that result."""
        for task in reversed(self.run.graph.tasks):
            if task.id in self.run.finished and states_number(str(self.run.outputs[task.id]), value):
                return task.id, str(self.run.outputs[task.id])
        return None

    def _run_agents(self) -> list[AgentCard]:
        """The agents that worked on the run's tasks, the last task's first."""
        cards = [
            self.runner.assignments[t.id].agent
            for t in reversed(self.run.graph.tasks)
            if t.id in self.runner.assignments
        ]
        return list({card.name: card for card in cards}.values())

    def _agent_with(
        self, permission: str, preferred: Iterable[AgentCard], *, only_these: bool = False
    ) -> AgentCard | None:
        """An agent with a tool of `permission`: one of `preferred` if any has one, else the registry's cheapest."""
        candidates = (
            list(preferred)
            if only_these
            else [*preferred, *sorted(self.registry.agents.values(), key=lambda c: c.cost)]
        )
        for card in candidates:
            tools = [self.registry.tools[name] for name in card.tools if name in self.registry.tools]
            if card.capabilities and any(permission in tool.permissions for tool in tools):
                return card
        return None

    def _free_id(self, stem: str) -> str:
        """`stem`, or `stem_2`, `stem_3`...: an id no task of the run has."""
        taken = self.run.graph.by_id
        return stem if stem not in taken else numbered_id(stem, taken)
