"""Reading a plan's JSON while the model writes it: where its last whole task object ends.

A task is whole once the brace that closes it is written (outside strings). Before that, a partial parse
would show the task with fewer dependencies than it will have, or a cut instruction.
"""

from __future__ import annotations


class WholeTaskCut:
    """Follows a growing plan text and knows the end of its last whole task: ``{"tasks": [{...}, {...}``.

    Feed it each longer version of the answer with `advance`; a text that does not extend the one seen so far
    (a re-asked answer) starts the reading over.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._seen = ""
        self.end = 0
        """Where the last whole task object ends in the text seen so far (0 before the first)."""
        self._stack: list[str] = []
        self._in_string = False
        self._escaped = False

    def advance(self, text: str) -> bool:
        """Read `text`, the answer so far; whether it starts a new answer rather than extending the last."""
        restarted = not text.startswith(self._seen)
        if restarted:
            self._reset()
        for index in range(len(self._seen), len(text)):
            self._scan(text[index], index)
        self._seen = text
        return restarted

    def _scan(self, char: str, index: int) -> None:
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._in_string = False
        elif char == '"':
            self._in_string = True
        elif char in "{[":
            self._stack.append(char)
        elif char in "}]" and self._stack:
            self._stack.pop()
            if char == "}" and self._stack == ["{", "["]:
                self.end = index + 1
