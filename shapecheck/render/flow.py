"""What the shape-flow picture shows: the rows as a tree of blocks, repeated blocks folded.

The HTML renderer embeds these records as JSON and its script lays the blocks out; nothing
here draws. Rows nest by depth (a module call holds the rows its forward made), and a
module's rows are contiguous, so every node covers a range ``[lo, hi)`` of report rows.
Consecutive siblings that repeat (``Bottleneck`` x36, a refinement loop's body x12) are
folded into one run node, which the reader can open.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from shapecheck.report import Layer

# Blocks the picture opens with at most: past this, opening one more level would make a
# page to scroll through rather than a picture (resnet152 shows 11 blocks, Bottleneck x36 one).
BUDGET: Final = 48
_LONG_STACK: Final = 12  # leaf siblings that repeat this often are folded even without a module among them
_LONGEST_BODY: Final = 128  # siblings in one repeated loop body (RAFT's update step has about 50)


@dataclass
class Node:
    """One block of the picture: a row, or a run of repeated sibling blocks (``row`` None)."""

    id: int
    row: int | None
    lo: int
    hi: int
    children: list[int] = field(default_factory=list)
    times: int = 1  # a run: how often its body repeats
    period: int = 1  # a run: siblings in one repetition
    open: bool = False


def tree(layers: Sequence[Layer]) -> list[Node]:
    """The nodes; node 0 is the root, which the picture always opens. None for no rows."""
    nodes: list[Node] = []
    if not layers:
        return nodes
    tops = [layer.index for layer in layers if layer.depth == layers[0].depth]
    if len(tops) == 1:  # the model's own row: its children are the picture
        root = _subtree(layers, 0, nodes)
    else:
        root = Node(len(nodes), None, 0, len(layers))
        nodes.append(root)
        start = 0
        while start < len(layers):
            root.children.append(_subtree(layers, start, nodes).id)
            start = nodes[root.children[-1]].hi
    for node in list(nodes):
        node.children = _folded(node.children, nodes, layers)
    _open(nodes, root.id)
    return nodes


def _subtree(layers: Sequence[Layer], start: int, nodes: list[Node]) -> Node:
    node = Node(len(nodes), start, start, start + 1)
    nodes.append(node)
    depth = layers[start].depth
    position = start + 1
    while position < len(layers) and layers[position].depth > depth:
        child = _subtree(layers, position, nodes)
        node.children.append(child.id)
        position = child.hi
    node.hi = position
    return node


def _signature(node: Node, nodes: list[Node], layers: Sequence[Layer]) -> tuple:
    """What makes two blocks repeats of each other: type and output shapes (and a
    function's name, since ``add`` and ``mul`` share no type), not their row names."""
    if node.row is None:
        return ("run", node.times, tuple(_signature(nodes[c], nodes, layers) for c in node.children[:node.period]))
    layer = layers[node.row]
    return (layer.kind, layer.type, layer.name if layer.kind == "function" else "", layer.output_shapes,
            layer.failed)


def _folded(children: list[int], nodes: list[Node], layers: Sequence[Layer]) -> list[int]:
    """``children`` with the longest run of repeats folded into a run node, then the same
    on either side of it (see _worth_folding for which runs are)."""
    if len(children) < 2:
        return children
    codes: dict[tuple, int] = {}
    sig = [codes.setdefault(_signature(nodes[c], nodes, layers), len(codes)) for c in children]
    best = (0, 0, 0)  # (covered, start, period)
    for period in range(1, min(_LONGEST_BODY, len(sig) // 2) + 1):
        start = 0
        while start + 2 * period <= len(sig):
            if sig[start] != sig[start + period]:
                start += 1
                continue
            end = start + period
            while end < len(sig) and sig[end] == sig[end - period]:
                end += 1
            times = (end - start) // period
            body = children[start:start + period]
            if times >= 2 and times * period > best[0] and _worth_folding(body, times, nodes):
                best = (times * period, start, period)
            start = end - period + 1
    covered, start, period = best
    if not covered:
        return children
    members = children[start:start + covered]
    run = Node(len(nodes), None, nodes[members[0]].lo, nodes[members[-1]].hi, members, covered // period, period)
    nodes.append(run)
    return [*_folded(children[:start], nodes, layers), run.id, *_folded(children[start + covered:], nodes, layers)]


def _worth_folding(body: list[int], times: int, nodes: list[Node]) -> bool:
    """A run of blocks with rows of their own (``Bottleneck`` x36, a loop calling modules), or a
    long stack; a U-Net's conv, BatchNorm, ReLU twice over reads better as it is."""
    return any(nodes[i].children for i in body) or len(body) * times >= _LONG_STACK


def _open(nodes: list[Node], root: int) -> None:
    """Everything when every row fits the budget; else level by level, each level only
    when all of it fits, so the picture shows one consistent level of detail. Runs stay
    folded, and so do modules that only wrap one: that is what they are for."""
    nodes[root].open = True
    if sum(1 for node in _reachable(nodes, root) if not node.children) <= BUDGET:
        for node in nodes:
            node.open = bool(node.children)
        return
    while True:
        shown = _shown(nodes, root)
        closed = [nodes[i] for i in shown
                  if nodes[i].row is not None and nodes[i].children and not _wraps_run(nodes, i)]
        if not closed or len(shown) - len(closed) + sum(len(n.children) for n in closed) > BUDGET:
            return
        for node in closed:
            node.open = True


def _wraps_run(nodes: list[Node], i: int) -> bool:
    """``layer3`` holding nothing but ``Bottleneck`` x36: opened, it would show the same one block."""
    children = nodes[i].children
    return len(children) == 1 and nodes[children[0]].row is None


def _reachable(nodes: list[Node], root: int) -> list[Node]:
    found, stack = [], [root]
    while stack:
        node = nodes[stack.pop()]
        found.append(node)
        stack.extend(node.children)
    return found


def _shown(nodes: list[Node], root: int) -> list[int]:
    """The blocks the picture draws: open nodes show their children instead of themselves."""
    node = nodes[root]
    if node.children and node.open:
        return [i for child in node.children for i in _shown(nodes, child)]
    return [root]


def shown(nodes: list[Node]) -> list[int]:
    """The blocks drawn when the page opens, in execution order."""
    return _shown(nodes, 0) if nodes else []
