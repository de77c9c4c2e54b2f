"""The store's event stream as Server-Sent Events, resumable from a cursor
(issue 18 point 8, zone events only). Scope ``read``.

``GET /api/v1/stores/{store}/events/stream`` sends ``id: <cursor>``,
``event: <type>`` and ``data: <json>`` per event; a client that reconnects
with ``Last-Event-ID`` (browsers' EventSource do it by themselves) or
``?cursor=`` gets exactly the events after it. ``?once=true`` sends what is
there and closes (scripts, tests); otherwise the stream polls for new events
every ``POLL_S`` seconds and sends a comment as a keep-alive.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from omnizone.server.domain.analytics.event_stream import StoreEvent, cursor_time
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.analytics import UnknownStore

POLL_S = 2.0
#: Events read per poll: (store, after cursor or None) -> events after it.
EventsAfter = Callable[[str, str | None], list[StoreEvent]]


def sse(event: StoreEvent, store: str) -> str:
    data = json.dumps(event.as_json(store), separators=(",", ":"))
    return f"id: {event.cursor}\nevent: {event.type}\ndata: {data}\n\n"


def events_router(
    events_after: EventsAfter, require_scope: Callable[[str], Any], *, prefix: str = API_PREFIX
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["events"])

    @router.get(
        "/stores/{store}/events/stream",
        dependencies=[Depends(require_scope("read"))],
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        store: str,
        cursor: Annotated[str | None, Query(description="resume after this event id")] = None,
        once: Annotated[bool, Query(description="send what is there, then close")] = False,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        after = last_event_id or cursor
        if after is not None:
            try:
                cursor_time(after)
            except ValueError as error:
                raise HTTPException(
                    422, [{"loc": ["query", "cursor"], "msg": str(error), "type": "value_error"}]
                ) from None
        try:
            first = await asyncio.to_thread(events_after, store, after)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None

        async def body() -> AsyncIterator[str]:
            position = after
            batch = first
            while True:
                for event in batch:
                    yield sse(event, store)
                    position = event.cursor
                if once:
                    return
                await asyncio.sleep(POLL_S)
                yield ": keep-alive\n\n"
                batch = await asyncio.to_thread(events_after, store, position)

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router
