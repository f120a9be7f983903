"""The workflow view's graph: the tasks of one root (a chain, a group, a chord, or whatever a
task launched), laid out left to right by generation, each edge from parent to child.

Events carry ``root_id`` and ``parent_id`` only (Celery's fields), so the graph is what they
say: a chord's callback hangs under the header task that completed the chord, and the header
tasks of a chord sent from a client (not from a task) are each their own root.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from celeriac.web.store import StoredTask

#: Box size and gaps, in SVG user units.
NODE_WIDTH = 200
NODE_HEIGHT = 46
COLUMN_GAP = 70
ROW_GAP = 18
MARGIN = 10


@dataclass(frozen=True, slots=True)
class Node:
    uuid: str
    name: str
    state: str
    depth: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Edge:
    parent: str
    child: str
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Graph:
    root_id: str
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(root_id: str, tasks: list[StoredTask]) -> Graph:
    """Columns by generation (the root's, then its children's...), rows by time."""
    docs = {t.doc["uuid"]: t.doc for t in tasks}
    children: defaultdict[str, list[str]] = defaultdict(list)
    for uuid, doc in docs.items():
        parent = doc.get("parent_id")
        if parent in docs and parent != uuid:
            children[str(parent)].append(uuid)
    depth: dict[str, int] = {}
    starts = [u for u, d in docs.items() if d.get("parent_id") not in docs or u == root_id]
    frontier = sorted(starts, key=lambda u: (u != root_id, docs[u].get("timestamp") or 0.0))
    for uuid in frontier:
        depth.setdefault(uuid, 0)
    while frontier:
        following: list[str] = []
        for uuid in frontier:
            for child in children[uuid]:
                if child not in depth:
                    depth[child] = depth[uuid] + 1
                    following.append(child)
        frontier = following
    for uuid in docs:  # a cycle (never in practice): put it first
        depth.setdefault(uuid, 0)
    columns: defaultdict[int, list[str]] = defaultdict(list)
    for uuid in sorted(
        docs, key=lambda u: docs[u].get("received") or docs[u].get("timestamp") or 0
    ):
        columns[depth[uuid]].append(uuid)
    nodes: dict[str, Node] = {}
    for column, uuids in columns.items():
        for row, uuid in enumerate(uuids):
            doc = docs[uuid]
            nodes[uuid] = Node(
                uuid=uuid,
                name=str(doc.get("name") or "?"),
                state=str(doc.get("state") or "PENDING"),
                depth=column,
                x=MARGIN + column * (NODE_WIDTH + COLUMN_GAP),
                y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
            )
    edges = [
        Edge(
            parent=parent,
            child=child,
            x1=nodes[parent].x + NODE_WIDTH,
            y1=nodes[parent].y + NODE_HEIGHT // 2,
            x2=nodes[child].x,
            y2=nodes[child].y + NODE_HEIGHT // 2,
        )
        for parent, kids in children.items()
        for child in kids
    ]
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    rows = max((len(u) for u in columns.values()), default=1)
    height = MARGIN * 2 + rows * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    edges.sort(key=lambda e: (e.x1, e.y1, e.y2))
    return Graph(root_id, sorted(nodes.values(), key=lambda n: (n.x, n.y)), edges, width, height)


__all__ = ["Edge", "Graph", "Node", "layout"]
