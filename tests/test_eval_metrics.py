from __future__ import annotations

import itertools

import pytest

from orquestra.evals.cases import Counts, LabelledGraph, PlannedTaskData, Validity
from orquestra.evals.metrics import (
    MAX_GOLD_ORDERS,
    METRIC_DEFINITIONS,
    check_plan,
    normalized_edit_distance,
    predicted_graph,
    shape_of,
    size_bucket,
    structure_scores,
    topological_order,
    topological_orders,
)

CATALOGUE = {"search", "summarise", "translate", "speak"}


def task(task_id: str, capability: str, *deps: str) -> PlannedTaskData:
    return PlannedTaskData(
        id=task_id, capability=capability, instruction=f"{capability} for {task_id}", depends_on=deps
    )


def score(tasks: list[PlannedTaskData] | None, gold: LabelledGraph, catalogue=CATALOGUE):
    validity = check_plan(tasks, catalogue)
    graph = predicted_graph(tasks, validity, free_text=False)
    return validity, graph, structure_scores(graph, gold)


# search -> summarise -> translate
CHAIN = LabelledGraph(("search", "summarise", "translate"), ((0, 1), (1, 2)))
# search -> {summarise, translate} -> speak: two topological orders
DIAMOND = LabelledGraph(("search", "summarise", "translate", "speak"), ((0, 1), (0, 2), (1, 3), (2, 3)))


def test_definitions_cover_every_reported_metric():
    assert set(METRIC_DEFINITIONS) == {
        "validity",
        "hallucination_rate",
        "multi_task_plans",
        "node_f1",
        "edge_f1",
        "normalized_edit_distance",
        "exact_match",
        "f1_chain",
        "f1_graph",
        "pooled",
        "per_case",
        "interval",
    }
    assert all(len(text) > 40 for text in METRIC_DEFINITIONS.values())
    assert str(MAX_GOLD_ORDERS) in METRIC_DEFINITIONS["normalized_edit_distance"]


@pytest.mark.parametrize("gold", [CHAIN, DIAMOND, LabelledGraph(("search",))])
def test_gold_against_itself_is_perfect(gold):
    scores = structure_scores(gold, gold)
    assert scores.nodes.f1 == 1.0 and scores.edges.f1 == 1.0
    assert scores.normalized_edit_distance == 0.0
    assert scores.exact_match


def test_a_valid_plan_becomes_its_graph():
    tasks = [task("s", "search"), task("m", "summarise", "s"), task("t", "translate", "m")]
    validity, graph, scores = score(tasks, CHAIN)
    assert validity == Validity(parsed=True, tasks=3) and validity.valid
    assert graph == CHAIN
    assert scores.exact_match and scores.normalized_edit_distance == 0.0


def test_free_text_labels_are_the_instructions():
    tasks = [task("s", "generic"), task("m", "generic", "s")]
    validity = check_plan(tasks, ())
    assert validity.valid  # an empty catalogue checks no capability
    graph = predicted_graph(tasks, validity, free_text=True)
    assert graph == LabelledGraph(("generic for s", "generic for m"), ((0, 1),))


def test_repeated_dependencies_give_one_edge():
    tasks = [task("s", "search"), task("m", "summarise", "s", "s")]
    assert predicted_graph(tasks, check_plan(tasks, CATALOGUE), free_text=False).edges == ((0, 1),)


def test_unparsed_output_scores_as_an_empty_graph():
    validity, graph, scores = score(None, CHAIN)
    assert validity == Validity(parsed=False) and not validity.valid
    assert graph.empty
    # Every gold label and edge is missed: nodes 0 TP, 0 FP, 3 FN -> F1 0; edges 0/0/2.
    assert scores.nodes == Counts(0, 0, 3) and scores.edges == Counts(0, 0, 2)
    assert scores.nodes.f1 == 0.0
    # Distance from nothing to 3 labels is 3 insertions, over max(0, 3) = 3.
    assert scores.normalized_edit_distance == 1.0
    assert not scores.exact_match


def test_an_empty_plan_is_valid_but_scores_nothing():
    validity, graph, scores = score([], CHAIN)
    assert validity.valid and validity.tasks == 0
    assert graph.empty
    assert scores.nodes.f1 == 0.0 and scores.normalized_edit_distance == 1.0


