"""Scores a predicted task graph against a gold one: validity, node and edge F1, edit distance, exact match, shape.

A plan is first checked (`check_plan`); a plan that fails any check is scored as an empty graph
(`predicted_graph`), so that invalid output lowers the scores instead of vanishing from them. Labels are compared
as exact strings here; free-text steps are matched by meaning in `orquestra.evals.textmatch`.

`METRIC_DEFINITIONS` states every metric in plain words; reports print it next to the numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator, Sequence

import networkx as nx
from rapidfuzz.distance import Levenshtein

from orquestra.evals.cases import Counts, LabelledGraph, PlannedTaskData, Shape, StructureScores, Validity

MAX_GOLD_ORDERS = 2000
"""At most this many topological orders of a gold graph are enumerated (besides one guided order, see
`topological_orders`): a DAG of n independent steps has n! orders, and the scores must stay bounded in time."""

METRIC_DEFINITIONS: dict[str, str] = {
    "validity": (
        "A plan is valid when it parsed, every capability it names is in the case's catalogue (not checked for "
        "free-text suites, which have no catalogue), no task depends on a task id the plan lacks, no task id is "
        "used twice (a repeated id is reported as the dangling edge (id, id)), and the dependencies have no cycle "
        "(a task depending on itself is a cycle). An invalid plan is scored as an empty graph, never dropped."
    ),
    "hallucination_rate": (
        "Of all predicted tasks, the share whose capability is not in the case's catalogue (a hallucinated tool); "
        "pooled over cases, i.e. hallucinated tasks divided by predicted tasks."
    ),
    "multi_task_plans": (
        "Of the cases whose gold graph has two or more tasks, the share whose plan is valid and has two or more "
        "tasks: whether the planner decomposes at all, before any label is compared."
    ),
    "node_f1": (
        "TaskBench n-F1. Per case, the SET of node labels (tool names) of the prediction is compared with the gold "
        "set, so a tool used twice counts once: TP = labels in both, FP = predicted only, FN = gold only. "
        "F1 = 2TP / (2TP + FP + FN), 1 when both sets are empty."
    ),
    "edge_f1": (
        "TaskBench e-F1. The same as node F1 over the SET of (source label, target label) pairs, one per "
        "dependency edge (source must finish before target)."
    ),
    "normalized_edit_distance": (
        "Levenshtein distance (insertions, deletions, substitutions of whole labels) between one topological order "
        "of the prediction (smallest node position first among the ready nodes) and the closest topological "
        f"order of the gold graph, divided by the longer of the two lengths. Gold orders considered: up to "
        f"{MAX_GOLD_ORDERS} enumerated ones plus the one that follows the prediction's order wherever the gold "
        "edges allow. A cyclic graph is read in list order. 0 = identical, 1 = nothing in common (also when "
        "exactly one graph is empty); 0 when both are empty. Lower is better."
    ),
    "exact_match": (
        "The prediction has the same set of node labels and the same set of (source label, target label) edges as "
        "the gold graph; two empty graphs match."
    ),
    "f1_chain": (
        "WorFBench node-chain F1 for free-text steps. Predicted steps are matched one-to-one to gold steps by a "
        "maximum-weight bipartite matching over pairs whose sentence-embedding cosine exceeds 0.6. The matched gold "
        "steps, taken in the prediction's topological order, give a sequence; L = its longest increasing "
        "subsequence of positions in a gold topological order, the best over the gold orders considered (as for "
        "the edit distance). Precision = L / predicted steps, recall = L / gold steps, F1 their harmonic mean; "
        "0 when either graph is empty, 1 when both are."
    ),
    "f1_graph": (
        "WorFBench graph F1 for free-text steps. With the same matching, each predicted edge between matched steps "
        "is mapped to a gold pair and kept when the gold graph has that edge. The kept edges join the matched gold "
        "steps; as in WorFBench, whose graphs carry START and END nodes, matched steps that are sources (sinks) in "
        "both graphs are also joined through a shared START (END). k = the number of steps in the largest "
        "connected component (START and END not counted). Precision = k / predicted steps, recall = k / gold "
        "steps, F1 their harmonic mean; 0 when either graph is empty, 1 when both are."
    ),
    "pooled": (
        "Pooled (micro) F1: TP, FP and FN are summed over all cases first, then F1 = 2TP / (2TP + FP + FN); "
        "large plans weigh more. This is how TaskBench reports n-F1 and e-F1."
    ),
    "per_case": (
        "Per-case (macro) mean: the score is computed for each case and the scores are averaged, every case "
        "weighing the same; an invalid or missing plan counts with the score of an empty graph. Edge F1's "
        "per-case mean covers only cases whose gold graph has edges (a one-task case has none to find, and "
        "would score 1 even for a failed plan)."
    ),
    "interval": (
        "95% bootstrap interval: cases are resampled with replacement 2000 times (fixed seed), the statistic is "
        "recomputed on each resample, and the 2.5th and 97.5th percentiles are reported as [low, high]."
    ),
}


def check_plan(tasks: Sequence[PlannedTaskData] | None, catalogue: Collection[str]) -> Validity:
    """Run the validity checks on a predicted plan.

    Args:
        tasks: The plan's tasks as the model wrote them; None when its output did not parse.
        catalogue: The capability names the case allows; empty for free-text suites, where any capability is
            accepted.

    Returns:
        The checks' outcome. `unknown_capabilities` holds one entry per task naming a capability outside the
        catalogue. `dangling_edges` holds (task id, missing dependency id) pairs; a task id used a second time
        is also reported there, as (id, id), since its dependents cannot tell which task they mean. `cyclic` is
        true when the known dependencies form a cycle, a task depending on itself included.

    """
    if tasks is None:
        return Validity(parsed=False)
    ids = {task.id for task in tasks}
    unknown = tuple(task.capability for task in tasks if task.capability not in catalogue) if catalogue else ()
    dangling: list[tuple[str, str]] = []
    seen: set[str] = set()
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(ids))
    self_dependency = False
    for task in tasks:
        if task.id in seen:
            dangling.append((task.id, task.id))
        seen.add(task.id)
        for dependency in dict.fromkeys(task.depends_on):
            if dependency == task.id:
                self_dependency = True
            elif dependency in ids:
                graph.add_edge(dependency, task.id)
            else:
                dangling.append((task.id, dependency))
    cyclic = self_dependency or not nx.is_directed_acyclic_graph(graph)
    return Validity(
        parsed=True,
        unknown_capabilities=unknown,
        cyclic=cyclic,
        dangling_edges=tuple(dangling),
        tasks=len(tasks),
    )


def predicted_graph(tasks: Sequence[PlannedTaskData] | None, validity: Validity, *, free_text: bool) -> LabelledGraph:
    """The graph a plan is scored as: its tasks in order and their dependencies, or empty when it is invalid.

    Args:
        tasks: The plan's tasks, as given to `check_plan`.
        validity: What `check_plan` said about them.
        free_text: Label nodes with the task's instruction (free-text suites) instead of its capability.

    Returns:
        Node i is `tasks[i]`; edge (a, b) means task b depends on task a. An invalid plan gives `LabelledGraph()`.

    """
    if tasks is None or not validity.valid:
        return LabelledGraph()
    position = {task.id: i for i, task in enumerate(tasks)}
    labels = tuple(task.instruction if free_text else task.capability for task in tasks)
    edges = tuple(
        (position[dependency], i) for i, task in enumerate(tasks) for dependency in dict.fromkeys(task.depends_on)
    )
    return LabelledGraph(labels=labels, edges=edges)


def _digraph(graph: LabelledGraph) -> nx.DiGraph:
    result = nx.DiGraph()
    # Nodes first, in position order: isolated nodes must exist, and networkx breaks ties by insertion order.
    result.add_nodes_from(range(len(graph.labels)))
    result.add_edges_from(graph.edges)
    return result


def topological_order(graph: LabelledGraph, key: Callable[[int], int] | None = None) -> list[int]:
    """One topological order of the graph's node positions, the same on every call.

    Args:
        graph: The graph to order.
        key: Among the nodes ready at each step, the one with the smallest key comes first (ties: smallest
            position). Without it, the smallest position comes first.

    Returns:
        Node positions, every edge's source before its target; list order when the graph has a cycle.

    """
    nodes = _digraph(graph)
    if not nx.is_directed_acyclic_graph(nodes):
        return list(range(len(graph.labels)))
    return [int(node) for node in nx.lexicographical_topological_sort(nodes, key=key)]


def topological_orders(
    graph: LabelledGraph, *, guide: Callable[[int], int] | None = None, cap: int = MAX_GOLD_ORDERS
) -> Iterator[list[int]]:
    """Topological orders of a (gold) graph to compare a prediction against, bounded in number.

    Args:
        graph: The graph whose orders are wanted.
        guide: When given, the order `topological_order(graph, guide)` comes first: the order that follows the
            prediction wherever the edges allow, so that a prediction matching an order beyond the cap is still
            recognised.
        cap: How many orders `networkx.all_topological_sorts` may enumerate after the guided one.

    Yields:
        Lists of node positions (an order may repeat). A cyclic graph yields only its list order.

    """
    nodes = _digraph(graph)
    if not nx.is_directed_acyclic_graph(nodes):
        yield list(range(len(graph.labels)))
        return
    if guide is not None:
        yield topological_order(graph, guide)
    for order in itertools.islice(nx.all_topological_sorts(nodes), cap):
        yield [int(node) for node in order]


def _set_counts(predicted: set[str] | set[tuple[str, str]], gold: set[str] | set[tuple[str, str]]) -> Counts:
    return Counts(tp=len(predicted & gold), fp=len(predicted - gold), fn=len(gold - predicted))


def _edge_labels(graph: LabelledGraph) -> set[tuple[str, str]]:
    return {(graph.labels[a], graph.labels[b]) for a, b in graph.edges}


def normalized_edit_distance(predicted: LabelledGraph, gold: LabelledGraph) -> float:
    """Levenshtein distance between the prediction's order and the closest gold order, over the longer length.

    The prediction is read in `topological_order`; gold orders come from `topological_orders`, guided by where
    each label first appears in the prediction. Both empty: 0.0; exactly one empty: 1.0.
    """
    longest = max(len(predicted.labels), len(gold.labels))
    if longest == 0:
        return 0.0
    sequence = [predicted.labels[i] for i in topological_order(predicted)]
    first_seen: dict[str, int] = {}
    for position, label in enumerate(sequence):
        first_seen.setdefault(label, position)

    def guide(node: int) -> int:
        # Gold nodes whose label the prediction lacks go last: they cost an edit wherever they are.
        return first_seen.get(gold.labels[node], longest)

    best = longest
    for order in topological_orders(gold, guide=guide):
        best = min(best, Levenshtein.distance(sequence, [gold.labels[i] for i in order]))
        if best == 0:
            break
    return best / longest


def structure_scores(predicted: LabelledGraph, gold: LabelledGraph) -> StructureScores:
    """Compare a predicted graph's structure with the gold one, labels as exact strings.

    Args:
        predicted: The prediction (`LabelledGraph()` for an invalid plan).
        gold: The gold graph. It may repeat labels and, in noisy data, have a cycle (then read in list order).

    Returns:
        Node counts over the sets of labels (duplicates collapse, as in TaskBench's n-F1), edge counts over the
        sets of (source label, target label) pairs, `normalized_edit_distance`, and exact match (same label set
        and same edge set; two empty graphs match).

    """
    predicted_nodes, gold_nodes = set(predicted.labels), set(gold.labels)
    predicted_edges, gold_edges = _edge_labels(predicted), _edge_labels(gold)
    return StructureScores(
        nodes=_set_counts(predicted_nodes, gold_nodes),
        edges=_set_counts(predicted_edges, gold_edges),
        normalized_edit_distance=normalized_edit_distance(predicted, gold),
        exact_match=predicted_nodes == gold_nodes and predicted_edges == gold_edges,
    )


def shape_of(graph: LabelledGraph) -> Shape:
    """The graph's shape: 'single' (at most one node), 'chain' (one path through every node) or 'dag' (the rest).

    A chain has n - 1 distinct edges, every node at most one predecessor and one successor, and is connected;
    two unconnected chains are a 'dag'.
    """
    count = len(graph.labels)
    if count <= 1:
        return "single"
    nodes = _digraph(graph)
    is_path = (
        nodes.number_of_edges() == count - 1
        and all(degree <= 1 for _, degree in nodes.in_degree())
        and all(degree <= 1 for _, degree in nodes.out_degree())
        and nx.is_weakly_connected(nodes)
    )
    return "chain" if is_path else "dag"


def size_bucket(n: int) -> str:
    """The report's size group for a graph of n nodes: '1' (at most one), '2-3', '4-6' or '7+'."""
    if n <= 1:
        return "1"
    if n <= 3:
        return "2-3"
    if n <= 6:
        return "4-6"
    return "7+"
