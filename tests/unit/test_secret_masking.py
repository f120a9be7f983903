"""Passwords stay out of the errors and replies that show a URL or a setting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from celeriac import Celery
from celeriac.beat.store_backends import store_for
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.extras.cluster_store import store_from_url
from celeriac.worker.inspection import broker_stats

SECRET = "hunter2-0451"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://h:6379/0?password={SECRET}&db=1", "redis://h:6379/0?password=**&db=1"),
        (f"redis://h?password={SECRET}", "redis://h?password=**"),
        (f"redis://u:{SECRET}@h/0?password={SECRET}", "redis://u:**@h/0?password=**"),
        (f"amqp://u:{SECRET}@h1//;amqp://u:{SECRET}@h2//", "amqp://u:**@h1//;amqp://u:**@h2//"),
        ("rediss://h:1/0?ssl_cert_reqs=none", "rediss://h:1/0?ssl_cert_reqs=none"),
    ],
)
def test_mask_url_masks_query_passwords_too(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_an_unsupported_cluster_store_url_is_shown_masked() -> None:
    with pytest.raises(ValueError, match="unsupported URL") as info:
        store_from_url(f"mongodb://u:{SECRET}@h/db")
    assert SECRET not in str(info.value)


def test_an_unsupported_schedule_store_url_is_shown_masked() -> None:
    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.beat_schedule_store = f"mongodb://u:{SECRET}@h/db"
    with pytest.raises(ImproperlyConfigured, match="cannot hold a schedule store") as info:
        store_for(app)
    assert SECRET not in str(info.value)


def test_inspect_stats_masks_secrets_in_the_transport_options() -> None:
    app = Celery("t", broker=f"redis://:{SECRET}@h:6379/0", set_as_current=False)
    app.conf.broker_transport_options = {
        "sentinel_kwargs": {"password": SECRET},
        "visibility_timeout": 60,
    }
    broker = broker_stats(SimpleNamespace(app=app))  # type: ignore[arg-type]
    assert SECRET not in repr(broker)
    assert broker["transport_options"]["visibility_timeout"] == 60
