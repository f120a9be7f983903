"""The backend used when no result backend is configured: stores nothing, reads fail clearly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, NoReturn

from celeriac.backends.base import ResultBackend
from celeriac.exceptions import NotConfigured

E_NO_BACKEND = (
    "No result backend is configured. Set result_backend (for example "
    "app.conf.result_backend = 'db+sqlite:///results.sqlite' or pass backend=... to Celery()) "
    "to store and fetch task results."
)


def _not_configured() -> NoReturn:
    raise NotConfigured(E_NO_BACKEND)


class DisabledBackend(ResultBackend):
    """Every store is a no-op; every read raises ``NotConfigured`` with the fix in it."""

    schemes: ClassVar[tuple[str, ...]] = ("disabled",)
    persistent: ClassVar[bool] = False

    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        _not_configured()

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        return None

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        # Skips even encoding the result: a worker without a backend must not pay for it.
        return None

    def _delete_meta(self, task_id: str) -> None:
        return None

    def _get_group(self, group_id: str) -> Any | None:
        _not_configured()

    def _set_group(self, group_id: str, value: Any) -> None:
        return None

    def _delete_group(self, group_id: str) -> None:
        return None

    def _cleanup(self, older_than: datetime) -> int:
        return 0

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        _not_configured()

    def wait_for(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        on_interval: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        _not_configured()

    def task_result_exists(self, task_id: str) -> bool:
        _not_configured()

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        _not_configured()


__all__ = ["E_NO_BACKEND", "DisabledBackend"]
