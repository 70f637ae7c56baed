"""One task with one agent: its prompts, its dependencies' outputs, its tools, and its fallbacks.

`AgentRunner` is the engine's `run_task` for agent teams. For each task it tries the assigned agent's
model, then the agent's fallback models, then the fallback agents, each through the same tool-calling
loop. A tool call counts however the model writes it: through the provider's tool-call channel, or as
text (`orquestra.tools.textcalls`); either way it runs, and its result goes back to the model. An answer
counts only once it passes its checks (`orquestra.checks`); a failed check goes back to the agent with
the reason, and a second failure hands the task to the next model or agent. Inputs that would overflow
the context window are trimmed, with a note to the agent, and a context-length refusal is retried once
with half the room.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orquestra.checks import Attempt, ToolResult, promised_files, run_checks
from orquestra.dispatch import Assignment, Dispatcher
from orquestra.events import AgentFallback, Event, ResultChecked, ToolCalled
from orquestra.exceptions import CheckFailed, ContextLengthExceeded, ModelConfigError, ModelError
from orquestra.graph import Task
from orquestra.models import Message, Model, ModelResponse, ToolCall, ToolChoice, Usage
from orquestra.prompts import render
from orquestra.registry import AgentCard
from orquestra.tools.context import ToolContext, ToolLimits
from orquestra.tools.textcalls import read_text_calls
from orquestra.tools.toolbox import Toolbox, preview
from orquestra.trimming import CHARS_PER_TOKEN, estimate_tokens, fit_texts

FINAL_REQUEST = "Give your final answer now, without calling tools."
"""Sent once the tool rounds are spent (or a call was repeated)."""
TEXT_RESULTS_NEXT = "Answer the task with these results, in words; call a tool only if you need another result."
"""Sent after the results of calls written as text: small models tend to write the same call again."""
RESERVED_FOR_ANSWER = 1024
"""Tokens of the context window left free for the agent's answer and its tool calls."""


