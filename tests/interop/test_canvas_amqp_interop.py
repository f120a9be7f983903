"""The canvas between real Celery 5.7 and celeriac on RabbitMQ with Redis results, both ways
round: the tests of ``test_canvas_interop`` (chain, group, chord, old-style errback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.conftest import DIRECTIONS, Endpoint, Link, serve_link
from tests.interop.test_canvas_interop import (  # the same tests, collected here too
    test_chain,
    test_chord,
    test_errback_old_style_gets_the_failed_task_id,
    test_group,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis"], indirect=True, scope="module"),
]

__all__ = [
    "test_chain",
    "test_chord",
    "test_errback_old_style_gets_the_failed_task_id",
    "test_group",
]


@pytest.fixture(scope="module", params=DIRECTIONS)
def link(
    request: pytest.FixtureRequest, endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Link]:
    yield from serve_link(request, endpoint, tmp_path_factory)
