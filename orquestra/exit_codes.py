"""The exit codes of the `orquestra` command: one for each way a run can end, so a script can tell them apart.

| code | meaning |
|---|---|
| 0 | every task of the goal succeeded (or the loop judged the goal met before the rest was needed) |
| 1 | a task failed for good the answer could not be written, or the model failed for good while planning |
| 2 | a mistake in the input: a flag, a file, a card, a model string |
| 3 | a budget of tokens, cost or time was reached; the answer uses what was done |
| 4 | the loop gave up: a stall, the replan limit, or a replan that failed |
| 5 | the run was stopped early on purpose for another reason |
| 130 | cancelled (Ctrl-C) |
"""

from __future__ import annotations

from orquestra.engine import RunStatus

SUCCEEDED = 0
FAILED = 1
USAGE = 2
OUT_OF_BUDGET = 3
GAVE_UP = 4
STOPPED = 5
INTERRUPTED = 130

_BY_STATUS = {
    RunStatus.SUCCEEDED: SUCCEEDED,
    RunStatus.FAILED: FAILED,
    RunStatus.OUT_OF_BUDGET: OUT_OF_BUDGET,
    RunStatus.GAVE_UP: GAVE_UP,
    RunStatus.STOPPED: STOPPED,
    RunStatus.CANCELLED: INTERRUPTED,
}


def exit_code(status: RunStatus | str) -> int:
    """The exit code of a run that ended with `status`."""
    return _BY_STATUS[RunStatus(status)]
