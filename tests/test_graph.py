from __future__ import annotations

import pytest
from pydantic import ValidationError

from orquestra import GraphPatch, Task, TaskGraph
from orquestra.exceptions import GraphError, PatchRefused
from orquestra.graph import MAX_TASKS

from .helpers import make_graph


def task(task_id: str, *deps: str, capability: str = "research") -> Task:
    return Task(id=task_id, instruction=f"do {task_id}", capability=capability, depends_on=deps)


def error_of(build) -> str:
    with pytest.raises(ValidationError) as caught:
        build()
    return str(caught.value)


def test_contract_shape():
    graph = TaskGraph(tasks=[Task(id="a", instruction="...", capability="research", depends_on=[])])
    assert graph["a"].depends_on == ()
    assert len(graph) == 1 and "a" in graph


def test_duplicate_ids_are_named():
    message = error_of(lambda: TaskGraph(tasks=[task("a"), task("a")]))
    assert "duplicate task id 'a'" in message


def test_unknown_dependency_is_named():
    message = error_of(lambda: TaskGraph(tasks=[task("a", "ghost")]))
    assert "task 'a' depends on unknown task 'ghost'" in message


def test_self_dependency_is_named():
    message = error_of(lambda: TaskGraph(tasks=[task("a", "a")]))
    assert "task 'a' depends on itself" in message


def test_cycle_is_named_in_full():
    message = error_of(lambda: TaskGraph(tasks=[task("root"), task("a", "root", "c"), task("b", "a"), task("c", "b")]))
    assert "cycle: a -> c -> b -> a" in message


def test_empty_graph_is_refused():
    assert "the graph has no tasks" in error_of(lambda: TaskGraph(tasks=[]))


def test_size_bound():
    too_many = [task(f"t{i}") for i in range(MAX_TASKS + 1)]
    assert f"at most {MAX_TASKS}" in error_of(lambda: TaskGraph(tasks=too_many))
    graph = make_graph({"a": [], "b": ["a"], "c": ["a"]})
    graph.check_size(3)
    with pytest.raises(GraphError, match="the limit here is 2"):
        graph.check_size(2)


def test_bad_task_fields_are_rejected():
    assert "id" in error_of(lambda: Task(id="has space", instruction="x", capability="c"))
    assert "instruction" in error_of(lambda: Task(id="a", instruction="", capability="c"))
    assert "retries" in error_of(lambda: Task(id="a", instruction="x", capability="c", retries=-1))
    assert "extra" in error_of(lambda: Task(id="a", instruction="x", capability="c", colour="red"))


def test_unknown_capability_names_task_and_known_ones():
    graph = TaskGraph(tasks=[task("a"), task("b", "a", capability="telepathy")])
    graph.check_capabilities({"research", "writing", "telepathy"})
    with pytest.raises(GraphError, match=r"task 'b' needs capability 'telepathy'.*known: research, writing"):
        graph.check_capabilities({"research", "writing"})


def test_ready_given_finished():
    graph = make_graph({"a": [], "b": [], "c": ["a", "b"], "d": ["c"]})
    assert [t.id for t in graph.ready(set())] == ["a", "b"]
    assert [t.id for t in graph.ready({"a"})] == ["b"]
    assert [t.id for t in graph.ready({"a", "b"})] == ["c"]
    assert [t.id for t in graph.ready({"a", "b", "c", "d"})] == []


def test_topological_order_keeps_graph_order_on_ties():
    graph = make_graph({"z": ["b"], "b": [], "a": [], "m": ["a", "z"]})
    order = graph.topological_order()
    assert order == ["b", "z", "a", "m"]
    assert sorted(order) == sorted(t.id for t in graph.tasks)


def test_critical_path_by_count_and_by_duration():
    graph = make_graph({"a": [], "b": ["a"], "c": ["b"], "slow": [], "end": ["c", "slow"]})
    assert graph.critical_path() == ["a", "b", "c", "end"]
    durations = {"a": 1, "b": 1, "c": 1, "slow": 10, "end": 1}
    assert graph.critical_path(lambda t: durations[t.id]) == ["slow", "end"]


def test_descendants():
    graph = make_graph({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["c", "d"]})
    assert graph.descendants("a") == ["b", "c", "e"]
    assert graph.descendants("e") == []


class TestPatch:
    graph = make_graph({"a": [], "b": ["a"], "c": ["b"]})

    def test_add_remove_replace_rewire(self):
        patch = GraphPatch(
            add=(task("x", "a"),),
            remove=("c",),
            replace=(Task(id="b", instruction="better b", capability="analysis", depends_on=("a",)),),
            rewire={"b": ("a", "x")},
            reason="need x first",
        )
        new = self.graph.apply(patch)
        assert [t.id for t in new.tasks] == ["a", "b", "x"]
        assert new["b"].instruction == "better b" and new["b"].depends_on == ("a", "x")
        assert self.graph["b"].instruction == "do b"  # the original graph is unchanged

    def test_patch_on_a_finished_task_is_refused(self):
        for patch in (
            GraphPatch(remove=("a",)),
            GraphPatch(replace=(task("a"),)),
            GraphPatch(rewire={"a": ()}),
        ):
            with pytest.raises(PatchRefused, match="task 'a', which has already started or finished"):
                self.graph.apply(patch, frozen={"a"})

    def test_patch_result_passes_the_same_checks(self):
        with pytest.raises(GraphError, match="cycle"):
            self.graph.apply(GraphPatch(rewire={"b": ("c",)}))
        with pytest.raises(GraphError, match="depends on unknown task 'b'"):
            self.graph.apply(GraphPatch(remove=("b",)))
        with pytest.raises(GraphError, match="adds task 'a', which is already in the graph"):
            self.graph.apply(GraphPatch(add=(task("a"),)))
        with pytest.raises(GraphError, match="'ghost', which is not in the graph"):
            self.graph.apply(GraphPatch(remove=("ghost",)))

    def test_empty_patch(self):
        assert GraphPatch().is_empty()
        assert not GraphPatch(remove=("c",)).is_empty()
