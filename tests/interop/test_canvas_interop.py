"""The canvas between real Celery 5.7 and celeriac on Redis, both ways round: a chain, a group,
a chord (Celery 5.7's Redis keys and counting on both sides) and an old-style errback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.conftest import DIRECTIONS, Endpoint, Link, serve_link

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30


@pytest.fixture(scope="module", params=DIRECTIONS)
def link(
    request: pytest.FixtureRequest, endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Link]:
    yield from serve_link(request, endpoint, tmp_path_factory)


def sig(link: Link, name: str, *args: Any) -> Any:
    return link.client.signature(name, args=args)


def canvas(link: Link) -> Any:
    """The canvas module of the client's package (celery.canvas or celeriac.canvas)."""
    return __import__(f"{type(link.client).__module__.split('.')[0]}.canvas", fromlist=["x"])


def test_chain(link: Link) -> None:
    result = (sig(link, "interop.add", 1, 2) | sig(link, "interop.add", 3)).apply_async()
    assert result.get(timeout=TIMEOUT) == 6
    assert result.parent.get(timeout=TIMEOUT) == 3
    longer = canvas(link).chain(
        sig(link, "interop.add", 1, 1), sig(link, "interop.add", 1), sig(link, "interop.add", 1)
    )
    assert longer.delay().get(timeout=TIMEOUT) == 4


def test_group(link: Link) -> None:
    result = canvas(link).group(sig(link, "interop.add", i, i) for i in range(4)).apply_async()
    assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6]


def test_chord(link: Link) -> None:
    header = [sig(link, "interop.add", i, i) for i in range(5)]
    result = canvas(link).chord(header)(sig(link, "interop.echo"))
    assert result.get(timeout=TIMEOUT) == {"args": [[0, 2, 4, 6, 8]], "kwargs": {}}


def test_errback_old_style_gets_the_failed_task_id(link: Link) -> None:
    errback = sig(link, "interop.errback")
    errback_result = errback.freeze()
    failed = link.client.send_task("interop.fail", args=("boom",), link_error=errback)
    with pytest.raises(ValueError):
        failed.get(timeout=TIMEOUT)
    assert errback_result.get(timeout=TIMEOUT) == failed.id


def test_map_starmap_and_chunks(link: Link) -> None:
    module, app = canvas(link), link.client
    mapped = module.xmap(sig(link, "interop.echo"), [1, 2], app=app).apply_async()
    assert mapped.get(timeout=TIMEOUT) == [
        {"args": [1], "kwargs": {}},
        {"args": [2], "kwargs": {}},
    ]
    starred = module.xstarmap(sig(link, "interop.add"), [(1, 2), (3, 4)], app=app).delay()
    assert starred.get(timeout=TIMEOUT) == [3, 7]
    parts = module.chunks(sig(link, "interop.add"), [(i, i) for i in range(5)], 2, app=app)()
    assert parts.get(timeout=TIMEOUT) == [[0, 2], [4, 6], [8]]


def test_children_are_read_by_the_other_side(link: Link) -> None:
    result = link.client.send_task("interop.spawn", args=(5,))
    assert result.get(timeout=TIMEOUT) == 5
    sent, fanned = result.children
    assert sent.get(timeout=TIMEOUT) == 6 and fanned.get(timeout=TIMEOUT) == [5, 6]
    assert [value for _, value in result.collect(timeout=TIMEOUT)] == [5, 6, [5, 6], 5, 6]
