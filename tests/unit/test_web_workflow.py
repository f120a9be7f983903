"""The workflow graph's layout: generations left to right, edges parent to child."""

from __future__ import annotations

from typing import Any

from celeriac.web.store import StoredTask
from celeriac.web.workflow import NODE_WIDTH, layout


def task(uuid: str, at: float, parent: str | None, root: str, state: str = "SUCCESS") -> StoredTask:
    doc: dict[str, Any] = {"uuid": uuid, "name": f"t.{uuid}", "state": state, "timestamp": at,
                           "received": at, "parent_id": parent, "root_id": root}  # fmt: skip
    return StoredTask(doc, [])


def test_a_chain_is_one_row_left_to_right() -> None:
    graph = layout("a", [task("c", 3, "b", "a"), task("a", 1, None, "a"), task("b", 2, "a", "a")])
    assert [(n.uuid, n.depth) for n in graph.nodes] == [("a", 0), ("b", 1), ("c", 2)]
    assert len({n.y for n in graph.nodes}) == 1
    assert [(e.parent, e.child) for e in graph.edges] == [("a", "b"), ("b", "c")]
    assert graph.edges[0].x1 == graph.nodes[0].x + NODE_WIDTH


def test_a_chord_fans_out_then_joins_under_its_last_header_task() -> None:
    tasks = [
        task("root", 1, None, "root"),
        task("h1", 2, "root", "root"),
        task("h2", 3, "root", "root", state="STARTED"),
        task("cb", 4, "h2", "root", state="PENDING"),
    ]
    graph = layout("root", tasks)
    depths = {n.uuid: n.depth for n in graph.nodes}
    assert depths == {"root": 0, "h1": 1, "h2": 1, "cb": 2}
    column = [n for n in graph.nodes if n.depth == 1]
    assert [n.uuid for n in column] == ["h1", "h2"] and column[0].y < column[1].y
    assert {(e.parent, e.child) for e in graph.edges} == {("root", "h1"), ("root", "h2"),
                                                          ("h2", "cb")}  # fmt: skip
    assert graph.width > 2 * NODE_WIDTH and graph.height > 0


def test_a_task_whose_parent_was_never_seen_starts_a_column() -> None:
    graph = layout("x", [task("y", 2, "gone", "x")])
    assert [(n.uuid, n.depth) for n in graph.nodes] == [("y", 0)] and not graph.edges


def member(uuid: str, at: float, group: str, index: int | None, **fields: Any) -> StoredTask:
    """A task from a client-sent group or chord: its own root, ``group`` from celeriac."""
    found = task(uuid, at, fields.pop("parent", None), fields.pop("root", uuid), **fields)
    found.doc["group"] = group
    if index is not None:
        found.doc["group_index"] = index
    return found


def test_a_group_sent_from_a_client_hangs_under_a_node_of_its_own() -> None:
    tasks = [member("m1", 1, "g", 0), member("m2", 2, "g", 1, state="STARTED")]
    graph = layout("m2", tasks)
    assert [(n.uuid, n.depth, n.kind) for n in graph.nodes] == [
        ("g", 0, "group"), ("m1", 1, "task"), ("m2", 1, "task")]  # fmt: skip
    assert graph.nodes[0].name == "group of 2" and graph.nodes[0].state == "STARTED"
    assert {(e.parent, e.child) for e in graph.edges} == {("g", "m1"), ("g", "m2")}


def test_a_chords_body_follows_every_header_task() -> None:
    tasks = [
        member("h1", 1, "g", 0),
        member("h2", 2, "g", 1, state="FAILURE"),
        member("body", 3, "g", None, parent="h2", root="h2", state="PENDING"),
        task("next", 4, "body", "h2", state="PENDING"),  # a chain after the chord
    ]
    graph = layout("h1", tasks)
    assert {n.uuid: n.depth for n in graph.nodes} == {"g": 0, "h1": 1, "h2": 1, "body": 2,
                                                      "next": 3}  # fmt: skip
    assert graph.nodes[0].name == "chord of 2" and graph.nodes[0].state == "FAILURE"
    assert {(e.parent, e.child) for e in graph.edges} == {
        ("g", "h1"), ("g", "h2"), ("h1", "body"), ("h2", "body"), ("body", "next")}  # fmt: skip


def test_a_group_a_task_sent_needs_no_node_of_its_own() -> None:
    tasks = [task("root", 1, None, "root"), member("m1", 2, "g", 0, parent="root", root="root")]
    graph = layout("root", tasks)
    assert [(n.uuid, n.depth) for n in graph.nodes] == [("root", 0), ("m1", 1)]
    assert [(e.parent, e.child) for e in graph.edges] == [("root", "m1")]
