"""HTTP and WebSocket routes of offer delivery: the phone's inbox, live stream,
receipts, till-code QR codes and push registration, and redemption at the till.

The routes sit under the API prefix (``entrypoints/http.py``).
Shopper routes take ``Authorization: Bearer <shopper token>`` (the WebSocket
takes ``?token=``, as browsers cannot set headers on it); the till's route
takes an API key with the ``pos`` scope.
"""

import asyncio
import io
import json
import logging
from collections.abc import Callable
from contextlib import aclosing, suppress
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.delivery import (
    InboxOffer,
    InvalidPushSubscription,
    OfferDelivery,
    OfferNotFound,
    RedemptionRefused,
    SessionClosed,
    offer_message,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_SERVER_ERROR = 1011

_GONE_ERRORS = (WebSocketDisconnect, OSError)
_REFUSAL_STATUS = {"unknown": 404, "already_redeemed": 409, "expired": 410}


# -- bodies -------------------------------------------------------------------------


class OfferOut(BaseModel):
    offer_id: str
    seq: int
    store: str
    campaign_id: str
    title: str
    body: str
    image: str | None = None
    product_gtin: str | None = None
    coupon_code: str = Field(description="unique to this offer: what the till redeems")
    expires_ms: int
    created_ms: int
    trigger: dict[str, Any]
    receipts: dict[str, int] = Field({}, description="status -> first time (epoch ms)")
    redeemed_ms: int | None = None


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["delivered", "opened", "dismissed"]


class ReceiptOut(BaseModel):
    offer_id: str
    status: str
    at_ms: int = Field(description="when this status was first recorded")


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=1, max_length=128)
    auth: str = Field(min_length=1, max_length=64)


class PushSubscriptionIn(BaseModel):
    """``PushSubscription.toJSON()`` as the browser gives it."""

    endpoint: str = Field(min_length=1, max_length=2048)
    expirationTime: int | float | None = None  # the W3C name
    keys: PushKeys


class PushSubscriptionOut(BaseModel):
    endpoint: str


class PushUnsubscribeIn(BaseModel):
    endpoint: str = Field(min_length=1, max_length=2048)


class PushTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Literal["fcm", "apns"]
    token: str = Field(min_length=1, max_length=4096)


class VapidKeyOut(BaseModel):
    public_key: str = Field(description="applicationServerKey, base64url (uncompressed P-256)")


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=80)


class RedemptionOut(BaseModel):
    offer_id: str
    campaign_id: str
    redeemed_ms: int
    store: str


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ack"]
    seq: int = Field(ge=0)


_ack = TypeAdapter(AckIn)


def _offer_out(item: InboxOffer) -> OfferOut:
    return OfferOut(
        **item.offer.wire(),
        receipts=dict(item.receipts),
        redeemed_ms=item.redeemed_ms,
    )


# -- the router ---------------------------------------------------------------------


