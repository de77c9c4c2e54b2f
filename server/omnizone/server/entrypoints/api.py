"""The HTTP API (FastAPI): occupancy, visits, zone summaries, ingest health.

Everything but ``GET /health`` needs an API key, sent as ``X-API-Key`` or
``Authorization: Bearer <key>``. Scope ``read`` opens the store data and
metrics; ``admin`` (which implies ``read``) also opens the dead letters.
"""

import base64
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from omnizone.server.entrypoints.http import API_PREFIX, ErrorOut, install_error_handlers
from omnizone.server.entrypoints.limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    BodyLimit,
    RateLimit,
    RateSettings,
)
from omnizone.server.service.gateways import ConfigRejected, GatewayAdmin
from omnizone.server.service.ingest import IngestCounters
from omnizone.server.service.queries import NotFound, StoreQueries
from omnizone.server.service.radio_reload import ReloadStatus

#: Builds a part's routes given the scope check (``require("read")`` is a dependency).
RouterFactory = Callable[[Callable[[str], Callable[..., None]]], APIRouter]


# -- response models ------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        "ok", description="degraded (HTTP 503): ingest runs here but the broker is disconnected"
    )
    problems: list[str] = Field(default_factory=list, description="what is wrong, in words")
    mqtt_connected: bool | None = Field(None, description="None when no ingest runs here")
    radio_not_applied: list[str] | None = Field(
        None,
        description="stores whose newest survey or calibration file could not be applied "
        "(the running localizer is kept; which file and why: GET /api/v1/localizer); "
        "None when no ingest runs here",
    )


class StoreRadioOut(BaseModel):
    store: str
    survey: str | None = Field(description="the survey file the store file names")
    calibration: str | None = Field(description="the calibration file the store file names")
    applied: bool = Field(description="the newest version of both runs")
    error: str | None = Field(description="why not: the file, the line or field, the fault")


class LocalizerOut(BaseModel):
    reloads: int = Field(description="localizers rebuilt since start: new files, saved layouts")
    failures: int = Field(description="times new files (or a layout's) could not be applied")
    stores: list[StoreRadioOut]


class ZoneOut(BaseModel):
    id: str
    name: str
    kind: str


class StoreOut(BaseModel):
    id: str
    name: str
    timezone: str
    zones: list[ZoneOut]


class ZoneOccupancyOut(BaseModel):
    zone: str
    name: str
    devices: int = Field(description="devices with an open stay in the zone")


class OccupancyOut(BaseModel):
    store: str
    at_ms: int = Field(description="store event time (latest BLE window end), epoch ms")
    zones: list[ZoneOccupancyOut]


class VisitOut(BaseModel):
    device: str
    zone: str
    entered_ms: int
    left_ms: int | None
    dwell_s: float | None
    status: Literal["open", "visit", "pass_by"]


class ZoneSummaryOut(BaseModel):
    zone: str
    visits: int = Field(description="closed stays of at least min_presence_s")
    pass_bys: int = Field(description="closed stays shorter than min_presence_s")
    open_visits: int
    mean_dwell_s: float | None = Field(description="mean dwell of closed visits")


class IngestStatsOut(BaseModel):
    ingested: int
    duplicates: int
    dead_lettered: int
    gaps: int = Field(description="sequence numbers never received, over all gateways")
    unresolved_dropped: int | None = Field(
        None,
        description="sightings of rotating ids no registered phone has, dropped unstored "
        "(since this process started; None when no ingest runs here)",
    )
    not_consented_dropped: int | None = Field(
        None,
        description="sightings of shoppers who allow neither location nor offers, dropped "
        "(since this process started; None when no ingest runs here)",
    )
    replayed_dropped: int | None = Field(
        None,
        description="registered phones' rotating ids heard outside their period plus skew, "
        "or at a second store in their period: replays, dropped unstored "
        "(since this process started; None when no ingest runs here)",
    )


class DeadLetterOut(BaseModel):
    id: int
    received_ms: int
    topic: str
    reason: str
    payload_text: str = Field(description="payload as UTF-8, undecodable bytes replaced")
    payload_base64: str
    original_bytes: int = Field(
        description="size of the payload as it arrived; what is kept is capped "
        "(dead_letter_payload_bytes) and has MAC-like strings masked"
    )
    truncated: bool = Field(description="the payload kept is shorter than it arrived")


