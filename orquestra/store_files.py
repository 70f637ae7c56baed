"""Texts too long for a row of the run store: kept in a file of the run's folder, the row holding a reference.

A long task output, or the content a tool was asked to write, would otherwise sit whole in one event row (and
again in the task's row): each write then holds the database lock for as long as it takes, and every read of
the run loads it all. Instead, a text longer than `INLINE_CHARS` is written once to
``<folder>/<run id>/<sha256>.txt`` and replaced in the row by a reference with a preview::

    {"$stored": "<sha256>", "chars": 1200000, "preview": "the first characters…"}

Reading the run puts the text back (`TextFiles.restore`), so `runs show` and `runs export` show it whole. A
reference names its file only by the digest of the content, so a forged one (an output that merely looks like
a reference) cannot point anywhere else: it is shown as written, unless it names the exact digest of another
long text of the same run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orquestra.redaction import redact

INLINE_CHARS = 16_000
"""Texts up to this many characters stay in the store's rows; longer ones go to a file of the run's folder."""
PREVIEW_CHARS = 500
"""Characters of a stored text that its reference keeps, for whoever reads the row itself."""

_KEY = "$stored"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class TextFiles:
    """The folder where one run store keeps its long texts, one subfolder per run."""

    root: Path
    inline_chars: int = INLINE_CHARS

    def spill(self, run_id: str, data: Any) -> Any:
        """`data` (JSON data) with each string longer than `inline_chars` written out and replaced by a reference."""
        if isinstance(data, str):
            return self._reference(run_id, data) if len(data) > self.inline_chars else data
        if isinstance(data, dict):
            return {key: self.spill(run_id, value) for key, value in data.items()}
        if isinstance(data, list):
            return [self.spill(run_id, value) for value in data]
        return data

    def spill_text(self, run_id: str, text: str) -> str:
        """`text` as a column holds it: itself, or (when long) its reference as JSON."""
        if len(text) <= self.inline_chars:
            return text
        return json.dumps(self._reference(run_id, text), ensure_ascii=False)

    def restore(self, run_id: str, data: Any) -> Any:
        """`data` with every reference of this run replaced by its text again."""
        if isinstance(data, dict):
            text = self._dereference(run_id, data)
            if text is not None:
                return text
            return {key: self.restore(run_id, value) for key, value in data.items()}
        if isinstance(data, list):
            return [self.restore(run_id, value) for value in data]
        return data

    def restore_text(self, run_id: str, text: str | None) -> str | None:
        """A column's text, with its reference (if it holds one) replaced by the text it stands for."""
        if text is None or not text.startswith('{"' + _KEY):
            return text
        try:
            reference = json.loads(text)
        except ValueError:
            return text
        restored = self._dereference(run_id, reference) if isinstance(reference, dict) else None
        return text if restored is None else restored

    def delete(self, run_id: str) -> None:
        """Remove the run's folder and every text in it."""
        shutil.rmtree(self._folder(run_id), ignore_errors=True)

    def _folder(self, run_id: str) -> Path:
        # A run id the caller chose may hold anything; the folder's name must stay one plain name.
        name = run_id if _SAFE_RUN_ID.match(run_id) and run_id not in (".", "..") else _digest(run_id)
        return self.root / name

    def _reference(self, run_id: str, text: str) -> dict[str, Any]:
        # A long text leaves the row before the store's writer redacts it: its file must be redacted too.
        text = redact(text)
        digest = _digest(text)
        path = self._folder(run_id) / f"{digest}.txt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then renamed: a reader never finds half a file under the final name.
            partial = path.with_name(f"{digest}.{os.getpid()}.{threading.get_ident()}.part")
            partial.write_bytes(_encoded(text))  # bytes, not text: newlines stay exactly as they were
            partial.replace(path)
        return {_KEY: digest, "chars": len(text), "preview": text[:PREVIEW_CHARS]}

    def _dereference(self, run_id: str, reference: dict[str, Any]) -> str | None:
        """The text `reference` stands for; None when it is not a reference of this run (or its file is gone)."""
        digest = reference.get(_KEY)
        if set(reference) != {_KEY, "chars", "preview"} or not isinstance(digest, str) or not _DIGEST.match(digest):
            return None
        path = self._folder(run_id) / f"{digest}.txt"
        try:
            return path.read_bytes().decode("utf-8", errors="surrogatepass")
        except OSError:  # deleted by hand, or never ours: the reference itself, preview and all, is what is left
            return None


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")  # a lone surrogate from a model's JSON survives too


def _digest(text: str) -> str:
    return hashlib.sha256(_encoded(text)).hexdigest()
