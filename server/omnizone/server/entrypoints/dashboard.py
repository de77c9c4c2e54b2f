"""The staff dashboard: its static files, and the routes only it needs.

- ``/dashboard/``: the page (plain HTML, CSS and ES modules from
  ``web/dashboard``, no CDN, no build step; docs/dashboard.md).
- ``GET /api/v1/whoami``: the scopes of the presented key, so the page hides
  what the key may not do.
- ``GET /api/v1/stores/{store}/plan``: the running plan (zones with polygons,
  gateways, readers) and which saved layout version runs.
- layouts and floor images: versioned, validated with the store model and
  the store's radio files, applied at once (``service/layouts.py``).
- ``/api/v1/stores/{store}/live`` (WebSocket): a snapshot of the floor per
  tick. Browsers cannot set headers on a WebSocket, so the key comes in the
  first message, ``{"type": "auth", "key": "…"}`` (or as ``X-API-Key`` from
  other clients); anything else closes the socket with 4401.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect, WebSocketState

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.layouts import MAX_IMAGE_BYTES, LayoutRejected, LayoutService
from omnizone.server.service.live_map import LiveMap
from omnizone.server.service.ports.layouts import StoredLayout

log = logging.getLogger(__name__)

DASHBOARD_FILES = Path(__file__).resolve().parent.parent / "web" / "dashboard"
#: Seconds between live snapshots: twice a second, so a page sees at least one per second.
LIVE_INTERVAL_S = 0.5
AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_GOING_AWAY = 1001

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


# -- bodies ---------------------------------------------------------------------------


class WhoAmIOut(BaseModel):
    scopes: list[str]
    read: bool = Field(description="may read store data (read or admin)")
    admin: bool = Field(description="may change layouts, campaigns, gateway configs")


class LayoutInfoOut(BaseModel):
    version: int
    saved_ms: int
    note: str
    image_id: int | None
    running: bool = Field(description="this process runs this version now")


class PlanOut(BaseModel):
    store: str
    plan: dict[str, Any] = Field(description="the running store plan (omnizone.store.StorePlan)")
    running_version: int | None = Field(description="saved layout version running; None: file")
    latest_version: int | None = Field(description="newest saved layout version")
    pending_restart: bool = Field(
        description="a newer layout than the running one is saved: false after a save here "
        "(it applies at once); true only if another server on the same database saved it. "
        "Kept for clients of the earlier API"
    )
    image_id: int | None = Field(description="floor image of the newest saved layout")


class LayoutOut(BaseModel):
    store: str
    version: int
    saved_ms: int
    note: str
    image_id: int | None
    plan: dict[str, Any]
    applies: str = Field(description="when this layout takes effect")


class LayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] = Field(description="a whole store plan, as in a store file")
    image_id: int | None = Field(None, description="a floor image uploaded for this store")
    note: str = Field("", max_length=500)


class ImageOut(BaseModel):
    image_id: int
    content_type: str
    bytes: int


# -- keys -----------------------------------------------------------------------------


class KeyRing:
    """API key -> scopes, compared in constant time against every key."""

    def __init__(self, keys: Mapping[str, frozenset[str]]) -> None:
        self._keys = dict(keys)

    def scopes(self, presented: str | None) -> frozenset[str] | None:
        if not presented:
            return None
        found: frozenset[str] | None = None
        for key, scopes in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = scopes
        return found


def _may(scopes: frozenset[str], scope: str) -> bool:
    return scope in scopes or "admin" in scopes


# -- the live hub ---------------------------------------------------------------------


class LiveHub:
    """One ticker per store with watchers builds one snapshot per tick and
    hands the same text to every watcher. Each watcher has a one-slot
    mailbox: a dashboard that cannot keep up skips to the newest snapshot
    (the ``seq`` gap tells it) instead of making the server queue for it."""

    def __init__(self, live: LiveMap, interval_s: float = LIVE_INTERVAL_S) -> None:
        self.live = live
        self.interval_s = interval_s
        self._watchers: dict[str, set[asyncio.Queue[str | None]]] = {}
        self._tickers: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = threading.Event()
        self.snapshots_built = 0

    def watch(self, store: str) -> "asyncio.Queue[str | None]":
        """Called on the event loop; starts the store's ticker if needed."""
        self._loop = asyncio.get_running_loop()
        mailbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1)
        if self._closed.is_set():
            mailbox.put_nowait(None)
            return mailbox
        self._watchers.setdefault(store, set()).add(mailbox)
        if store not in self._tickers or self._tickers[store].done():
            self._tickers[store] = asyncio.create_task(self._tick(store))
        return mailbox

    def unwatch(self, store: str, mailbox: "asyncio.Queue[str | None]") -> None:
        watchers = self._watchers.get(store)
        if watchers is not None:
            watchers.discard(mailbox)

    def close(self) -> None:
        """From any thread: end every live socket (the server is stopping)."""
        self._closed.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for watchers in self._watchers.values():
            for mailbox in watchers:
                _post(mailbox, None)
        for ticker in self._tickers.values():
            ticker.cancel()

    async def _tick(self, store: str) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self._watchers.get(store) and not self._closed.is_set():
            try:
                # Off the event loop: it waits for the ingest lock.
                snapshot = await asyncio.to_thread(self.live.snapshot, store)
                text = snapshot.to_json()
            except Exception:
                log.exception("live snapshot of %s failed", store)
                text = json.dumps({"type": "error", "detail": "snapshot failed"})
            self.snapshots_built += 1
            for mailbox in list(self._watchers.get(store, ())):
                _post(mailbox, text)
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a long ingest transaction): no burst to catch up
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)