# -- auth -------------------------------------------------------------------------

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def _scopes_of(keys: Mapping[str, frozenset[str]], presented: str) -> frozenset[str] | None:
    found: frozenset[str] | None = None
    for key, scopes in keys.items():  # compare against every key: no timing hint
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = scopes
    return found


def _authorizer(keys: Mapping[str, frozenset[str]]) -> Callable[[str], Callable[..., None]]:
    def require(scope: str) -> Callable[..., None]:
        def check(
            api_key: Annotated[str | None, Depends(_api_key_header)],
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> None:
            presented = api_key or (bearer.credentials if bearer else None)
            if not presented:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "missing API key: send X-API-Key or Authorization: Bearer <key>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            scopes = _scopes_of(keys, presented)
            if scopes is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "unknown API key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if scope not in scopes and "admin" not in scopes:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, f"this API key lacks the {scope!r} scope"
                )

        return check

    return require


# -- metrics ----------------------------------------------------------------------


class _StoreCollector(Collector):
    """Reads the numbers at scrape time, so every API process reports the same."""

    def __init__(
        self,
        queries: StoreQueries,
        counters: Callable[[], IngestCounters] | None = None,
        radio: Callable[[], ReloadStatus] | None = None,
    ) -> None:
        self._queries = queries
        self._counters = counters
        self._radio = radio

    def collect(self) -> Iterator[Metric]:
        stats = self._queries.ingest_stats()
        for name, value, text in (
            ("omnizone_ingested_messages", stats.ingested, "gateway messages accepted"),
            ("omnizone_duplicate_messages", stats.duplicates, "redelivered messages ignored"),
            ("omnizone_dead_letters", stats.dead_lettered, "messages rejected with a reason"),
            ("omnizone_sequence_gaps", stats.gaps, "sequence numbers never received"),
        ):
            yield GaugeMetricFamily(name, text, value=value)
        if self._counters is not None:  # this process's ingest, not the database's
            counters = self._counters()
            for name, value, text in (
                (
                    "omnizone_unresolved_sightings_dropped",
                    counters.unresolved_dropped,
                    "sightings of rotating ids no registered phone has",
                ),
                (
                    "omnizone_not_consented_sightings_dropped",
                    counters.not_consented_dropped,
                    "sightings of shoppers who allow neither location nor offers",
                ),
                (
                    "omnizone_replayed_sightings_dropped",
                    counters.replayed_dropped,
                    "rotating ids heard outside their period or at a second store",
                ),
            ):
                yield CounterMetricFamily(name, text, value=value)
        if self._radio is not None:
            radio = self._radio()
            yield CounterMetricFamily(
                "omnizone_localizer_reloads",
                "localizers rebuilt without a restart (new survey or calibration, saved layout)",
                value=radio.reloads,
            )
            yield CounterMetricFamily(
                "omnizone_localizer_reload_failures",
                "new survey or calibration files that could not be applied",
                value=radio.failures,
            )
            stale = GaugeMetricFamily(
                "omnizone_localizer_radio_not_applied",
                "1 while the store's newest survey or calibration is not applied",
                labels=["store"],
            )
            for store in self._queries.stores:
                stale.add_metric([store], 1 if store in radio.errors else 0)
            yield stale
        devices = GaugeMetricFamily(
            "omnizone_zone_devices", "devices with an open stay", labels=["store", "zone"]
        )
        for store in self._queries.stores:
            for zone in self._queries.occupancy(store).zones:
                devices.add_metric([store, zone.zone], zone.devices)
        yield devices


# -- the app ----------------------------------------------------------------------


class GatewayOut(BaseModel):
    gateway: str
    zone: str
    online: bool
    state: str | None = Field(description="last status: online/offline")
    version: str | None
    session: int | None
    last_seen_ms: int | None = Field(description="when the server last received anything")
    uptime_s: float | None = None
    outbox_depth: int | None = None
    outbox_dropped: int | None = None
    cpu_temp_c: float | None = None
    readers: dict[str, str] = {}
    counters: dict[str, int] = {}


class GatewayConfigIn(BaseModel):
    """Settings to change; absent ones keep their last issued value."""

    model_config = ConfigDict(extra="forbid")

    window_ms: int | None = None
    health_interval_s: float | None = None
    ble: dict[str, Any] | None = None
    nfc: dict[str, Any] | None = None
    rfid: dict[str, Any] | None = None


