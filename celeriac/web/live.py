"""Live updates over server-sent events: ``/live`` says ``{"version": n}`` whenever events
have changed the cluster model (checked twice a second), and a ``: ping`` comment every
15 s so proxies keep the stream open. The pages' script fetches a fresh rendering of what
they show when the version moves: one small stream for every page, no client state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from celeriac.web.monitor import Monitor

#: Seconds between two looks at the version.
POLL = 0.5
#: Seconds between keep-alive comments.
PING = 15.0


def live_endpoint(monitor: Monitor) -> Callable[[Request], Awaitable[Response]]:
    async def live(request: Request) -> Response:
        return StreamingResponse(
            _stream(monitor, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return live


async def _stream(monitor: Monitor, request: Request) -> AsyncIterator[str]:
    seen = -1
    quiet = 0.0
    while not await request.is_disconnected():
        version = monitor.version
        if version != seen:
            seen = version
            quiet = 0.0
            yield f"data: {json.dumps({'version': version})}\n\n"
        elif quiet >= PING:
            quiet = 0.0
            yield ": ping\n\n"
        await asyncio.sleep(POLL)
        quiet += POLL


__all__ = ["live_endpoint"]
