"""AMQP URL and settings parsing, message mapping, kombu-compatible Queue arguments."""

from __future__ import annotations

import amqp
import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.amqp.codec import REQUEUED_HEADER, from_amqp, to_amqp
from celeriac.transports.amqp.conn import parse_params
from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.schemes import transport_from_url


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@localhost:5672//", "/"),
        ("amqp://guest:guest@localhost:5672/", "/"),
        ("amqp://localhost", "/"),
        ("pyamqp://u:p@h/prod", "prod"),
        ("amqp://u:p@h/%2Fspaced%20name", "/spaced name"),
    ],
)
def test_vhost_as_kombu_reads_it(url: str, vhost: str) -> None:
    assert parse_params(url, {}).virtual_host == vhost


def test_url_parts_and_defaults() -> None:
    params = parse_params("amqp://bob:p%40ss@rabbit.example:5673//", {})
    assert (params.host, params.port, params.userid, params.password) == (
        "rabbit.example",
        5673,
        "bob",
        "p@ss",
    )
    assert params.display == "amqp://bob:**@rabbit.example:5673//"
    assert "p@ss" not in repr(params)
    defaults = parse_params("amqp://", {})
    assert (defaults.userid, defaults.password, defaults.port) == ("guest", "guest", 5672)
    assert defaults.heartbeat == 120.0 and defaults.confirm_publish is False


def test_settings_under_celery_and_kombu_names() -> None:
    params = parse_params(
        "amqps://h//",
        {
            "broker_heartbeat": 10,
            "broker_connection_timeout": 2,
            "confirm_publish": True,
            "task_publish_retry_policy": {"max_retries": 5, "interval_step": 1},
            "broker_connection_max_retries": None,
            "task_queue_max_priority": 10,
        },
    )
    assert params.ssl is True and params.port == 5671
    assert (params.heartbeat, params.connect_timeout, params.confirm_publish) == (10, 2, True)
    assert params.publish_policy.max_retries == 5
    assert params.reconnect_policy.max_retries is None
    assert params.queue_max_priority == 10
    ssl_opts = {"ca_certs": "/ca.pem", "cert_reqs": 2}
    assert parse_params("amqp://h", {"broker_use_ssl": ssl_opts}).ssl == ssl_opts


def test_url_table_serves_every_amqp_scheme() -> None:
    for url in ("amqp://h//", "pyamqp://h//", "amqps://h//"):
        assert isinstance(transport_from_url(url), AMQPTransport)
    with pytest.raises(ImproperlyConfigured, match="Did you mean amqp://"):
        transport_from_url("ampq://h//")


def test_message_maps_onto_basic_properties() -> None:
    message = Message(
        b"\x00raw",
        "application/json",
        "utf-8",
        {"task": "t", "eta": None, "timelimit": [None, 2]},
        {
            "correlation_id": "id1",
            "reply_to": "oid",
            "delivery_mode": 2,
            "priority": 5,
            "expiration": "600000",
            "body_encoding": "base64",  # kombu-virtual envelope: no AMQP slot, dropped
        },
    )
    raw = to_amqp(message)
    assert raw.body == b"\x00raw"
    assert raw.properties["application_headers"] == {
        "task": "t",
        "eta": None,
        "timelimit": [None, 2],
    }
    assert "body_encoding" not in raw.properties
    raw.delivery_info = {"exchange": "ex", "routing_key": "rk", "redelivered": False}
    back, exchange, routing_key, redelivered = from_amqp(raw)
    assert back.properties == {k: v for k, v in message.properties.items() if k != "body_encoding"}
    assert (back.body, back.headers, exchange, routing_key, redelivered) == (
        b"\x00raw",
        message.headers,
        "ex",
        "rk",
        False,
    )


def test_requeued_copy_reports_its_origin_and_redelivery() -> None:
    raw = to_amqp(Message(b"x", "text/plain", "utf-8"), {REQUEUED_HEADER: ["ex", "rk"]})
    raw.delivery_info = {"exchange": "", "routing_key": "q", "redelivered": False}
    back, exchange, routing_key, redelivered = from_amqp(raw)
    assert (exchange, routing_key, redelivered, back.headers) == ("ex", "rk", True, {})
    assert isinstance(raw, amqp.Message)


def test_queue_is_kombu_compatible() -> None:
    queue = Queue(
        "video",
        "media",
        "media.video",
        max_priority=10,
        expires=60,
        message_ttl=5,
        queue_arguments={"x-dead-letter-exchange": "dlx"},
    )
    assert queue.exchange == Exchange("media")
    assert queue.arguments == {
        "x-dead-letter-exchange": "dlx",
        "x-expires": 60000,
        "x-message-ttl": 5000,
        "x-max-priority": 10,
    }
    assert Queue("celery") == Queue("celery", Exchange("celery", "direct"), "celery")
    assert Queue("tmp", exclusive=True).auto_delete is True


def test_app_connection_options_override_broker_transport_options() -> None:
    app = Celery(
        "conn",
        broker="amqp://guest:guest@localhost//",
        broker_transport_options={"confirm_publish": False},
        set_as_current=False,
    )
    assert not app.connection().params.confirm_publish  # type: ignore[attr-defined]
    transport = app.connection(confirm_publish=True)
    assert isinstance(transport, AMQPTransport) and transport.params.confirm_publish
    assert not transport.send_only


def test_rpc_backend_connections_read_the_broker_settings() -> None:
    """The rpc:// backend's connections use the broker settings (TLS, heartbeat, ...) as the
    app's own connections do."""
    app = Celery(
        "rpcconf",
        broker="amqp://guest:guest@localhost//",
        backend="rpc://",
        broker_heartbeat=7,
        set_as_current=False,
    )
    transport = app.backend._transport()  # type: ignore[attr-defined]
    assert isinstance(transport, AMQPTransport) and transport.params.heartbeat == 7.0
