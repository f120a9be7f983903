"""Signed messages between real Celery 5.7 and celeriac over Redis, both ways round.

Each side calls ``app.setup_security()`` with its own key and certificate; both trust one
certificate store. A celeriac worker rejects a task signed by a key it does not trust, and one
whose body was changed after signing, with a log line naming the task id and the reason, and
goes on serving.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import DEADLINE, REPO, Endpoint
from tests.security_keys import Identity, make_identity, restored_serializers

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30.0

#: The signing task module, written once per package.
SIGNED_APP = textwrap.dedent(
    """
    import json
    import os

    from {package} import Celery

    app = Celery("signed_app", broker=os.environ["INTEROP_BROKER"],
                 backend=os.environ["INTEROP_BACKEND"])
    app.conf.update(json.loads(os.environ["INTEROP_CONF"]))
    app.setup_security()


    @app.task(name="signed.add")
    def add(x, y):
        return x + y


    @app.task(name="signed.flaky", bind=True, max_retries=2)
    def flaky(self):
        if self.request.retries < 1:  # the retry is a message the worker signs
            raise self.retry(countdown=0)
        return self.request.retries
    """
)


def signing_conf(identity: Identity, store: Path) -> dict[str, Any]:
    return {
        "security_key": str(identity.key),
        "security_certificate": str(identity.cert),
        "security_cert_store": str(store),
        "task_serializer": "auth",
        "accept_content": ["auth"],
        "result_accept_content": ["json"],
    }


class SignedWorker:
    def __init__(self, package: str, env: dict[str, str], directory: Path, *args: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "signed_app.py").write_text(SIGNED_APP.format(package=package))
        self.log = directory / f"{package}-worker.log"
        env = dict(os.environ, **env, PYTHONPATH=os.pathsep.join([str(directory), str(REPO)]))
        command = [sys.executable, "-m", package, "-A", "signed_app", "worker", "-l", "info"]
        if package == "celery":
            command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, *args], cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + DEADLINE
        while " ready." not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{package} worker did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Setup:
    def __init__(self, endpoint: Endpoint, root: Path) -> None:
        self.endpoint = endpoint
        self.store = root / "store"
        self.client = make_identity(self.store, "client", serial=11)
        self.worker = make_identity(self.store, "worker", serial=12)
        self.mallory = make_identity(root / "strangers", "mallory", serial=13)
        base = endpoint.conf["task_default_queue"]
        self.queues = {"celeriac": f"{base}.signed-celeriac", "celery": f"{base}.signed-celery"}

    def worker_env(self) -> dict[str, str]:
        env = self.endpoint.env(signing_conf(self.worker, self.store))
        return env


@pytest.fixture(scope="module")
def setup(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with restored_serializers():  # the clients below set up signing in this process
        yield Setup(endpoint, tmp_path_factory.mktemp("signing"))


@pytest.fixture(scope="module")
def celery_signed(setup: Setup) -> Iterator[Any]:
    import celery

    app = celery.Celery(
        "signed_client",
        broker=setup.endpoint.broker,
        backend=setup.endpoint.backend,
        set_as_current=False,
    )
    app.conf.update(setup.endpoint.conf, **signing_conf(setup.client, setup.store))
    app.setup_security()
    yield app
    app.close()


@pytest.fixture(scope="module")
def celeriac_signed(setup: Setup) -> Iterator[Any]:
    from celeriac import Celery

    app = Celery(
        "signed_client",
        broker=setup.endpoint.broker,
        backend=setup.endpoint.backend,
        set_as_current=False,
    )
    app.conf.update({**setup.endpoint.conf, **signing_conf(setup.client, setup.store)})
    app.setup_security()
    yield app
    app.close()


@pytest.fixture(scope="module")
def celeriac_worker(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    worker = SignedWorker(
        "celeriac",
        setup.worker_env(),
        tmp_path_factory.mktemp("celeriac-signed"),
        *("-P", "threads", "-c", "2", "-Q", setup.queues["celeriac"]),
        *("-n", "signed-celeriac@interop"),
    )
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def celery_worker(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    worker = SignedWorker(
        "celery",
        setup.worker_env(),
        tmp_path_factory.mktemp("celery-signed"),
        *("-P", "threads", "-c", "2", "-Q", setup.queues["celery"]),
        *("-n", "signed-celery@interop"),
    )
    yield worker
    worker.stop()


def test_a_celery_client_signs_tasks_a_celeriac_worker_runs(
    setup: Setup, celery_signed: Any, celeriac_worker: SignedWorker
) -> None:
    queue = setup.queues["celeriac"]
    result = celery_signed.send_task("signed.add", (2, 3), queue=queue)
    assert result.get(timeout=TIMEOUT) == 5
    # What the worker sends on its own (a retry, a chain's next step) it signs with its key.
    assert celery_signed.send_task("signed.flaky", queue=queue).get(timeout=TIMEOUT) == 1
    chained = celery_signed.signature("signed.add", (1, 2), queue=queue) | celery_signed.signature(
        "signed.add", (10,), queue=queue
    )
    assert chained.apply_async().get(timeout=TIMEOUT) == 13
    # Remote control is signed too (Celery's mailbox uses task_serializer), both ways.
    replies = celery_signed.control.inspect(
        destination=["signed-celeriac@interop"], timeout=5
    ).ping()
    assert replies == {"signed-celeriac@interop": {"ok": "pong"}}


def test_a_celeriac_client_signs_tasks_a_celery_worker_runs(
    setup: Setup, celeriac_signed: Any, celery_worker: SignedWorker
) -> None:
    queue = setup.queues["celery"]
    result = celeriac_signed.send_task("signed.add", args=(4, 5), queue=queue)
    assert result.get(timeout=TIMEOUT) == 9
    assert celeriac_signed.send_task("signed.flaky", queue=queue).get(timeout=TIMEOUT) == 1
    chained = celeriac_signed.signature(
        "signed.add", (1, 2), queue=queue
    ) | celeriac_signed.signature("signed.add", (10,), queue=queue)
    assert chained.apply_async().get(timeout=TIMEOUT) == 13
    replies = celeriac_signed.control.inspect(
        destination=["signed-celery@interop"], timeout=5
    ).ping()
    assert replies == {"signed-celery@interop": {"ok": "pong"}}


def _publish_signed(client: Any, queue: str, payload: str, task_id: str) -> None:
    """Publish a protocol 2 ``signed.add`` message whose body is ``payload`` (auth text)."""
    headers = client.amqp.as_task_v2(task_id, "signed.add", args=(1, 1), kwargs={}).headers
    with client.connection_for_write() as conn, conn.Producer() as producer:
        producer.publish(
            payload,
            routing_key=queue,
            exchange="",
            headers=headers,
            content_type="application/data",
            content_encoding="utf-8",
        )


def test_a_celeriac_worker_rejects_forged_and_tampered_tasks_and_keeps_serving(
    setup: Setup, celery_signed: Any, celeriac_worker: SignedWorker
) -> None:
    from celery.security.certificate import Certificate
    from celery.security.key import PrivateKey
    from celery.security.serialization import SecureSerializer
    from kombu.serialization import registry

    queue = setup.queues["celeriac"]
    body = [[1, 1], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    # Signed by a key whose certificate the worker does not hold.
    mallory = SecureSerializer(
        PrivateKey(setup.mallory.key.read_text()), Certificate(setup.mallory.cert.read_text())
    )
    forged_id, tampered_id = f"forged-{uuid.uuid4()}", f"tampered-{uuid.uuid4()}"
    _publish_signed(celery_signed, queue, mallory.serialize(body), forged_id)
    # Signed by the trusted client, then the arguments changed.
    _ctype, _enc, signed = registry.dumps(body, serializer="auth")
    fields = base64.b64decode(signed).split(b"\x00\x01", 4)
    fields[4] = json.dumps([[1000, 1], {}, json.loads(fields[4])[2]]).encode()
    tampered = base64.b64encode(b"\x00\x01".join(fields)).decode()
    _publish_signed(celery_signed, queue, tampered, tampered_id)
    # The worker still runs a good task after both.
    assert celery_signed.send_task("signed.add", (20, 3), queue=queue).get(timeout=TIMEOUT) == 23
    lines = _wait(
        lambda: (
            [
                line
                for line in celeriac_worker.output().splitlines()
                if forged_id in line or tampered_id in line
            ]
            if tampered_id in celeriac_worker.output() and forged_id in celeriac_worker.output()
            else None
        ),
        "the rejections in the worker's log",
    )
    forged_line = next(line for line in lines if forged_id in line)
    tampered_line = next(line for line in lines if tampered_id in line)
    assert "signature does not verify" in forged_line
    assert "Unknown certificate: 'celeriac tests mallory 13'" in forged_line
    assert "Bad signature" in tampered_line
    assert celeriac_worker.process.poll() is None
