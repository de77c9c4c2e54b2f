"""``GET /api/v1/stores/{store}/gateways/calibration``: the radio fitted from
the gateways hearing one another (docs/localization.md, "Self-calibration"),
per gateway, with drift alerts; and the Prometheus gauges of the same.
The dashboard's fleet view reads this route."""

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.self_calibration import SelfCalibrationJob


class GatewayFitOut(BaseModel):
    gateway: str
    fitted: bool = Field(description="False: too few readings, the defaults stand")
    power_1m_dbm: float | None
    offset_db: float = Field(description="dB louder than the store's typical gateway")
    exponent: float | None
    spread_db: float | None
    samples: int = Field(description="readings the fit used")
    pairs_heard: int = Field(description="other gateways it hears or is heard by")
    flags: list[str]
    drift: str | None = Field(description="blocked, louder or moved: see alerts")


class DriftAlertOut(BaseModel):
    gateway: str
    kind: str
    shift_db: float
    scatter_db: float
    pairs: int
    message: str


class BeaconFitOut(BaseModel):
    beacon: str
    fitted: bool = Field(description="False: too few readings, the defaults stand")
    power_1m_dbm: float = Field(
        description="as a typical gateway hears it (receiver offsets removed)"
    )
    offset_db: float = Field(description="dB louder than the store's typical device")
    exponent: float
    spread_db: float
    samples: int
    gateways_hearing: int
    flags: list[str]


class SelfCalibrationOut(BaseModel):
    store: str
    source: str = "self"
    applied: bool = Field(description="the store's localizer runs on this fit")
    fitted_at: str | None
    power_1m_dbm: float | None
    gateways: list[GatewayFitOut]
    alerts: list[DriftAlertOut]
    beacons: list[BeaconFitOut] = Field(
        default_factory=list, description="the store's fixed beacons, fitted from the gateways"
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def self_calibration_view(job: SelfCalibrationJob, store: str) -> SelfCalibrationOut:
    view = job.calibration.view(store)
    return SelfCalibrationOut(
        store=store,
        applied=job.applies_to(store),
        fitted_at=view.fitted_at,
        power_1m_dbm=view.power_1m_dbm,
        gateways=[
            GatewayFitOut(
                **{
                    **asdict(r),
                    "power_1m_dbm": _number(r.power_1m_dbm),
                    "exponent": _number(r.exponent),
                    "spread_db": _number(r.spread_db),
                    "flags": list(r.flags),
                }
            )
            for r in view.gateways
        ],
        alerts=[DriftAlertOut(**asdict(a)) for a in view.alerts],
        beacons=[BeaconFitOut(**{**asdict(b), "flags": list(b.flags)}) for b in view.beacons],
    )


def self_calibration_router(
    job: SelfCalibrationJob, require_scope: Callable[[str], Any], *, prefix: str = API_PREFIX
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["gateways"])

    @router.get(
        "/stores/{store}/gateways/calibration",
        response_model=SelfCalibrationOut,
        dependencies=[Depends(require_scope("read"))],
    )
    def calibration(store: str) -> SelfCalibrationOut:
        if not job.knows(store):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown store {store!r}")
        return self_calibration_view(job, store)

    return router


class SelfCalibrationCollector(Collector):
    """``omnizone_gateway_drift{store,gateway,kind}`` (1 while an alert stands)
    and ``omnizone_gateway_fitted_power_dbm{store,gateway}``."""

    def __init__(self, job: SelfCalibrationJob) -> None:
        self._job = job

    def collect(self) -> Iterator[Metric]:
        drift = GaugeMetricFamily(
            "omnizone_gateway_drift",
            "1 while a gateway's radio drifted from its long-run fit (blocked, louder, moved)",
            labels=["store", "gateway", "kind"],
        )
        power = GaugeMetricFamily(
            "omnizone_gateway_fitted_power_dbm",
            "a gateway's power at 1 m fitted from the other gateways' beacons",
            labels=["store", "gateway"],
        )
        for store in self._job.stores:
            out = self_calibration_view(self._job, store)
            for alert in out.alerts:
                drift.add_metric([store, alert.gateway, alert.kind], 1.0)
            for row in out.gateways:
                if row.fitted and row.power_1m_dbm is not None:
                    power.add_metric([store, row.gateway], row.power_1m_dbm)
        yield drift
        yield power
