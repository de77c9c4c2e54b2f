"""``POST /api/v1/me/beacons``: a shopper's phone reports the store's
fixed beacons it heard (issue 15, docs/mobile-sdk.md); and
``GET /api/v1/stores/{store}/phones/stats`` for staff (``read`` scope).

The body is ``omnizone.contract.phone.PhoneReport`` (the one definition, so
the OpenAPI spec shows it); the shopper is the bearer token's, so nothing in
the body names the phone."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from omnizone.contract.phone import MAX_BATCH_BYTES, PhoneReport, PhoneReportResult
from omnizone.server.entrypoints.http import API_PREFIX, ErrorOut
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.phone_sightings import PhoneReportRefused, PhoneSightings

EXAMPLE_REPORT: dict[str, Any] = {
    "v": 1,
    "store": "paris-rivoli",
    "batch": "q7Xk2b9LmP4sRt1w",
    "windows": [
        {
            "start_ms": 1795255200000,
            "window_ms": 1000,
            "beacons": [
                {
                    "beacon": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:11",
                    "rssi": -67.5,
                    "count": 2,
                },
                {
                    "beacon": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:13",
                    "rssi": -79.0,
                    "count": 1,
                },
            ],
        },
        {"start_ms": 1795255201000, "window_ms": 1000, "beacons": []},
    ],
    "regions": [{"event": "enter", "at_ms": 1795255199400}],
}


def phone_router(
    phones: PhoneSightings,
    authenticate: Callable[[str], str | None],
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["phones"])
    current_shopper = shopper_dependency(authenticate)

    @router.post(
        "/me/beacons",
        response_model=PhoneReportResult,
        responses={
            401: {"model": ErrorOut, "description": "no or unknown shopper token"},
            403: {"model": ErrorOut, "description": "no location consent, or another store"},
            413: {"model": ErrorOut, "description": f"batch over {MAX_BATCH_BYTES} bytes"},
            429: {"model": ErrorOut, "description": "too many batches; Retry-After says when"},
        },
        summary="Report fixed beacons the phone heard (one batch of windows)",
    )
    async def report_beacons(
        request: Request,
        shopper: Annotated[str, Depends(current_shopper)],
        report: Annotated[PhoneReport, Body(openapi_examples={"batch": {"value": EXAMPLE_REPORT}})],
    ) -> PhoneReportResult:
        """One batch of ranging windows and region events. A resend of the
        same ``batch`` id is answered as the first time (``duplicate``: true)
        and not applied again: resend until you get a 200."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"batch: more than {MAX_BATCH_BYTES} bytes; send fewer windows per batch",
            )
        try:
            return await run_in_threadpool(phones.report, shopper, report)
        except PhoneReportRefused as refused:
            headers = {"Retry-After": str(refused.retry_after_s)} if refused.retry_after_s else None
            raise HTTPException(refused.status, refused.reason, headers=headers) from None

    @router.get("/stores/{store}/phones/stats", dependencies=[Depends(require_scope("read"))])
    def phone_stats(store: str) -> dict[str, Any]:
        """Batches, windows, duplicates, refusals, region events and the
        unknown beacon keys phones reported (named, counted; never stored)."""
        return phones.stats(store)

    return router