def _post(mailbox: "asyncio.Queue[str | None]", item: str | None) -> None:
    """Newest wins: drop the unsent snapshot, if any."""
    with contextlib.suppress(asyncio.QueueEmpty):
        if mailbox.full():
            mailbox.get_nowait()
    with contextlib.suppress(asyncio.QueueFull):
        mailbox.put_nowait(item)


# -- routes ---------------------------------------------------------------------------


def _layout_info(layout: StoredLayout, running: int | None) -> LayoutInfoOut:
    return LayoutInfoOut(
        version=layout.version,
        saved_ms=layout.saved_ms,
        note=layout.note,
        image_id=layout.image_id,
        running=layout.version == running,
    )


APPLIES = (
    "now: every part of the server (ingest, the localizer, the live map, the API, campaigns, "
    "analytics) runs it from the next message; stays in removed zones are closed and "
    "messages of removed gateways are dead-lettered"
)


def dashboard_router(
    require: Callable[[str], Callable[..., None]],
    keys: Mapping[str, frozenset[str]],
    layouts: LayoutService,
    hub: LiveHub,
) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["dashboard"])
    ring = KeyRing(keys)
    read = [Depends(require("read"))]
    admin = [Depends(require("admin"))]

    def rejected(error: LayoutRejected) -> HTTPException:
        return HTTPException(422, error.problems)

    @router.get("/whoami", response_model=WhoAmIOut)
    def whoami(
        api_key: Annotated[str | None, Depends(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> WhoAmIOut:
        """What the presented key may do (any valid key; 401 otherwise)."""
        scopes = ring.scopes(api_key or (bearer.credentials if bearer else None))
        if scopes is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or missing API key: send X-API-Key or Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return WhoAmIOut(scopes=sorted(scopes), read=_may(scopes, "read"), admin="admin" in scopes)

    @router.get("/stores/{store}/plan", response_model=PlanOut, dependencies=read)
    def plan(store: str) -> PlanOut:
        running = layouts.running_plan(store)
        found = layouts.status(store)
        return PlanOut(
            store=store,
            plan=running.model_dump(mode="json"),
            running_version=found.running_version,
            latest_version=found.latest.version if found.latest else None,
            pending_restart=found.pending_restart,
            image_id=found.latest.image_id if found.latest else None,
        )

    @router.get("/stores/{store}/layouts", response_model=list[LayoutInfoOut], dependencies=read)
    def list_layouts(store: str) -> list[LayoutInfoOut]:
        running = layouts.status(store).running_version
        return [_layout_info(layout, running) for layout in layouts.versions(store)]

    @router.get("/stores/{store}/layouts/{version}", response_model=LayoutOut, dependencies=read)
    def get_layout(store: str, version: int) -> LayoutOut:
        found = layouts.version(store, version)
        return _layout_out(found)

    @router.post(
        "/stores/{store}/layouts",
        response_model=LayoutOut,
        status_code=status.HTTP_201_CREATED,
        dependencies=admin,
        responses={422: {"description": "the plan is refused; each problem names its field"}},
    )
    def save_layout(store: str, body: LayoutIn) -> LayoutOut:
        """Validate with the store model and the store's radio files, save as
        the next version and run it at once (422 names each problem)."""
        try:
            saved = layouts.save(store, body.plan, body.image_id, body.note)
        except LayoutRejected as error:
            raise rejected(error) from None
        return _layout_out(saved)

    @router.post(
        "/stores/{store}/floor-images",
        response_model=ImageOut,
        status_code=status.HTTP_201_CREATED,
        dependencies=admin,
    )
    async def upload_image(store: str, request: Request) -> ImageOut:
        """The image bytes as the body (PNG, JPEG or WebP, ``Content-Type`` set)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"body: more than {MAX_IMAGE_BYTES} bytes"
            )
        data = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            image_id = await asyncio.to_thread(layouts.add_image, store, content_type, data)
        except LayoutRejected as error:
            raise rejected(error) from None
        return ImageOut(
            image_id=image_id, content_type=content_type.split(";")[0].strip(), bytes=len(data)
        )

    @router.get("/stores/{store}/floor-images/{image_id}", dependencies=read)
    def get_image(store: str, image_id: int) -> Response:
        found = layouts.image(store, image_id)
        return Response(
            found.data,
            media_type=found.content_type,
            headers={
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @router.websocket("/stores/{store}/live")
    async def live(websocket: WebSocket, store: str) -> None:
        await websocket.accept()
        presented = websocket.headers.get("x-api-key")
        if presented is None:
            presented = await _first_message_key(websocket)
            if presented is None:
                return
        scopes = ring.scopes(presented)
        if scopes is None:
            await websocket.close(CLOSE_UNAUTHENTICATED, "unknown API key")
            return
        if not _may(scopes, "read"):
            await websocket.close(CLOSE_FORBIDDEN, "this API key lacks the 'read' scope")
            return
        if store not in hub.live.stores:
            await websocket.close(CLOSE_NOT_FOUND, f"unknown store {store!r}")
            return
        await _stream(websocket, hub, store)

    return router


def _layout_out(layout: StoredLayout) -> LayoutOut:
    return LayoutOut(
        store=layout.store,
        version=layout.version,
        saved_ms=layout.saved_ms,
        note=layout.note,
        image_id=layout.image_id,
        plan=layout.plan,
        applies=APPLIES,
    )


async def _first_message_key(websocket: WebSocket) -> str | None:
    """The key of ``{"type": "auth", "key": …}``; closes the socket and
    returns None when the first message is anything else."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
    except TimeoutError:
        await websocket.close(CLOSE_UNAUTHENTICATED, "no auth message within 10 s")
        return None
    except (WebSocketDisconnect, RuntimeError, KeyError):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    key = message.get("key") if isinstance(message, dict) else None
    if not isinstance(message, dict) or message.get("type") != "auth" or not isinstance(key, str):
        await websocket.close(
            CLOSE_UNAUTHENTICATED, 'unauthenticated: send {"type":"auth","key":"<API key>"} first'
        )
        return None
    return key


async def _stream(websocket: WebSocket, hub: LiveHub, store: str) -> None:
    await websocket.send_text(
        json.dumps({"type": "hello", "store": store, "interval_ms": round(hub.interval_s * 1000)})
    )
    mailbox = hub.watch(store)

    async def send() -> None:
        while True:
            text = await mailbox.get()
            if text is None:
                with contextlib.suppress(RuntimeError, OSError):
                    await websocket.close(CLOSE_GOING_AWAY, "server stopping")
                return
            await websocket.send_text(text)

    async def receive() -> None:  # only to notice the page going away
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unwatch(store, mailbox)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    gone = (WebSocketDisconnect, OSError, asyncio.CancelledError)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, gone):
            log.error("live map socket of %s failed", store, exc_info=result)
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close()


def mount_dashboard(app: FastAPI, files: Path = DASHBOARD_FILES) -> None:
    """``/dashboard/`` serves the page; assets under ``/dashboard/static``."""
    app.mount("/dashboard/static", StaticFiles(directory=files), name="dashboard-static")

    @app.get("/dashboard", include_in_schema=False)
    def bare() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(files / "index.html", headers={"Cache-Control": "no-cache"})


class DashboardPart:
    """What the runtime wires in: the router factory and the live hub to close."""

    def __init__(
        self,
        keys: Mapping[str, frozenset[str]],
        layouts: LayoutService,
        live: LiveMap,
        interval_s: float = LIVE_INTERVAL_S,
    ) -> None:
        self.layouts = layouts
        self.hub = LiveHub(live, interval_s)
        self._keys = keys

    def router(self, require: Callable[[str], Callable[..., None]]) -> APIRouter:
        return dashboard_router(require, self._keys, self.layouts, self.hub)

    def close(self) -> None:
        self.hub.close()
