"""What every part of an eval shares: a case with its gold graph, a predicted graph, and a case's scores.

Graphs here are plain data, not `TaskGraph`s: a prediction may be invalid (cycles, dangling edges, unknown
capabilities) and must still be scored, as an empty graph, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Shape = Literal["single", "chain", "dag"]


@dataclass(frozen=True)
class LabelledGraph:
    """Nodes with labels and directed edges between node positions.

    `labels[i]` is what node i is scored on: a tool or capability name for catalogue suites, the step's text
    for free-text suites. An edge `(a, b)` means node a must finish before node b.
    """

    labels: tuple[str, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()

    @property
    def empty(self) -> bool:
        """True when the graph has no nodes (an invalid or missing plan is scored as this)."""
        return not self.labels


@dataclass(frozen=True)
class EvalCase:
    """One case of a planning suite: a goal, the catalogue it may use, and the gold graph."""

    id: str
    goal: str
    gold: LabelledGraph
    catalogue: dict[str, str]
    """Capability name -> description. Empty for free-text suites (any single generic capability is fine)."""
    free_text: bool = False
    """True when nodes are scored by their instruction text (WorfBench), not by their capability."""
    shape: Shape = "dag"


@dataclass(frozen=True)
class PlannedTaskData:
    """One task of a predicted plan as the model wrote it, before any check: ids may dangle, edges may cycle."""

    id: str
    capability: str
    instruction: str
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Validity:
    """The checks a predicted plan passes or fails. `valid` only when all pass."""

    parsed: bool
    unknown_capabilities: tuple[str, ...] = ()
    """Capabilities the plan names that the catalogue lacks (hallucinated tools), one entry per task."""
    cyclic: bool = False
    dangling_edges: tuple[tuple[str, str], ...] = ()
    """(task, missing dependency) pairs."""
    tasks: int = 0

    @property
    def valid(self) -> bool:
        """True when every check passed."""
        return self.parsed and not self.unknown_capabilities and not self.cyclic and not self.dangling_edges


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives; summed over cases they give pooled F1."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def f1(self) -> float:
        """2TP / (2TP + FP + FN); 1.0 when there is nothing to find and nothing was predicted."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 1.0 if denominator == 0 else 2 * self.tp / denominator


@dataclass(frozen=True)
class StructureScores:
    """How a predicted graph's structure matches the gold one (labels compared as exact strings)."""

    nodes: Counts
    edges: Counts
    normalized_edit_distance: float
    """Levenshtein distance between a topological order of the prediction and the closest gold topological
    order, divided by the longer length: 0 is identical, 1 is nothing in common."""
    exact_match: bool


@dataclass(frozen=True)
class TextScores:
    """Free-text steps matched to gold steps by embedding similarity (WorFBench's f1_chain and f1_graph)."""

    f1_chain: float
    f1_graph: float
    matched: int = 0


@dataclass
class CaseResult:
    """Everything measured on one case; serialised one per line so an interrupted eval can resume."""

    case_id: str
    planner: str
    """'orquestra' or 'baseline'."""
    shape: Shape
    gold_size: int
    validity: Validity
    structure: StructureScores
    text: TextScores | None = None
    error: str | None = None
    """Why planning failed (the plan is then scored as an empty graph)."""
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    repairs: int = 0
    predicted: list[PlannedTaskData] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the planner left out of its prompt to fit the model's context (a catalogue cut, say)."""
