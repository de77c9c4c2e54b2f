"""Analytics routes: one read-only view per question a store asks of its
stored events (docs/analytics.md), as JSON or as one CSV table.

``GET /api/v1/stores/{store}/analytics`` says which range holds data;
``GET /api/v1/stores/{store}/analytics/{view}?from_ms=&to_ms=&format=json|csv``
answers one view. Times are epoch ms of store event time; ``from_ms`` is
inclusive, ``to_ms`` exclusive. The models below are the contract the
dashboard codes against: change them only together with docs/analytics.md.
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from omnizone.server.entrypoints.answers import csv_download, store_range_errors
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.analytics import (
    AnalyticsService,
    UnknownStore,
    to_csv,
)
from omnizone.server.service.campaign_report import CampaignFigures


class View(StrEnum):
    PRESENCE = "presence"
    DWELL = "dwell"
    FOOTFALL = "footfall"
    VISITS = "visits"
    TRANSITIONS = "transitions"
    ROUTES = "routes"
    FUNNEL = "funnel"
    CAMPAIGNS = "campaigns"
    CAPTURE = "capture"


# -- response models (the dashboard's contract) -------------------------------------


class RangeOut(BaseModel):
    """What every view answers about: the store and the range actually used."""

    store: str
    view: View
    timezone: str = Field(description="the store's IANA timezone, for labelling hours")
    from_ms: int = Field(description="range start, inclusive (epoch ms, store event time)")
    to_ms: int = Field(description="range end, exclusive")


class AnalyticsIndexOut(BaseModel):
    """Where the data is: the dashboard's default range and its range picker."""

    store: str
    timezone: str
    first_event_ms: int | None = Field(description="earliest stored stay entry; None: no data")
    last_event_ms: int | None = Field(description="latest stored event time; None: no data")
    default_from_ms: int = Field(description="from_ms a view uses when none is given")
    default_to_ms: int = Field(description="to_ms a view uses when none is given")
    max_range_days: int
    views: list[View]


class ZonePresenceOut(BaseModel):
    zone: str
    name: str
    presence_s: float = Field(description="shopper-seconds spent in the zone within the range")


class PresenceOut(RangeOut):
    bucket_ms: int = Field(description="bucket length: one hour")
    buckets_ms: list[int] = Field(
        description="bucket starts (store-local hour boundaries); the last may reach past to_ms"
    )
    zones: list[ZonePresenceOut] = Field(description="every zone of the plan, in plan order")
    matrix: list[list[float]] = Field(
        description="matrix[i][j]: shopper-seconds in zones[i] during bucket j (clipped to range)"
    )


class ZoneDwellOut(BaseModel):
    zone: str
    name: str
    visits: int = Field(description="closed visits that entered within the range")
    counts: list[int] = Field(description="counts[k]: visits with dwell in bin k")
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


class DwellOut(RangeOut):
    bins_s: list[float] = Field(
        description=(
            "lower bin edges in seconds: bin k is [bins_s[k], bins_s[k+1]), the last bin is"
            " [bins_s[-1], infinity)"
        )
    )
    labels: list[str] = Field(description="one short label per bin, e.g. '30-60 s', '20 min+'")
    zones: list[ZoneDwellOut]


class ZoneFootfallOut(BaseModel):
    zone: str
    name: str
    counts: list[int] = Field(
        description="entries per hour (every stay that began then: visits, pass-bys, open ones)"
    )
    total: int


class FootfallOut(RangeOut):
    bucket_ms: int
    hours_ms: list[int] = Field(description="hour starts (store-local hour boundaries)")
    zones: list[ZoneFootfallOut]


class ZoneVisitsOut(BaseModel):
    zone: str
    name: str
    visits: int = Field(description="closed stays of at least min_presence_s")
    pass_bys: int = Field(description="closed stays shorter than min_presence_s")
    open_visits: int = Field(description="stays still open now")
    visit_rate: float | None = Field(description="visits / (visits + pass_bys)")
    mean_dwell_s: float | None = Field(description="mean dwell of the closed visits")


class VisitsOut(RangeOut):
    min_presence_s: float = Field(description="the store's pass-by threshold")
    zones: list[ZoneVisitsOut]


class TransitionsOut(RangeOut):
    zones: list[str] = Field(description='"street" first, then every zone of the plan')
    names: list[str]
    matrix: list[list[int]] = Field(
        description=(
            "matrix[i][j]: moves from zones[i] to zones[j] within trips that began in the range;"
            " street -> zone is a trip's first stay, zone -> street its last"
        )
    )
    trips: int
    moves: int = Field(description="sum of the matrix")
    inferred_exits: int = Field(
        0,
        description="trips whose last stay was not in an entrance: the step into the "
        "nearest entrance (the walk out, shorter than the exit grace) was added",
    )


class RouteOut(BaseModel):
    zones: list[str] = Field(
        description="zones visited in order (pass-bys left out, repeats collapsed); [] = no stop"
    )
    trips: int
    share: float = Field(description="trips / all trips of the range")