def offers_router(
    delivery: OfferDelivery,
    authenticate: Callable[[str], str | None],
    require_scope: Callable[[str], Any],
    vapid_public_key: Callable[[], str] | None,
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    """The routes over ``delivery``; ``authenticate`` maps a shopper token to its id."""
    router = APIRouter(prefix=prefix, tags=["offers"])

    shopper = shopper_dependency(authenticate)

    Shopper = Annotated[str, Depends(shopper)]

    @router.get("/me/offers", response_model=list[OfferOut])
    def inbox(
        shopper_id: Shopper,
        after: Annotated[int, Query(ge=0, description="only offers with a higher seq")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[OfferOut]:
        """The shopper's offers in seq order, with receipts and redemption."""
        return [_offer_out(item) for item in delivery.inbox(shopper_id, after, limit)]

    @router.post("/me/offers/{offer_id}/receipts", response_model=ReceiptOut)
    def receipt(shopper_id: Shopper, offer_id: str, body: ReceiptIn) -> ReceiptOut:
        """Idempotent: posting a status again returns the first time it was recorded."""
        try:
            done = delivery.receipt(shopper_id, offer_id, body.status)
        except OfferNotFound as error:
            raise HTTPException(404, str(error)) from None
        return ReceiptOut(offer_id=done.offer_id, status=done.status, at_ms=done.at_ms)

    @router.get("/me/offers/{offer_id}/qr.svg", response_class=Response)
    def offer_qr(offer_id: str, shopper_id: Shopper) -> Response:
        """The till code of one of the shopper's offers as a QR code (SVG)."""
        offer = next(
            (o for o in delivery.offers_after(shopper_id, 0, 10_000) if o.offer_id == offer_id),
            None,
        )
        if offer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no offer {offer_id!r} of yours")
        svg = io.BytesIO()  # a standalone SVG document (with its namespace), not inline markup
        segno.make(offer.coupon_code, error="m").save(svg, kind="svg", scale=6, border=2)
        return Response(
            svg.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )

    @router.get("/push/vapid-public-key", response_model=VapidKeyOut)
    def vapid_key() -> VapidKeyOut:
        if vapid_public_key is None:
            raise HTTPException(404, "Web Push is not configured on this server")
        return VapidKeyOut(public_key=vapid_public_key())

    @router.post("/me/push-subscription", response_model=PushSubscriptionOut, status_code=201)
    def subscribe(shopper_id: Shopper, body: PushSubscriptionIn) -> PushSubscriptionOut:
        try:
            delivery.subscribe_push(shopper_id, body.endpoint, body.keys.p256dh, body.keys.auth)
        except InvalidPushSubscription as error:
            raise HTTPException(422, str(error)) from None
        return PushSubscriptionOut(endpoint=body.endpoint)

    @router.delete("/me/push-subscription", status_code=204)
    def unsubscribe(shopper_id: Shopper, body: PushUnsubscribeIn) -> None:
        if not delivery.unsubscribe_push(shopper_id, body.endpoint):
            raise HTTPException(404, "no such push subscription for this shopper")

    @router.post("/me/push-token", status_code=204)
    def push_token(shopper_id: Shopper, body: PushTokenIn) -> None:
        """The app's FCM registration token or APNs device token."""
        try:
            delivery.register_push_token(shopper_id, body.platform, body.token)
        except InvalidPushSubscription as error:
            raise HTTPException(422, str(error)) from None

    @router.post(
        "/stores/{store}/redemptions",
        response_model=RedemptionOut,
        status_code=201,
        dependencies=[Depends(require_scope("pos"))],
        responses={
            404: {"description": "no offer has this code"},
            409: {"description": "already redeemed"},
            410: {"description": "the offer has expired"},
        },
    )
    def redeem(store: str, body: RedemptionIn) -> RedemptionOut:
        """Redeem an offer's code at the till: 404 unknown, 409 already redeemed, 410 expired."""
        try:
            done = delivery.redeem(store, body.code)
        except RedemptionRefused as refused:
            raise HTTPException(_REFUSAL_STATUS[refused.reason], str(refused)) from None
        return RedemptionOut(
            offer_id=done.offer_id,
            campaign_id=done.campaign_id,
            redeemed_ms=done.redeemed_ms,
            store=done.store,
        )

    @router.websocket("/me/offers/ws")
    async def offers_ws(websocket: WebSocket) -> None:
        """Unacked offers first (seq > ``after``), then live ones; acks are cumulative."""
        token = websocket.query_params.get("token")
        raw_after = websocket.query_params.get("after")
        await websocket.accept()
        shopper_id = await run_in_threadpool(authenticate, token) if token else None
        if shopper_id is None:
            await websocket.close(
                CLOSE_UNAUTHENTICATED,
                "unauthenticated: pass ?token=<shopper token>" if not token else "unknown token",
            )
            return
        after: int | None = None
        if raw_after not in (None, ""):
            try:
                after = int(raw_after)
                if after < 0:
                    raise ValueError
            except ValueError:
                await websocket.close(CLOSE_BAD_REQUEST, "after: expected a seq (integer >= 0)")
                return
        await _serve(websocket, delivery, shopper_id, after)

    return router


async def _serve(
    websocket: WebSocket, delivery: OfferDelivery, shopper_id: str, after: int | None
) -> None:
    sending = asyncio.Lock()  # offers and error replies come from two tasks

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_text(json.dumps(message, separators=(",", ":")))

    async def offers() -> None:
        async with aclosing(delivery.stream(shopper_id, after)) as items:
            async for item in items:
                if isinstance(item, SessionClosed):
                    async with sending:
                        with suppress(RuntimeError, OSError):
                            await websocket.close(item.code, item.reason)
                    return
                await send(offer_message(item))

    async def acks() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            try:
                ack = _ack.validate_json(text)
            except ValidationError as error:
                problem = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
                    for e in error.errors(include_url=False)
                )
                detail = f'expected {{"type":"ack","seq":n}}: {problem}'
                await send({"type": "error", "detail": detail})
                continue
            delivery.ack_soon(shopper_id, ack.seq)  # written with the others' acks

    tasks = [asyncio.create_task(offers()), asyncio.create_task(acks())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    # A phone that goes away mid-send is normal; anything else is logged.
    failed = [r for r in results if isinstance(r, Exception) and not isinstance(r, _GONE_ERRORS)]
    for error in failed:
        log.error("offer stream of shopper %s failed", shopper_id, exc_info=error)
    if failed and websocket.client_state == WebSocketState.CONNECTED:
        with suppress(RuntimeError, OSError):
            await websocket.close(CLOSE_SERVER_ERROR, "server error")
