"""Scores free-text plans (WorFBench): steps matched to gold steps by meaning, then f1_chain and f1_graph.

Step texts rarely agree word for word, so a predicted step counts as a gold step when their sentence embeddings
are close (cosine above a threshold), each step matched at most once, by a maximum-weight bipartite matching.
Everything here is deterministic for a deterministic embedder.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from orquestra.evals.cases import LabelledGraph, TextScores
from orquestra.evals.metrics import topological_order, topological_orders

Embed = Callable[[Sequence[str]], NDArray[np.float32]]
"""Texts in, one unit-length row per text out (for example `LocalEmbedder().embed`)."""

_START, _END = -1, -2
"""Virtual nodes of the matched subgraph (gold positions are never negative)."""


def _cosines(predicted: Sequence[str], gold: Sequence[str], embed: Embed) -> NDArray[np.float64]:
    # A text repeated across or within the two lists is embedded once.
    unique = list(dict.fromkeys([*predicted, *gold]))
    vectors = np.asarray(embed(unique), dtype=np.float64)
    row = {text: i for i, text in enumerate(unique)}
    left = vectors[[row[text] for text in predicted]]
    right = vectors[[row[text] for text in gold]]
    return left @ right.T


def match_steps(predicted: Sequence[str], gold: Sequence[str], embed: Embed, threshold: float = 0.6) -> dict[int, int]:
    """Match predicted steps to gold steps one-to-one by meaning.

    Args:
        predicted: Predicted step texts.
        gold: Gold step texts.
        embed: Unit-row sentence embeddings; only the distinct texts are embedded, in one call.
        threshold: Pairs whose cosine is not above this cannot match.

    Returns:
        Predicted position -> gold position, sorted by predicted position: a maximum-weight matching
        (`networkx.max_weight_matching`) of the bipartite graph whose edges are the pairs above the threshold,
        weighted by their cosine.

    """
    if not predicted or not gold:
        return {}
    cosines = _cosines(predicted, gold, embed)
    candidates = nx.Graph()
    # Row-major insertion keeps the matching the same from run to run when weights tie (repeated texts).
    for i, j in zip(*np.nonzero(cosines > threshold), strict=True):
        candidates.add_edge(("p", int(i)), ("g", int(j)), weight=float(cosines[i, j]))
    matching: dict[int, int] = {}
    for a, b in nx.max_weight_matching(candidates):
        step, target = (a, b) if a[0] == "p" else (b, a)
        matching[int(step[1])] = int(target[1])
    return dict(sorted(matching.items()))


def _f1(hits: int, predicted: int, gold: int) -> float:
    if hits == 0:
        return 0.0
    precision, recall = hits / predicted, hits / gold
    return 2 * precision * recall / (precision + recall)


def _longest_increasing(values: Sequence[int]) -> int:
    # Patience sorting: tails[k] is the smallest last value of a strictly increasing run of length k + 1.
    tails: list[int] = []
    for value in values:
        at = bisect.bisect_left(tails, value)
        if at == len(tails):
            tails.append(value)
        else:
            tails[at] = value
    return len(tails)


def _f1_chain(predicted: LabelledGraph, gold: LabelledGraph, matching: dict[int, int]) -> float:
    sequence = [matching[step] for step in topological_order(predicted) if step in matching]
    if not sequence:
        return 0.0
    rank = {target: r for r, target in enumerate(sequence)}

    def guide(node: int) -> int:
        return rank.get(node, len(sequence))

    best = 0
    for order in topological_orders(gold, guide=guide):
        position = {node: p for p, node in enumerate(order)}
        best = max(best, _longest_increasing([position[target] for target in sequence]))
        if best == len(sequence):
            break
    return _f1(best, len(predicted.labels), len(gold.labels))


def _f1_graph(predicted: LabelledGraph, gold: LabelledGraph, matching: dict[int, int]) -> float:
    if not matching:
        return 0.0
    predicted_nodes, gold_nodes = nx.DiGraph(), nx.DiGraph()
    predicted_nodes.add_nodes_from(range(len(predicted.labels)))
    predicted_nodes.add_edges_from(predicted.edges)
    gold_nodes.add_nodes_from(range(len(gold.labels)))
    gold_nodes.add_edges_from(gold.edges)
    shared = nx.Graph()
    shared.add_nodes_from(sorted(matching.values()))
    for a, b in predicted.edges:
        if a in matching and b in matching and gold_nodes.has_edge(matching[a], matching[b]):
            shared.add_edge(matching[a], matching[b])
    # WorFBench's graphs carry START and END nodes joined to every source and sink; its matched START -> x and
    # x -> END edges are these. Without them a gold graph of independent steps would not match itself.
    for step, target in matching.items():
        if predicted_nodes.in_degree(step) == 0 and gold_nodes.in_degree(target) == 0:
            shared.add_edge(_START, target)
        if predicted_nodes.out_degree(step) == 0 and gold_nodes.out_degree(target) == 0:
            shared.add_edge(target, _END)
    largest = max(len(component - {_START, _END}) for component in nx.connected_components(shared))
    return _f1(largest, len(predicted.labels), len(gold.labels))


def text_scores(predicted: LabelledGraph, gold: LabelledGraph, embed: Embed, threshold: float = 0.6) -> TextScores:
    """WorFBench's f1_chain and f1_graph for a predicted graph of free-text steps.

    Steps are matched with `match_steps`. Then:

    - f1_chain: the matched gold steps, in the order the prediction's `topological_order` visits their partners,
      form a sequence; for each gold order from `topological_orders` (up to its cap, plus the order that follows
      the prediction where the gold edges allow) L = the longest strictly increasing subsequence of their
      positions in that order; the best L gives precision L / predicted steps, recall L / gold steps, and F1
      their harmonic mean.
    - f1_graph: each predicted edge whose two ends are matched is mapped to the gold pair of their partners and
      kept when the gold graph has that edge; the kept edges join the matched gold steps into an undirected
      graph, where, as through WorFBench's START and END nodes, a matched step that is a source in both graphs
      is joined to a virtual START and one that is a sink in both to a virtual END. k = the number of gold
      steps in its largest connected component (START and END not counted); precision k / predicted steps,
      recall k / gold steps, F1 their harmonic mean.

    Both are 0 when either graph is empty (or nothing matches) and 1 when both graphs are empty.

    Args:
        predicted: The prediction (`LabelledGraph()` for an invalid plan).
        gold: The gold graph.
        embed: Unit-row sentence embeddings.
        threshold: The cosine a pair of steps must exceed to match.

    Returns:
        The two F1 scores and how many steps matched.

    """
    if not predicted.labels or not gold.labels:
        both_empty = float(not predicted.labels and not gold.labels)
        return TextScores(f1_chain=both_empty, f1_graph=both_empty, matched=0)
    matching = match_steps(predicted.labels, gold.labels, embed, threshold)
    return TextScores(
        f1_chain=_f1_chain(predicted, gold, matching),
        f1_graph=_f1_graph(predicted, gold, matching),
        matched=len(matching),
    )