def create_app(
    queries: StoreQueries,
    api_keys: Mapping[str, Iterable[str]],
    *,
    mqtt_connected: Callable[[], bool] | None = None,
    gateways: GatewayAdmin | None = None,
    routers: Sequence[RouterFactory] = (),
    ingest_counters: Callable[[], IngestCounters] | None = None,
    localizer_status: Callable[[], ReloadStatus] | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    open_route_rate: RateSettings | None = None,
    collectors: Sequence[Collector] = (),
) -> FastAPI:
    """The API over ``queries``; ``api_keys`` maps a key to its scopes.
    ``routers`` add the other parts' routes (shoppers, offers); each gets the
    scope check, so every route authenticates the same way. Every request
    body is bounded (``max_request_bytes``, larger for the routes that need
    it); ``open_route_rate`` limits each client address on the routes open
    to anyone (none: no rate limit; the server passes its settings).
    ``localizer_status``: the running localizers' reloads and the radio files
    not applied (``/health``, ``/metrics``, ``GET /api/v1/localizer``);
    ``collectors`` add other parts' metrics to ``/metrics``."""
    keys = {key: frozenset(scopes) for key, scopes in api_keys.items()}
    require = _authorizer(keys)
    read = [Depends(require("read"))]
    admin = [Depends(require("admin"))]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_StoreCollector(queries, ingest_counters, localizer_status))
    for collector in collectors:  # other parts' gauges (self-calibration)
        registry.register(collector)
    errors: dict[int | str, dict[str, object]] = {
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
    }

    app = FastAPI(
        title="omnizone",
        version="1",
        description="In-store proximity: zone occupancy, visits and dwell.",
        responses=errors,
    )

    for make_router in routers:
        app.include_router(make_router(require))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)
    if open_route_rate is not None:
        app.add_middleware(RateLimit, rate=open_route_rate)

    @app.exception_handler(NotFound)
    def _not_found(_request: Request, error: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.get(
        "/health",
        response_model=HealthOut,
        tags=["ops"],
        responses={503: {"model": HealthOut, "description": "the broker is disconnected"}},
    )
    def health(response: Response) -> HealthOut:
        """Open to anyone: whether ingest runs, and which stores' radio files are
        not applied (store ids only; the files and errors need a key). Not ok
        (503) while ingest runs here without its broker: no data comes in."""
        radio = localizer_status() if localizer_status is not None else None
        connected = mqtt_connected() if mqtt_connected else None
        problems = ["the MQTT broker is disconnected: no gateway data comes in"]
        degraded = connected is False
        if degraded:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthOut(
            status="degraded" if degraded else "ok",
            problems=problems if degraded else [],
            mqtt_connected=connected,
            radio_not_applied=sorted(radio.errors) if radio is not None else None,
        )

    @app.get("/metrics", dependencies=read, tags=["ops"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(f"{API_PREFIX}/stores", response_model=list[StoreOut], dependencies=read)
    def stores() -> list[StoreOut]:
        return [
            StoreOut(
                id=plan.id,
                name=plan.store.name,
                timezone=plan.store.timezone,
                zones=[ZoneOut(id=z.id, name=z.name, kind=z.kind.value) for z in plan.zones],
            )
            for plan in queries.stores.values()
        ]

    @app.get(
        f"{API_PREFIX}/stores/{{store}}/occupancy", response_model=OccupancyOut, dependencies=read
    )
    def occupancy(store: str) -> OccupancyOut:
        found = queries.occupancy(store)
        return OccupancyOut(
            store=found.store,
            at_ms=found.at_ms,
            zones=[
                ZoneOccupancyOut(zone=z.zone, name=z.name, devices=z.devices) for z in found.zones
            ],
        )

    @app.get(
        f"{API_PREFIX}/stores/{{store}}/visits", response_model=list[VisitOut], dependencies=read
    )
    def visits(
        store: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        zone: str | None = None,
    ) -> list[VisitOut]:
        return [
            VisitOut(
                device=v.device,
                zone=v.zone,
                entered_ms=v.entered_ms,
                left_ms=v.left_ms,
                dwell_s=v.dwell_s,
                status=v.status,
            )
            for v in queries.recent_visits(store, limit, zone)
        ]

    @app.get(
        f"{API_PREFIX}/stores/{{store}}/zones/summary",
        response_model=list[ZoneSummaryOut],
        dependencies=read,
    )
    def zone_summary(store: str) -> list[ZoneSummaryOut]:
        return [
            ZoneSummaryOut(
                zone=s.zone,
                visits=s.visits,
                pass_bys=s.pass_bys,
                open_visits=s.open_visits,
                mean_dwell_s=s.mean_dwell_s,
            )
            for s in queries.zone_summaries(store)
        ]

    @app.get(f"{API_PREFIX}/ingest/stats", response_model=IngestStatsOut, dependencies=read)
    def ingest_stats() -> IngestStatsOut:
        s = queries.ingest_stats()
        counters = ingest_counters() if ingest_counters is not None else None
        return IngestStatsOut(
            ingested=s.ingested,
            duplicates=s.duplicates,
            dead_lettered=s.dead_lettered,
            gaps=s.gaps,
            unresolved_dropped=counters.unresolved_dropped if counters else None,
            not_consented_dropped=counters.not_consented_dropped if counters else None,
            replayed_dropped=counters.replayed_dropped if counters else None,
        )

    if localizer_status is not None:
        status_of = localizer_status

        @app.get(f"{API_PREFIX}/localizer", response_model=LocalizerOut, dependencies=read)
        def localizer() -> LocalizerOut:
            """Each store's survey and calibration files, and whether their
            newest versions run (a rewritten file is picked up without a restart)."""
            radio = status_of()
            return LocalizerOut(
                reloads=radio.reloads,
                failures=radio.failures,
                stores=[
                    StoreRadioOut(
                        store=store,
                        survey=files.survey,
                        calibration=files.calibration,
                        applied=store not in radio.errors,
                        error=radio.errors.get(store),
                    )
                    for store, files in sorted(radio.files.items())
                ],
            )

    @app.get(f"{API_PREFIX}/dead-letters", response_model=list[DeadLetterOut], dependencies=admin)
    def dead_letters(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeadLetterOut]:
        return [
            DeadLetterOut(
                id=d.id,
                received_ms=d.received_ms,
                topic=d.topic,
                reason=d.reason,
                payload_text=d.payload.decode("utf-8", errors="replace"),
                payload_base64=base64.b64encode(d.payload).decode("ascii"),
                original_bytes=d.original_bytes,
                truncated=len(d.payload) < d.original_bytes,
            )
            for d in queries.dead_letters(limit)
        ]

    if gateways is not None:
        _gateway_routes(app, gateways, read, admin)
    return app


def _gateway_routes(app: FastAPI, gateways: GatewayAdmin, read: Any, admin: Any) -> None:
    @app.get(
        f"{API_PREFIX}/stores/{{store}}/gateways",
        response_model=list[GatewayOut],
        dependencies=read,
        tags=["gateways"],
    )
    def fleet(store: str) -> list[GatewayOut]:
        out = []
        for g in gateways.fleet(store):
            health = g.health or {}
            out.append(
                GatewayOut(
                    gateway=g.gateway,
                    zone=g.zone,
                    online=g.online,
                    state=g.state,
                    version=g.version,
                    session=g.session,
                    last_seen_ms=g.last_seen_ms,
                    uptime_s=health.get("uptime_s"),
                    outbox_depth=health.get("outbox_depth"),
                    outbox_dropped=health.get("outbox_dropped"),
                    cpu_temp_c=health.get("cpu_temp_c"),
                    readers=health.get("readers", {}),
                    counters=health.get("counters", {}),
                )
            )
        return out

    @app.get(
        f"{API_PREFIX}/stores/{{store}}/gateways/{{gateway}}/config",
        dependencies=admin,
        tags=["gateways"],
    )
    def get_config(store: str, gateway: str) -> dict[str, Any]:
        config = gateways.config(store, gateway)
        if config is None:
            raise HTTPException(404, f"no config has been issued to {gateway!r} yet")
        return config.model_dump(mode="json", exclude_none=True)

    @app.put(
        f"{API_PREFIX}/stores/{{store}}/gateways/{{gateway}}/config",
        dependencies=admin,
        tags=["gateways"],
    )
    def put_config(store: str, gateway: str, changes: GatewayConfigIn) -> dict[str, Any]:
        """Merge the changes into the gateway's config and publish it retained."""
        try:
            config = gateways.change_config(store, gateway, changes.model_dump(exclude_none=True))
        except ConfigRejected as error:
            raise HTTPException(422, f"config refused: {error}") from None
        except ConnectionError as error:
            raise HTTPException(503, str(error)) from None
        return config.model_dump(mode="json", exclude_none=True)
