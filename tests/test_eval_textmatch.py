from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from orquestra.embeddings import LocalEmbedder
from orquestra.evals.cases import LabelledGraph, TextScores
from orquestra.evals.textmatch import match_steps, text_scores


class BagOfWords:
    """A deterministic stand-in embedder: unit bag-of-words vectors, recording what it was asked to embed.

    Texts with no word in common have cosine 0, identical texts cosine 1; "a b" and "a c" have 1/2.
    """

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        for text in texts:
            for word in text.split():
                self.vocabulary.setdefault(word, len(self.vocabulary))
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                vectors[row, self.vocabulary[word]] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fixed(table: dict[str, list[float]]):
    """An embedder returning the given vectors (normalised) for the given texts."""

    def embed(texts: Sequence[str]) -> np.ndarray:
        vectors = np.array([table[text] for text in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return embed


def chain(*labels: str) -> LabelledGraph:
    return LabelledGraph(labels, tuple((i, i + 1) for i in range(len(labels) - 1)))


# --------------------------------------------------------------------------- matching


def test_identical_steps_match_in_place():
    assert match_steps(["a", "b", "c"], ["c", "a", "b"], BagOfWords()) == {0: 1, 1: 2, 2: 0}


def test_matching_is_maximum_weight_not_greedy():
    # cos(p0, g0) = 0.70, cos(p0, g1) = 0.65, cos(p1, g0) = 0.65, cos(p1, g1) = 0: greedy takes p0-g0 (0.70) and
    # leaves p1 alone; the maximum-weight matching takes p0-g1 and p1-g0 (0.65 + 0.65 = 1.30).
    embed = fixed(
        {
            "g0": [1, 0, 0],
            "g1": [0, 1, 0],
            "p0": [0.70, 0.65, 0.0875**0.5],
            "p1": [0.65, 0, (1 - 0.65**2) ** 0.5],
        }
    )
    assert match_steps(["p0", "p1"], ["g0", "g1"], embed) == {0: 1, 1: 0}


def test_pairs_must_exceed_the_threshold():
    # cos("x y", "x z") = 1 / (sqrt 2 * sqrt 2) = 0.5.
    assert match_steps(["x y"], ["x z"], BagOfWords(), threshold=0.5) == {}
    assert match_steps(["x y"], ["x z"], BagOfWords(), threshold=0.49) == {0: 0}
    # cos("a b c", "a b") = 2 / (sqrt 3 * sqrt 2) = 0.816 loses to the identical text (1.0).
    assert match_steps(["a b c"], ["a b", "a b c"], BagOfWords()) == {0: 1}


def test_each_distinct_text_is_embedded_once():
    embed = BagOfWords()
    match_steps(["wash", "dry", "wash"], ["dry", "wash", "fold"], embed)
    assert embed.calls == [["wash", "dry", "fold"]]
    assert match_steps([], ["x"], embed) == {} and len(embed.calls) == 1  # nothing to match, nothing embedded


def test_repeated_texts_match_the_same_way_every_time():
    predicted, gold = ["wash", "wash", "dry"], ["wash", "dry", "wash"]
    first = match_steps(predicted, gold, BagOfWords())
    assert sorted(first) == [0, 1, 2] and first[2] == 1 and {first[0], first[1]} == {0, 2}
    assert all(match_steps(predicted, gold, BagOfWords()) == first for _ in range(5))


# --------------------------------------------------------------------------- f1_chain and f1_graph


@pytest.mark.parametrize(
    "gold",
    [
        chain("a", "b", "c"),
        LabelledGraph(("s", "x", "y", "t"), ((0, 1), (0, 2), (1, 3), (2, 3))),
        LabelledGraph(("a", "b")),  # independent steps
        LabelledGraph(("a", "b", "c", "d"), ((0, 1), (2, 3))),  # two unconnected chains
        LabelledGraph(("only",)),
    ],
)
def test_gold_against_itself_is_perfect(gold):
    scores = text_scores(gold, gold, BagOfWords())
    assert scores == TextScores(f1_chain=1.0, f1_graph=1.0, matched=len(gold.labels))


def test_empty_graphs():
    gold = chain("a", "b")
    assert text_scores(LabelledGraph(), gold, BagOfWords()) == TextScores(0.0, 0.0, 0)
    assert text_scores(gold, LabelledGraph(), BagOfWords()) == TextScores(0.0, 0.0, 0)
    assert text_scores(LabelledGraph(), LabelledGraph(), BagOfWords()) == TextScores(1.0, 1.0, 0)


def test_nothing_matches():
    assert text_scores(chain("p", "q"), chain("a", "b"), BagOfWords()) == TextScores(0.0, 0.0, 0)


def test_swapped_middle_steps():
    # Gold a -> b -> c -> d; prediction a -> c -> b -> d. All four match.
    scores = text_scores(chain("a", "c", "b", "d"), chain("a", "b", "c", "d"), BagOfWords())
    # Chain: gold positions in the predicted order are 0, 2, 1, 3; the longest increasing run is 3 long
    # (0, 1, 3 or 0, 2, 3) -> precision 3/4, recall 3/4, F1 3/4.
    assert scores.f1_chain == pytest.approx(0.75)
    # Graph: the predicted edges map to (a, c), (c, b), (b, d), none a gold edge. a is a source in both graphs
    # (joined to START), d a sink in both (joined to END); b and c stay alone. Largest component: 1 step ->
    # precision 1/4, recall 1/4, F1 1/4.
    assert scores.f1_graph == pytest.approx(0.25)
    assert scores.matched == 4


def test_an_extra_unmatched_step():
    # Gold a -> b -> c; prediction a -> x -> b -> c, where x matches nothing.
    scores = text_scores(chain("a", "x", "b", "c"), chain("a", "b", "c"), BagOfWords())
    # Chain: matched gold positions in predicted order 0, 1, 2 -> L = 3; precision 3/4, recall 3/3,
    # F1 = 2 * 3/4 * 1 / (3/4 + 1) = 6/7.
    assert scores.f1_chain == pytest.approx(6 / 7)
    # Graph: a -> x and x -> b lose an end; b -> c maps to the gold edge (b, c), and c is a sink in both (END).
    # a is a source in both (START) but START and END are not joined: components {a}, {b, c} -> k = 2;
    # precision 2/4, recall 2/3, F1 = 2 * (1/2 * 2/3) / (1/2 + 2/3) = 4/7.
    assert scores.f1_graph == pytest.approx(4 / 7)
    assert scores.matched == 3


def test_a_non_first_gold_order_counts_for_the_chain():
    # Gold s -> {x, y} -> t; prediction s -> y -> x -> t, which is a valid gold order.
    gold = LabelledGraph(("s", "x", "y", "t"), ((0, 1), (0, 2), (1, 3), (2, 3)))
    scores = text_scores(chain("s", "y", "x", "t"), gold, BagOfWords())
    # Chain: gold positions in the order s, y, x, t are 0, 1, 2, 3 -> L = 4 -> F1 1.
    assert scores.f1_chain == 1.0
    # Graph: s -> y and x -> t are gold edges, y -> x is not. s is a source in both (START), t a sink in both
    # (END). Components {s, y} and {x, t} -> k = 2; precision 2/4, recall 2/4, F1 1/2.
    assert scores.f1_graph == pytest.approx(0.5)


def test_independent_steps_in_another_order():
    # Gold: a and b, independent; prediction: b and a, independent. Both orders are gold orders.
    scores = text_scores(LabelledGraph(("b", "a")), LabelledGraph(("a", "b")), BagOfWords())
    # Chain: L = 2 -> 1. Graph: no edges, but both are sources and sinks in both graphs -> one component of 2.
    assert scores == TextScores(1.0, 1.0, 2)


def test_a_missing_step_breaks_the_graph_but_not_the_chain():
    # Gold a -> b -> c; prediction a -> c (b skipped).
    scores = text_scores(chain("a", "c"), chain("a", "b", "c"), BagOfWords())
    # Chain: positions 0, 2 -> L = 2; precision 2/2, recall 2/3 -> F1 = 2 * (2/3) / (5/3) = 4/5.
    assert scores.f1_chain == pytest.approx(0.8)
    # Graph: (a, c) is not a gold edge; a joins START, c joins END -> k = 1; precision 1/2, recall 1/3,
    # F1 = 2 * (1/6) / (5/6) = 2/5.
    assert scores.f1_graph == pytest.approx(0.4)


# --------------------------------------------------------------------------- the real embedder


@pytest.fixture(scope="module")
def embed():
    return LocalEmbedder().embed


def test_paraphrased_steps_match_with_the_real_embedder(embed):
    predicted = ["Boil the water", "Chop the onions", "File the tax return"]
    gold = ["Bring water to a boil", "Dice the onion", "Book a flight to Paris"]
    assert match_steps(predicted, gold, embed) == {0: 0, 1: 1}


def test_text_scores_with_the_real_embedder(embed):
    gold = chain("Bring water to a boil", "Dice the onion", "Heat the oven to 200 C")
    predicted = chain("Boil the water", "Chop the onions", "Preheat the oven to 200 degrees", "File the tax return")
    scores = text_scores(predicted, gold, embed)
    # Three of four predicted steps match, in gold order: chain L = 3 -> precision 3/4, recall 1 -> 6/7. Graph:
    # the first two predicted edges map to gold edges and the first step is a source in both -> k = 3 -> 6/7.
    assert scores == TextScores(pytest.approx(6 / 7), pytest.approx(6 / 7), 3)