class RoutesOut(RangeOut):
    trips: int
    distinct_routes: int
    routes: list[RouteOut] = Field(description="most common first, at most `limit`")


class FunnelStepOut(BaseModel):
    step: Literal["store_visit", "zone_visit", "engaged", "purchase"]
    label: str
    trips: int = Field(description="trips that reached this step and every step before it")
    shoppers: int = Field(description="distinct shoppers among those trips")
    rate: float | None = Field(description="trips / trips of the first step")


class TryOnConversionOut(BaseModel):
    events: int = Field(description="garments brought into a fitting room in the range")
    unattributed: int = Field(description="of those, with no located shopper in the room")
    try_ons: int = Field(description="distinct (trip, product) pairs attributed to a shopper")
    purchased: int = Field(description="of those pairs, the shopper bought that product")
    shoppers: int = Field(description="distinct shoppers with an attributed try-on")
    rate: float | None = Field(description="purchased / try_ons")


class FunnelOut(RangeOut):
    steps: list[FunnelStepOut]
    purchased_trips: int = Field(description="trips with a purchase, whatever steps came before")
    try_on_to_purchase: TryOnConversionOut


class CampaignsOut(RangeOut):
    note: str = Field(description="what the range applies to")
    # The report's own record; lift is campaign_lift (docs/offers.md): rates, interval.
    campaigns: list[CampaignFigures]


class CaptureHourOut(BaseModel):
    hour_ms: int = Field(description="store-local hour start")
    entrants: int = Field(description="trips of consented shoppers that began in the hour")
    passers_by: int | None = Field(
        description="distinct other phones the street-front gateways heard; None: not counted"
    )
    street: int | None = Field(description="entrants + passers_by")
    capture_rate: float | None = Field(description="entrants / street")
    entrants_per_passer_by: float | None = Field(description="entrants / passers_by")


class CaptureOut(RangeOut):
    bucket_ms: int
    street_gateways: list[str] = Field(description="the store file's street_front gateways")
    entrants_are: str
    passers_by_are: str
    hours: list[CaptureHourOut] = Field(
        description="every whole store-local hour covering the range (the first may begin"
        " before from_ms)"
    )
    hours_counted: int = Field(description="hours with a stored passer-by count")
    entrants: int = Field(description="entrants of the counted hours")
    passers_by: int = Field(description="passers-by of the counted hours")
    capture_rate: float | None = Field(description="entrants / (entrants + passers_by)")


VIEW_MODELS: dict[View, type[RangeOut]] = {
    View.PRESENCE: PresenceOut,
    View.DWELL: DwellOut,
    View.FOOTFALL: FootfallOut,
    View.VISITS: VisitsOut,
    View.TRANSITIONS: TransitionsOut,
    View.ROUTES: RoutesOut,
    View.FUNNEL: FunnelOut,
    View.CAMPAIGNS: CampaignsOut,
    View.CAPTURE: CaptureOut,
}

AnyViewOut = (
    PresenceOut
    | DwellOut
    | FootfallOut
    | VisitsOut
    | TransitionsOut
    | RoutesOut
    | FunnelOut
    | CampaignsOut
    | CaptureOut
)


def view_answer(
    service: AnalyticsService,
    store: str,
    view: View,
    from_ms: int | None,
    to_ms: int | None,
    *,
    limit: int = 10,
) -> dict[str, Any]:
    """One view checked against its model, as the JSON the API sends (and
    ``omnizone report`` writes, so files and API agree to the byte)."""
    body = service.view(store, view.value, from_ms, to_ms, limit=limit)
    return VIEW_MODELS[view].model_validate({"view": view, **body}).model_dump(mode="json")


# -- routes ---------------------------------------------------------------------------


def analytics_router(
    service: AnalyticsService,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    """The analytics routes over ``service``, each behind the ``read`` scope."""
    router = APIRouter(prefix=prefix, tags=["analytics"])
    read = [Depends(require_scope("read"))]

    @router.get("/stores/{store}/analytics", response_model=AnalyticsIndexOut, dependencies=read)
    def index(store: str) -> AnalyticsIndexOut:
        try:
            found = service.index(store)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        return AnalyticsIndexOut(**found, views=list(View))

    @router.get(
        "/stores/{store}/analytics/{view}",
        response_model=AnyViewOut,
        dependencies=read,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def view(
        store: str,
        view: View,
        from_ms: Annotated[int | None, Query(ge=0, description="inclusive, epoch ms")] = None,
        to_ms: Annotated[int | None, Query(ge=0, description="exclusive, epoch ms")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
        limit: Annotated[int, Query(ge=1, le=100, description="routes: how many")] = 10,
    ) -> Any:
        with store_range_errors():
            out = view_answer(service, store, view, from_ms, to_ms, limit=limit)
        # Returned as is: a union response_model would validate the body again.
        if format == "csv":
            return csv_download(to_csv(view.value, out), f"{store}-{view.value}")
        return JSONResponse(out)

    return router
