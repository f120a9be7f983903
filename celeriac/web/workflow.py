"""The workflow view's graph: the tasks of one workflow (a chain, a group, a chord, or whatever
a task launched), laid out left to right by generation, each edge from parent to child.

Celery's event fields give ``root_id`` and ``parent_id``: a chain's steps follow each other
and what a task sent hangs under it. celeriac's workers and clients add ``group`` and
``group_index`` to ``task-received`` / ``task-sent`` of a group or chord member, so a group
no task sent (its members each their own root) gets a node of its own before its members,
and a chord's body (the group's id, no index) follows every header task. Tasks from Celery's
workers carry no ``group``: they draw by ``parent_id`` alone (a chord's body under the
header task that completed it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

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
    #: ``"task"``, or ``"group"`` for a group's own node (its id, no task page).
    kind: str = "task"


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
    parents = _parents(root_id, docs)
    depth = _depths(parents)
    when = {uuid: _time(doc) for uuid, doc in docs.items()}
    for uuid in parents:  # a group's node: as early as its first member
        if uuid not in docs:
            when[uuid] = min((when[u] for u, p in parents.items() if uuid in p), default=0.0)
    columns: defaultdict[int, list[str]] = defaultdict(list)
    for uuid in sorted(parents, key=lambda u: when.get(u, 0.0)):
        columns[depth[uuid]].append(uuid)
    nodes: dict[str, Node] = {}
    for column, uuids in columns.items():
        for row, uuid in enumerate(uuids):
            doc = docs.get(uuid)
            if doc is None:
                name, state, kind = _group_label(uuid, docs)
            else:
                name, state, kind = str(doc.get("name") or "?"), _state(doc), "task"
            nodes[uuid] = Node(
                uuid=uuid,
                name=name,
                state=state,
                depth=column,
                x=MARGIN + column * (NODE_WIDTH + COLUMN_GAP),
                y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
                kind=kind,
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
        for child, ups in parents.items()
        for parent in ups
    ]
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    rows = max((len(u) for u in columns.values()), default=1)
    height = MARGIN * 2 + rows * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    edges.sort(key=lambda e: (e.x1, e.y1, e.y2))
    return Graph(root_id, sorted(nodes.values(), key=lambda n: (n.x, n.y)), edges, width, height)


def _parents(root_id: str, docs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Each node's parents: the task that sent it; for a member of a group no task sent
    (``group`` / ``group_index`` from a celeriac client or worker), a node for the group;
    for a chord's body (the group's id, no index), every header task."""
    parents: dict[str, list[str]] = {}
    members: defaultdict[str, list[str]] = defaultdict(list)
    bodies: defaultdict[str, list[str]] = defaultdict(list)
    for uuid, doc in docs.items():
        parent = doc.get("parent_id")
        parents[uuid] = [str(parent)] if parent in docs and parent != uuid else []
        group_id = doc.get("group")
        if group_id is not None and group_id not in docs:
            index = doc.get("group_index")
            (bodies if index is None else members)[str(group_id)].append(uuid)
    if root_id in parents:
        parents[root_id] = []
    for group_id, uuids in members.items():
        for uuid in uuids:
            if not parents[uuid]:
                parents[uuid] = [group_id]
        if any(group_id in ups for ups in parents.values()):
            parents[group_id] = []
        for body in bodies.get(group_id, []):
            parents[body] = sorted({*parents[body], *uuids} - {body})
    return parents


def _depths(parents: dict[str, list[str]]) -> dict[str, int]:
    """The longest path from a node without parents (a cycle, never in practice: column 0)."""
    waiting = {uuid: len(ups) for uuid, ups in parents.items()}
    children: defaultdict[str, list[str]] = defaultdict(list)
    for uuid, ups in parents.items():
        for parent in ups:
            children[parent].append(uuid)
    depth = dict.fromkeys(parents, 0)
    ready = [uuid for uuid, n in waiting.items() if n == 0]
    while ready:
        uuid = ready.pop()
        for child in children[uuid]:
            depth[child] = max(depth[child], depth[uuid] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return depth


def _group_label(group_id: str, docs: dict[str, dict[str, Any]]) -> tuple[str, str, str]:
    """A group's node: what it is, and one state for its members (the same state, a
    failure if one failed, else started)."""
    members = [d for d in docs.values() if d.get("group") == group_id]
    chord = any(d.get("group_index") is None for d in members)
    size = sum(1 for d in members if d.get("group_index") is not None)
    found = {_state(d) for d in members if d.get("group_index") is not None}
    if len(found) == 1:
        state = found.pop()
    elif found & {"FAILURE", "REJECTED"}:
        state = "FAILURE"
    else:
        state = "STARTED"
    return f"{'chord' if chord else 'group'} of {size}", state, "group"


def _state(doc: dict[str, Any]) -> str:
    return str(doc.get("state") or "PENDING")


def _time(doc: dict[str, Any]) -> float:
    return float(doc.get("received") or doc.get("timestamp") or 0.0)


__all__ = ["Edge", "Graph", "Node", "layout"]
