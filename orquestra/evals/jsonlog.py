"""The results log both evals keep: a header line naming suite and model, then one case record a line.

A record is appended, and the file closed, as soon as a case finishes, so an interrupted eval loses only the
cases still running and the next run resumes from the log. A line cut short by the interruption is skipped
on reading and ended before the next append. A log written for another suite or model, or a file that is
not such a log, is refused with one line that says to pass --fresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from orquestra.exceptions import UserError

_IDENTITY = ("suite", "model")
"""Header fields that must match for a log to be resumed."""


class JsonLinesLog:
    """One eval's results log at `path`; `header` names what wrote it (at least its suite and model)."""

    def __init__(self, path: Path, header: Mapping[str, Any], *, fresh: bool = False) -> None:
        self.path = path
        self.header = {"kind": "header", **header}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh and path.exists():
                path.unlink()
        except OSError as error:
            raise UserError(f"{path.parent}: cannot use the output folder: {error.strerror}") from None

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each case record logged so far, with its line number (from 1), after checking the header."""
        if not self.path.exists():
            return
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == 1:
                    raise self._not_a_log() from None
                continue  # a write cut short by an interruption; that case simply runs again
            if number == 1:
                self._check_header(record)
            elif isinstance(record, dict) and record.get("kind") == "case":
                yield number, record

    def not_a_result(self, number: int) -> UserError:
        """The error for line `number`, which holds a record this eval cannot read."""
        return UserError(f"{self.path}: line {number} is not a result of this eval; pass --fresh to start over")

    def add_record(self, record: Mapping[str, Any]) -> None:
        """Append one record, flushed to disk at once (the file is closed after every line)."""
        with self.path.open("a+b") as file:
            file.seek(0, os.SEEK_END)
            if file.tell() == 0:
                file.write(_line(self.header))
            else:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":  # a line cut short by an interruption: end it first
                    file.write(b"\n")
            file.write(_line(record))

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Start the log again with these records; written aside and moved into place, so never half-written."""
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(b"".join([_line(self.header), *(_line(record) for record in records)]))
        os.replace(partial, self.path)

    def _check_header(self, record: Any) -> None:
        if not isinstance(record, dict) or record.get("kind") != "header":
            raise self._not_a_log()
        if any(record.get(key) != self.header.get(key) for key in _IDENTITY):
            raise UserError(
                f"{self.path}: holds results of suite '{record.get('suite')}' with model '{record.get('model')}'; "
                "pass --fresh to start over or --out for another folder"
            )

    def _not_a_log(self) -> UserError:
        return UserError(f"{self.path}: line 1 is not this eval's header; pass --fresh to start over")


def _line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record) + "\n").encode("utf-8")