@dataclass
class AgentRunner:
    """Runs tasks through their agents; usable directly as the engine's `run_task`.

    Args:
        dispatcher: chooses the agent (and fallbacks) of tasks it has not seen yet.
        model_for: the model for a model string (the runner asks for each agent's model and fallbacks).
        default_model: the model string of agents whose card names none.
        workspace: the folder the run's file tools may read and write.
        goal: the run's overall goal, shown to every agent.
        emit: receives `ToolCalled` and `AgentFallback` events.
        run_id: the id those events carry.

    """

    dispatcher: Dispatcher
    model_for: Callable[[str], Model]
    default_model: str
    workspace: Path
    goal: str = ""
    emit: Callable[[Event], None] | None = None
    run_id: str = ""
    max_tool_steps: int = 6
    """Rounds of tool calls one answer may take; then the agent must answer without tools."""
    check_retries: int = 1
    """Times an agent is asked again, told why, after an answer fails its checks (then its fallbacks try)."""
    tool_limits: ToolLimits = field(default_factory=ToolLimits)
    """How much one tool call may take in and give back, and how long it may run."""
    assignments: dict[str, Assignment] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost of every call made so far."""
    task_usage: dict[str, Usage] = field(default_factory=dict)

    async def __call__(self, task: Task, inputs: Mapping[str, Any]) -> str:
        """Run `task` and return the answer of the first agent and model that succeed."""
        assignment = self.assignments.get(task.id)
        if assignment is None:  # a task added by a replan
            assignment = self.assignments[task.id] = self.dispatcher.assign(task)
        failures: list[str] = []
        for agent in assignment.chain():
            for spec in (agent.model or self.default_model, *agent.fallback_models):
                try:
                    return await self._run_with(agent, self.model_for(spec), task, inputs)
                except ModelConfigError:
                    raise
                except ModelError as error:
                    # Provider errors start with the model's name already; check failures do not.
                    said = str(error)
                    failures.append(
                        f"{agent.name}: {said}" if said.startswith(f"{spec}:") else f"{agent.name} on {spec}: {said}"
                    )
                    if self.emit:
                        self.emit(AgentFallback(self.run_id, task.id, agent.name, spec, str(error)))
        raise ModelError("every agent and model failed: " + "; ".join(failures))

    async def _run_with(self, agent: AgentCard, model: Model, task: Task, inputs: Mapping[str, Any]) -> str:
        toolbox = Toolbox(
            [self.dispatcher.registry.tools[name] for name in agent.tools],
            ToolContext(self.workspace, self.tool_limits),
        )
        system = render(f"agents/{agent.prompt}.j2", agent=agent)
        room = model.context_window - RESERVED_FOR_ANSWER - estimate_tokens(system + task.instruction) - 200
        try:
            return await self._converse(agent, model, task, system, inputs, room, toolbox)
        except ContextLengthExceeded:
            # Our estimate was too generous for this model's tokenizer: one more try with half the room.
            return await self._converse(agent, model, task, system, inputs, room // 2, toolbox)

    async def _converse(
        self,
        agent: AgentCard,
        model: Model,
        task: Task,
        system: str,
        inputs: Mapping[str, Any],
        room: int,
        toolbox: Toolbox,
    ) -> str:
        texts, trimmed = fit_texts({key: str(value) for key, value in inputs.items()}, int(room * CHARS_PER_TOKEN))
        user = render("task.j2", goal=self.goal, task=task, inputs=texts, trimmed=trimmed)
        messages = [Message("system", system), Message("user", user)]
        started = time.time()  # the files this agent writes are newer; older ones are not its work
        ran: list[ToolResult] = []
        done: dict[str, str] = {}
        tool_rounds = answers = 0
        reminded = False  # told that a tool call is required and was not made
        writers = {name for name, card in toolbox.cards.items() if "write_workspace" in card.permissions}
        computes = any("compute" in card.permissions for card in toolbox.cards.values())
        known_tools = {name: card.arguments for name, card in self.dispatcher.registry.tools.items()}
        # A task that says it writes a file must call a tool that writes, however sure the model is it need not.
        must_write = bool(writers) and bool(promised_files(f"{task.instruction}\n{task.expected_output}"))
        while True:
            offered = toolbox.specs() if tool_rounds < self.max_tool_steps else []
            wrote = any(result.name in writers for result in ran)
            # A card may require a tool call first; after it, the agent is free to answer.
            required = (agent.tool_choice == "required" and not ran and not answers) or (must_write and not wrote)
            choice: ToolChoice = "required" if offered and required else "auto"
            if toolbox and not offered and messages[-1].content != FINAL_REQUEST:
                messages.append(Message("user", FINAL_REQUEST))
            response = await model.request(messages, tools=offered, tool_choice=choice)
            self._count(task.id, response.usage)
            calls, problems = self._calls_in(response, toolbox if offered else None)
            if calls or problems:
                tool_rounds += 1
                if await self._call_tools(task, response, calls, problems, toolbox, messages, ran, done):
                    tool_rounds = self.max_tool_steps  # a repeated call: time to answer with what it has
                continue
            if choice == "required" and not reminded:
                # Servers that take tool_choice but do not enforce it (llama.cpp's) let the model answer at once;
                # the card's rule holds anyway: the model is told once, and that answer is not checked as one.
                reminded = True
                tool_rounds += 1
                messages.append(Message("assistant", response.text))
                messages.append(Message("user", render("tool_required.j2", tools=offered)))
                continue
            answers += 1
            attempt = Attempt(
                output=response.text,
                instruction=task.instruction,
                expected_output=task.expected_output,
                system_prompt=system,
                workspace=self.workspace,
                tool_results=tuple(ran),
                tools=known_tools,  # a call of any registry tool written as text is not an answer
                goal=self.goal,
                inputs=tuple(texts.values()),
                computes=computes,
                started=started,
            )
            verdict = run_checks(attempt, (*agent.checks, *task.checks))
            if self.emit:
                self.emit(
                    ResultChecked(
                        self.run_id, task.id, agent.name, verdict.passed, verdict.checks, verdict.failures, answers
                    )
                )
            if verdict.passed:
                return response.text
            if answers > self.check_retries:
                raise CheckFailed(f"the answer failed its checks: {'; '.join(verdict.failures)}")
            messages.append(Message("assistant", response.text))
            messages.append(Message("user", render("rejected.j2", failures=verdict.failures)))

    def _calls_in(self, response: ModelResponse, toolbox: Toolbox | None) -> tuple[tuple[ToolCall, ...], list[str]]:
        """The calls to run and the problems of calls that cannot run, native or written as text."""
        if toolbox is None:
            return (), []
        if response.tool_calls:
            return response.tool_calls, []
        found = read_text_calls(response.text, toolbox.schemas())
        return found.calls, list(found.problems)

    async def _call_tools(
        self,
        task: Task,
        response: ModelResponse,
        calls: Sequence[ToolCall],
        problems: Sequence[str],
        toolbox: Toolbox,
        messages: list[Message],
        ran: list[ToolResult],
        done: dict[str, str],
    ) -> bool:
        """Run `calls` (or report `problems`) and add the exchange to `messages`.

        `done` holds the result of every call made so far, by call: a call made again is not run again.
        Returns whether any call was a repeat.
        """
        any_repeat = False
        native = bool(response.tool_calls)
        # A call refused as too large is kept as a preview: it would otherwise go back with every request.
        kept = tuple(replace(call, arguments=toolbox.recordable(call.arguments)) for call in calls)
        oversized = any(kept_call.arguments is not call.arguments for kept_call, call in zip(kept, calls, strict=True))
        said = preview(response.text) if oversized else response.text
        # Calls the provider parsed go back in its own format; calls read from text go back as text, which
        # every provider accepts (a server that does not parse tool calls may not take tool messages either).
        messages.append(Message("assistant", said, tool_calls=kept if native else ()))
        results: list[str] = []
        for call, kept_call in zip(calls, kept, strict=True):
            # By the kept arguments: a refused, oversized call is not copied whole once more to make its key.
            key = json.dumps([call.name, kept_call.arguments], sort_keys=True, default=str)
            earlier = done.get(key)
            if earlier is not None:
                # Small models repeat a call whose result they did not like; running it again changes nothing.
                result = f"{earlier}\n(You made this same call before and got this same result: do not repeat it.)"
                repeated = True
            else:
                result = done[key] = await toolbox.call(call)
                repeated = False
            if self.emit and not repeated:
                self.emit(ToolCalled(self.run_id, task.id, call.name, kept_call.arguments, result))
            if not result.startswith("error:") and not repeated:
                ran.append(ToolResult(call.name, call.arguments, result))
            if native:
                messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
            else:
                results.append(f"Result of {call.name}: {result}")
            any_repeat = any_repeat or repeated
        for problem in problems:
            results.append(f"Your tool call cannot run: {problem}.")
        if results:
            if not problems:
                results.append(TEXT_RESULTS_NEXT)
            messages.append(Message("user", "\n".join(results)))
        return any_repeat

    def _count(self, task_id: str, usage: Usage) -> None:
        self.usage = self.usage + usage
        self.task_usage[task_id] = self.task_usage.get(task_id, Usage()) + usage
