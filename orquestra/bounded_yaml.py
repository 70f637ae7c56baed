"""A YAML loader with bounds: untrusted files parse in time and memory linear in their size, or fail with a line.

PyYAML's `SafeLoader` refuses unsafe tags, but a few hundred bytes of nested aliases (``b: &b [*a, *a, ...]``)
stand for billions of nodes to whoever walks the result, a self-referencing alias (``a: &a [*a]``) makes a value
that contains itself, deep nesting exhausts Python's recursion in its composer, and some malformed scalars
(``!!int ''``, ``2020-13-45``, an integer of 5,000 digits) escape as `ValueError` or `IndexError` instead of a
`yaml.YAMLError`. `BoundedLoader` refuses all of these with a `yaml.MarkedYAMLError` at the offending line:

- nesting deeper than `MAX_DEPTH` levels, counting what aliases bring in;
- more than `MAX_ALIAS_NODES` nodes reached through aliases (each alias counts the nodes it stands for);
- an alias inside the node it refers to, and an anchor defined twice;
- any scalar its constructor cannot turn into a value.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import CollectionNode, MappingNode, Node

MAX_DEPTH = 100
"""The deepest nesting of lists and mappings accepted; real manifests and graphs nest fewer than ten levels."""

MAX_ALIAS_NODES = 10_000
"""The most nodes all aliases of one document may stand for, the nodes they contain included."""

# Exceptions PyYAML's scalar constructors let escape on malformed input, rather than a `ConstructorError`.
_CONSTRUCTION_FAILURES = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with the bounds of this module; one instance reads one stream, as PyYAML's loaders do."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        self._measured: dict[int, tuple[int, int]] = {}  # id of an anchored node -> (nodes, depth) it stands for

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, refusing what would make the document deeper or larger than the bounds."""
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            return self._alias(event, super().compose_node(parent, index))  # PyYAML refuses an undefined alias
        if event.anchor is not None and event.anchor in self.anchors:
            first = self.anchors[event.anchor].start_mark.line + 1
            raise _refused(f"anchor &{event.anchor} is defined twice (first on line {first})", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _alias(self, event: AliasEvent, node: Node | None) -> Node | None:
        if node is None:
            return None
        if isinstance(node, CollectionNode) and node.end_mark is None:  # still being composed: it holds the alias
            raise _refused(f"alias *{event.anchor} refers to a node that contains it", event.start_mark)
        nodes, depth = self._measure(node)
        self._aliased += nodes
        if self._aliased > MAX_ALIAS_NODES:
            raise _refused(f"aliases stand for more than {MAX_ALIAS_NODES} nodes (an alias bomb?)", event.start_mark)
        if self._depth + depth > MAX_DEPTH:
            raise _refused(f"nested deeper than {MAX_DEPTH} levels through aliases", event.start_mark)
        return node

    def _measure(self, root: Node) -> tuple[int, int]:
        """How many nodes `root` stands for, aliases expanded, and how deep it nests; each node is measured once."""
        measured = self._measured
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            if id(node) in measured:
                continue
            children = _children(node)
            if children_done or not children:
                sizes = [measured[id(child)] for child in children]
                measured[id(node)] = (
                    1 + sum(size for size, _ in sizes),
                    1 + max((depth for _, depth in sizes), default=0),
                )
                continue
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in measured)
        return measured[id(root)]

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Construct one node; a scalar its constructor fails on is a `ConstructorError` at its line."""
        try:
            return super().construct_object(node, deep)
        except _CONSTRUCTION_FAILURES as problem:
            raise ConstructorError(None, None, _construction_problem(node, problem), node.start_mark) from None


def _refused(problem: str, mark: Any) -> ComposerError:
    return ComposerError(None, None, problem, mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, CollectionNode):
        return list(node.value)
    return []


def _construction_problem(node: Node, problem: Exception) -> str:
    if isinstance(problem, ValueError) and "integer string conversion" in str(problem):
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    shown = str(node.value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"cannot read {shown!r} as {node.tag.rsplit(':', 1)[-1]}"


def compose(text: str) -> Node | None:
    """The node tree of the single document in `text` (None for an empty one), within the bounds."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def construct(node: Node | None) -> Any:
    """The Python value of a tree `compose` made: lists, dicts, strings, numbers, booleans, None, dates."""
    if node is None:
        return None
    loader = BoundedLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """The value of the single YAML document in `text`, within the bounds; a `yaml.YAMLError` otherwise."""
    return construct(compose(text))


def describe(problem: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line (from 1) and a one-line description of a PyYAML error on `text`."""
    if isinstance(problem, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(problem.position, 0)) + 1
        if isinstance(problem.character, bytes):
            return line, f"cannot decode byte #x{ord(problem.character):02x}"
        return line, f"unacceptable character #x{problem.character:04x}: {problem.reason}"
    mark = getattr(problem, "problem_mark", None) or getattr(problem, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    message = getattr(problem, "problem", None) or getattr(problem, "context", None) or str(problem)
    return line, " ".join(str(message).split())


__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "BoundedLoader", "compose", "construct", "describe", "load"]
