"""``GET /api/v1/stores/{store}/beacons``: the store's fixed beacons as the
gateways hear them (last heard, signal, Eddystone-TLM battery, temperature
and advertising count) with their alerts; and the Prometheus gauges of the
same. The dashboard's fleet view reads this route (docs/dashboard.md)."""

from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.beacon_fleet import BeaconFleet


class BeaconOut(BaseModel):
    beacon: str = Field(description="the store file's beacon id")
    device: str = Field(description="the id it advertises; never an address")
    position: tuple[float, float]
    last_heard_ms: int | None
    silent_s: float | None = Field(description="store clock minus last heard")
    gateways_hearing: int = Field(description="gateways that heard it in its last minute heard")
    strongest_gateway: str | None
    rssi_dbm: float | None = Field(description="the strongest gateway's latest window mean")
    battery_mv: int | None = Field(description="from Eddystone-TLM; null: none heard, or mains")
    temperature_c: float | None
    adv_count: int | None = Field(description="advertising PDUs since power-on (TLM)")
    uptime_s: float | None
    telemetry_ms: int | None = Field(description="when its TLM was last heard")
    drain_mv_per_day: float | None
    drop_db: float | None = Field(description="recent signal against before; positive = quieter")
    alerts: list[str]


class BeaconAlertOut(BaseModel):
    beacon: str
    kind: str = Field(description="silent, low-battery or weak-signal")
    message: str


class BeaconRulesOut(BaseModel):
    silent_after_s: float
    low_battery_mv: int
    weak_drop_db: float


class BeaconFleetOut(BaseModel):
    store: str
    clock_ms: int | None = Field(description="the store's newest reported window")
    rules: BeaconRulesOut
    beacons: list[BeaconOut]
    alerts: list[BeaconAlertOut]


def beacon_fleet_view(fleet: BeaconFleet, store: str) -> BeaconFleetOut:
    view = fleet.view(store)
    rules = fleet.rules
    return BeaconFleetOut(
        store=store,
        clock_ms=view.clock_ms,
        rules=BeaconRulesOut(
            silent_after_s=rules.silent_after_ms / 1000,
            low_battery_mv=rules.low_battery_mv,
            weak_drop_db=rules.weak_drop_db,
        ),
        beacons=[BeaconOut(**{**asdict(r), "alerts": list(r.alerts)}) for r in view.beacons],
        alerts=[BeaconAlertOut(**asdict(a)) for a in view.alerts],
    )


def beacon_fleet_router(
    fleet: BeaconFleet, require_scope: Callable[[str], Any], *, prefix: str = API_PREFIX
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["gateways"])

    @router.get(
        "/stores/{store}/beacons",
        response_model=BeaconFleetOut,
        dependencies=[Depends(require_scope("read"))],
    )
    def beacons(store: str) -> BeaconFleetOut:
        if not fleet.knows(store):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown store {store!r}")
        return beacon_fleet_view(fleet, store)

    return router


class BeaconFleetCollector(Collector):
    """Per fixed beacon: ``omnizone_beacon_silent_seconds``,
    ``omnizone_beacon_battery_mv``, ``omnizone_beacon_temperature_celsius``,
    ``omnizone_beacon_adv_count``, ``omnizone_beacon_rssi_dbm`` and
    ``omnizone_beacon_alert{kind}`` (1 while it stands)."""

    def __init__(self, fleet: BeaconFleet) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        labels = ["store", "beacon"]
        silent = GaugeMetricFamily(
            "omnizone_beacon_silent_seconds",
            "store clock minus when a gateway last heard the fixed beacon",
            labels=labels,
        )
        battery = GaugeMetricFamily(
            "omnizone_beacon_battery_mv", "fixed beacon battery (Eddystone-TLM)", labels=labels
        )
        temperature = GaugeMetricFamily(
            "omnizone_beacon_temperature_celsius",
            "fixed beacon temperature (Eddystone-TLM)",
            labels=labels,
        )
        adverts = GaugeMetricFamily(
            "omnizone_beacon_adv_count",
            "advertising PDUs since the fixed beacon powered on (Eddystone-TLM)",
            labels=labels,
        )
        rssi = GaugeMetricFamily(
            "omnizone_beacon_rssi_dbm",
            "the strongest gateway's latest window mean RSSI of the fixed beacon",
            labels=labels,
        )
        alert = GaugeMetricFamily(
            "omnizone_beacon_alert",
            "1 while a fixed beacon alert stands (silent, low-battery, weak-signal)",
            labels=[*labels, "kind"],
        )
        for store in self._fleet.stores:
            view = self._fleet.view(store)
            for row in view.beacons:
                key = [store, row.beacon]
                if row.silent_s is not None:
                    silent.add_metric(key, row.silent_s)
                if row.battery_mv is not None:
                    battery.add_metric(key, row.battery_mv)
                if row.temperature_c is not None:
                    temperature.add_metric(key, row.temperature_c)
                if row.adv_count is not None:
                    adverts.add_metric(key, row.adv_count)
                if row.rssi_dbm is not None:
                    rssi.add_metric(key, row.rssi_dbm)
            for a in view.alerts:
                alert.add_metric([store, a.beacon, a.kind], 1.0)
        yield from (silent, battery, temperature, adverts, rssi, alert)