def test_two_empty_graphs_match():
    scores = structure_scores(LabelledGraph(), LabelledGraph())
    # 2TP + FP + FN = 0 -> F1 1 by definition; distance 0 over max(0, 0) -> 0.
    assert scores.nodes.f1 == 1.0 and scores.edges.f1 == 1.0
    assert scores.normalized_edit_distance == 0.0 and scores.exact_match


def test_duplicate_tools_collapse_into_sets():
    # Prediction: search, search -> summarise; gold: search -> summarise.
    predicted = LabelledGraph(("search", "search", "summarise"), ((0, 2), (1, 2)))
    gold = LabelledGraph(("search", "summarise"), ((0, 1),))
    scores = structure_scores(predicted, gold)
    # Label sets {search, summarise} on both sides: TP 2, FP 0, FN 0.
    assert scores.nodes == Counts(2, 0, 0)
    # Edge sets {(search, summarise)} on both sides: both predicted edges are the same pair.
    assert scores.edges == Counts(1, 0, 0)
    # Orders [search, search, summarise] vs [search, summarise]: one deletion, over max(3, 2) = 3.
    assert scores.normalized_edit_distance == pytest.approx(1 / 3)
    assert scores.exact_match  # exact match compares the sets


def test_partial_overlap_counts():
    # Prediction: search -> translate -> speak; gold CHAIN: search -> summarise -> translate.
    predicted = LabelledGraph(("search", "translate", "speak"), ((0, 1), (1, 2)))
    scores = structure_scores(predicted, CHAIN)
    # Nodes: TP {search, translate} = 2, FP {speak} = 1, FN {summarise} = 1 -> F1 = 4 / (4 + 1 + 1) = 2/3.
    assert scores.nodes == Counts(2, 1, 1) and scores.nodes.f1 == pytest.approx(2 / 3)
    # Edges: predicted {(search, translate), (translate, speak)}, gold {(search, summarise), (summarise,
    # translate)}: no pair in common -> TP 0, FP 2, FN 2.
    assert scores.edges == Counts(0, 2, 2) and scores.edges.f1 == 0.0
    # [search, translate, speak] vs [search, summarise, translate]: insert summarise, delete speak = 2; 2 / 3.
    assert scores.normalized_edit_distance == pytest.approx(2 / 3)


def test_reversed_edges_are_caught_by_the_topological_order():
    # Same labels in the same list order as CHAIN, but every edge reversed: translate -> summarise -> search.
    reversed_chain = LabelledGraph(("search", "summarise", "translate"), ((2, 1), (1, 0)))
    scores = structure_scores(reversed_chain, CHAIN)
    assert scores.nodes.f1 == 1.0
    # Predicted pairs (translate, summarise), (summarise, search) vs gold (search, summarise),
    # (summarise, translate): TP 0, FP 2, FN 2.
    assert scores.edges == Counts(0, 2, 2) and scores.edges.f1 == 0.0
    # List order alone would compare [search, summarise, translate] with itself: 0. The topological order is
    # [translate, summarise, search]; against [search, summarise, translate] the best alignment keeps summarise
    # and substitutes the two ends: 2 edits, over 3.
    assert scores.normalized_edit_distance == pytest.approx(2 / 3)
    assert not scores.exact_match


def test_a_cyclic_plan_is_invalid_and_scores_as_empty():
    tasks = [task("s", "search", "t"), task("m", "summarise", "s"), task("t", "translate", "m")]
    validity, graph, scores = score(tasks, CHAIN)
    assert validity.parsed and validity.cyclic and not validity.dangling_edges
    assert not validity.valid
    assert graph.empty
    assert scores == structure_scores(LabelledGraph(), CHAIN)


def test_a_self_dependency_is_a_cycle_not_a_dangling_edge():
    validity = check_plan([task("s", "search", "s")], CATALOGUE)
    assert validity.cyclic and validity.dangling_edges == ()


def test_dangling_edges_are_named():
    tasks = [task("s", "search"), task("m", "summarise", "s", "x", "y")]
    validity, graph, _ = score(tasks, CHAIN)
    assert validity.dangling_edges == (("m", "x"), ("m", "y"))
    assert not validity.cyclic and not validity.valid
    assert graph.empty


def test_a_repeated_task_id_is_reported_as_a_dangling_edge():
    tasks = [task("a", "search"), task("a", "summarise"), task("b", "translate", "a")]
    validity = check_plan(tasks, CATALOGUE)
    assert validity.dangling_edges == (("a", "a"),)
    assert validity.parsed and not validity.cyclic and not validity.valid


