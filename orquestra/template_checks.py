"""What a manifest's template or expression reads, found by parsing it, without running it.

The manifest loader checks, before anything runs, that a template reads only the variables it is given and
only tasks upstream of its own. These helpers parse a template (or a ``run_if`` / ``map`` expression) into
Jinja's syntax tree and report the names it reads and the tasks it refers to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from jinja2 import Environment, TemplateSyntaxError, meta, nodes
from jinja2.lexer import describe_token
from jinja2.parser import Parser

MAX_NESTING = 100
"""The deepest syntax tree accepted: the checks, Jinja's code generator and Python's compiler walk it recursively."""

MAX_TEMPLATE_CHARS = 100_000
"""The longest template (an instruction) or expression (a ``run_if``, a ``map``) a manifest may hold.

Some 25,000 tokens of instruction; text longer than this belongs in a file that a tool reads. Parsing, checking
and compiling take time in proportion to a template's syntax (about 15 s for a megabyte of ``{{ ... }}``), so
without this bound one field of an 8 MiB file could hold up the load for minutes.
"""

MAX_TEMPLATE_NODES = 200_000
"""The most syntax-tree nodes all templates and expressions of one manifest may have together.

Each node costs some 50 µs to check and compile, so this keeps a manifest's load within seconds (some 12 at the
bound), where 8 MiB of ``{{ x }}`` in small templates would take minutes. 10,000 tasks whose instructions each
quote two outputs (``... {{ tasks.a.output }} and {{ tasks.b.output }}``) have 100,000.
"""

TASK_FIELDS = ("output", "skipped")
"""What a template may read of another task: ``tasks.NAME.output`` and ``tasks.NAME.skipped``."""


def parse_template(environment: Environment, source: str) -> nodes.Template:
    """The syntax tree of a template; a `TemplateSyntaxError` for one that cannot be read."""
    return _parsed(lambda: environment.parse(source))


def parse_expression(environment: Environment, source: str) -> nodes.Template:
    """The syntax tree of an expression, as `compile_expression` builds it (``result = EXPRESSION``).

    The expression sits inside a template, so that a bare name (``run_if: foo``) is found like any other.
    """

    def parse() -> nodes.Template:
        parser = Parser(environment, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected {describe_token(token)!r}", token.lineno)
        tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
        tree.set_environment(environment)  # what the checks' code generator reads its settings from
        return tree

    return _parsed(parse)


def _parsed(parse: Callable[[], nodes.Template]) -> nodes.Template:
    try:
        tree = parse()
    except RecursionError:  # Jinja's parser recurses once per bracket
        raise TemplateSyntaxError("the template nests too deeply", 1) from None
    except ValueError:  # the lexer's int() of a literal past Python's digit limit
        digits = sys.get_int_max_str_digits()
        raise TemplateSyntaxError(f"an integer of more than {digits} digits", 1) from None
    if _depth(tree) > MAX_NESTING:  # a chain of filters parses without recursion, and nests all the same
        raise TemplateSyntaxError(f"the template nests more than {MAX_NESTING} levels deep", 1)
    return tree


def _depth(tree: nodes.Node) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack and deepest <= MAX_NESTING:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def check_length(source: str) -> None:
    """A `ValueError` for a template longer than `MAX_TEMPLATE_CHARS`, before any time goes into parsing it."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"the template has {len(source):,} characters; at most {MAX_TEMPLATE_CHARS:,} are allowed")


def node_count(tree: nodes.Node) -> int:
    """How many nodes the syntax tree has (`MAX_NESTING` bounds its depth, so the walk's recursion is shallow)."""
    return 1 + sum(1 for _ in tree.find_all(nodes.Node))


def variables(tree: nodes.Template) -> set[str]:
    """The names a template reads from its variables (names it sets itself are not among them)."""
    return set(meta.find_undeclared_variables(tree))


def task_references(tree: nodes.Node) -> set[str]:
    """Task names a template reads through ``tasks.NAME`` or ``tasks['NAME']``.

    Any other use of ``tasks`` (a loop over it, a computed key, ``tasks`` alone) is a `ValueError`, and so is a
    field other than `TASK_FIELDS` (``tasks.NAME.outptu``): the load-time checks would not be sound otherwise.
    """
    names: set[str] = set()
    covered: set[int] = set()
    references: dict[int, str] = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "tasks"):
            continue
        name = _key(node)
        if name is None:
            continue
        names.add(name)
        covered.add(id(target))
        references[id(node)] = name
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = references.get(id(getattr(node, "node", None)))
        key = _key(node)
        if name is not None and key is not None and key not in TASK_FIELDS:
            raise ValueError(f"tasks.{name} has no field '{key}' (use: {', '.join(TASK_FIELDS)})")
    for name_node in tree.find_all(nodes.Name):
        if name_node.name == "tasks" and id(name_node) not in covered:
            raise ValueError("refer to other tasks only as tasks.NAME (e.g. tasks.draft.output)")
    return names


def _key(node: nodes.Node) -> str | None:
    """The constant name `node` reads (``x.NAME``, ``x['NAME']``), or None."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


__all__ = [
    "MAX_TEMPLATE_CHARS",
    "MAX_TEMPLATE_NODES",
    "TASK_FIELDS",
    "check_length",
    "node_count",
    "parse_expression",
    "parse_template",
    "task_references",
    "variables",
]
