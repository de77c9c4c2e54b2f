"""The store's event stream (issue 18 point 8): Server-Sent Events resumable
from a cursor, a JSON page of the same events, and webhook subscriptions.

``GET /api/v1/stores/{store}/events/stream`` (scope ``read``) sends
``id: <cursor>``, ``event: <name>`` and ``data: <Segment track message>`` per
event; a client that reconnects with ``Last-Event-ID`` (browsers' EventSource
do it by themselves) or ``?cursor=`` gets exactly the events after it.
``?once=true`` sends what is there and closes (scripts, tests); otherwise
the stream polls for new events every ``POLL_S`` seconds and sends a comment
as a keep-alive. ``GET .../events`` is one page as JSON (``next_cursor``).
``/events/subscriptions`` (scope ``admin``) lists, adds and removes signed
webhooks (docs/event-stream.md).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.analytics import UnknownStore
from omnizone.server.service.event_stream import BATCH, BadSubscription, EventStream

POLL_S = 2.0


def sse(cursor: str, name: str, message: dict[str, object]) -> str:
    data = json.dumps(message, separators=(",", ":"))
    return f"id: {cursor}\nevent: {name}\ndata: {data}\n\n"


class SubscriptionIn(BaseModel):
    url: str = Field(description="https URL the batches are POSTed to, signed")
    events: list[str] = Field(default_factory=list, description="event names; empty: all")
    from_cursor: str | None = Field(None, description="start after this event; none: from now")
    model_config = {"extra": "forbid"}


def _bad_cursor(error: ValueError, where: str = "cursor") -> HTTPException:
    return HTTPException(422, [{"loc": ["query", where], "msg": str(error), "type": "value_error"}])


def events_router(
    stream: EventStream, require_scope: Callable[[str], Any], *, prefix: str = API_PREFIX
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["events"])
    read = [Depends(require_scope("read"))]
    admin = [Depends(require_scope("admin"))]

    def page(store: str, after: str | None, limit: int) -> list[tuple[str, str, dict[str, object]]]:
        try:
            return stream.after(store, after, limit)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except ValueError as error:
            raise _bad_cursor(error) from None

    @router.get("/stores/{store}/events", dependencies=read)
    async def events(
        store: str,
        cursor: Annotated[str | None, Query(description="events after this id")] = None,
        limit: Annotated[int, Query(ge=1, le=BATCH)] = 100,
    ) -> dict[str, Any]:
        found = await asyncio.to_thread(page, store, cursor, limit)
        return {
            "store": store,
            "events": [m for _c, _n, m in found],
            "next_cursor": found[-1][0] if found else cursor,
        }

    @router.get(
        "/stores/{store}/events/stream",
        dependencies=read,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def sse_stream(
        store: str,
        cursor: Annotated[str | None, Query(description="resume after this event id")] = None,
        once: Annotated[bool, Query(description="send what is there, then close")] = False,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        after = last_event_id or cursor
        first = await asyncio.to_thread(page, store, after, BATCH)

        async def body() -> AsyncIterator[str]:
            position = after
            batch = first
            while True:
                for event_cursor, name, message in batch:
                    yield sse(event_cursor, name, message)
                    position = event_cursor
                if once and len(batch) < BATCH:
                    return
                if not once:
                    await asyncio.sleep(POLL_S)
                    yield ": keep-alive\n\n"
                batch = await asyncio.to_thread(stream.after, store, position, BATCH)

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.get("/stores/{store}/events/subscriptions", dependencies=admin)
    def subscriptions(store: str) -> dict[str, Any]:
        try:
            return {"subscriptions": [s.as_json() for s in stream.subscriptions(store)]}
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None

    @router.post("/stores/{store}/events/subscriptions", dependencies=admin, status_code=201)
    def subscribe(store: str, body: SubscriptionIn) -> dict[str, Any]:
        try:
            made = stream.subscribe(store, body.url, body.events, body.from_cursor)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except BadSubscription as error:
            raise HTTPException(
                422, [{"loc": ["body", error.where], "msg": error.what, "type": "value_error"}]
            ) from None
        return made.as_json()

    @router.delete(
        "/stores/{store}/events/subscriptions/{sub_id}", dependencies=admin, status_code=204
    )
    def unsubscribe(store: str, sub_id: str) -> None:
        try:
            removed = stream.unsubscribe(store, sub_id)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        if not removed:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {sub_id!r}")

    return router