def test_unknown_capabilities_are_hallucinations():
    tasks = [task("s", "search"), task("f", "fly", "s"), task("g", "fly", "f"), task("h", "teleport")]
    validity, graph, _ = score(tasks, CHAIN)
    # One entry per offending task: 3 of the 4 tasks name a tool the catalogue lacks.
    assert validity.unknown_capabilities == ("fly", "fly", "teleport")
    assert validity.tasks == 4
    assert not validity.valid and graph.empty
    # A free-text suite has no catalogue, so nothing is unknown.
    assert check_plan(tasks, ()).unknown_capabilities == ()


def test_a_non_first_gold_order_is_found():
    orders = list(topological_orders(DIAMOND))
    assert len(orders) == 2  # search, then summarise and translate in either order, then speak
    # Predict the order networkx does not enumerate first, as a chain.
    second = [DIAMOND.labels[i] for i in orders[1]]
    predicted = LabelledGraph(tuple(second), ((0, 1), (1, 2), (2, 3)))
    assert [DIAMOND.labels[i] for i in topological_order(predicted)] != [DIAMOND.labels[i] for i in orders[0]]
    scores = structure_scores(predicted, DIAMOND)
    assert scores.normalized_edit_distance == 0.0
    # Nodes all match. Edges: (search, x) and (y, speak) are gold edges, (x, y) is not, and gold's
    # (search, y), (x, speak) are missed -> TP 2, FP 1, FN 2.
    assert scores.nodes == Counts(4, 0, 0) and scores.edges == Counts(2, 1, 2)


def test_an_order_beyond_the_enumeration_cap_is_found_by_the_guided_order():
    # Ten independent steps have 10! = 3,628,800 orders; only MAX_GOLD_ORDERS are enumerated, and they all
    # start with step 0, so the reversed prediction is found only through the guided order.
    labels = tuple(f"step {i}" for i in range(10))
    gold = LabelledGraph(labels)
    assert sum(1 for _ in itertools.islice(topological_orders(gold), MAX_GOLD_ORDERS + 5)) == MAX_GOLD_ORDERS
    predicted = LabelledGraph(tuple(reversed(labels)))
    assert normalized_edit_distance(predicted, gold) == 0.0


def test_a_cyclic_gold_graph_is_read_in_list_order():
    gold = LabelledGraph(("search", "summarise"), ((0, 1), (1, 0)))
    assert topological_order(gold) == [0, 1]
    assert normalized_edit_distance(LabelledGraph(("search", "summarise"), ((0, 1),)), gold) == 0.0
    # [summarise, search] vs [search, summarise]: 2 substitutions, over 2.
    assert normalized_edit_distance(LabelledGraph(("summarise", "search"), ((0, 1),)), gold) == 1.0


def test_topological_order_prefers_the_smallest_position():
    graph = LabelledGraph(("a", "b", "c", "d"), ((3, 0),))
    # Ready at first: 1, 2, 3 (0 waits for 3) -> 1, 2, 3, then 0.
    assert topological_order(graph) == [1, 2, 3, 0]


@pytest.mark.parametrize(
    ("graph", "shape"),
    [
        (LabelledGraph(), "single"),
        (LabelledGraph(("search",)), "single"),
        (CHAIN, "chain"),
        (LabelledGraph(("a", "b", "c"), ((2, 0), (0, 1))), "chain"),  # a chain listed out of order
        (DIAMOND, "dag"),
        (LabelledGraph(("a", "b")), "dag"),  # two independent steps
        (LabelledGraph(("a", "b", "c", "d"), ((0, 1), (2, 3))), "dag"),  # two unconnected chains
        (LabelledGraph(("a", "b", "c"), ((0, 1), (0, 2))), "dag"),  # a fork
        (LabelledGraph(("a", "b", "c"), ((0, 1), (1, 2), (2, 0))), "dag"),  # a cycle has n edges
    ],
)
def test_shape_of(graph, shape):
    assert shape_of(graph) == shape


@pytest.mark.parametrize(
    ("n", "bucket"), [(0, "1"), (1, "1"), (2, "2-3"), (3, "2-3"), (4, "4-6"), (6, "4-6"), (7, "7+"), (30, "7+")]
)
def test_size_bucket(n, bucket):
    assert size_bucket(n) == bucket
