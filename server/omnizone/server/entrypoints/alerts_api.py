"""Store alerts over HTTP: the active alerts and recent changes (JSON or CSV,
scope ``read``), the alert history from the stored log (JSON or CSV, scope
``read``), and the stored thresholds (read: ``read``; change: ``admin``).
Issue 18, point 7."""

import csv
import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from omnizone.server.domain.analytics.alerts import AlertRules, history_summary, rules_json
from omnizone.server.entrypoints.answers import csv_download
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.alerts import AlertsService, UnusableRules
from omnizone.server.service.analytics import UnknownStore

CSV_COLUMNS = ("key", "kind", "subject", "severity", "value", "threshold", "message")
HISTORY_COLUMNS = (
    "key",
    "kind",
    "subject",
    "severity",
    "raised_ms",
    "cleared_ms",
    "duration_s",
    "peak",
    "threshold",
    "message",
)


class AlertRulesIn(BaseModel):
    zone_capacity: dict[str, int] = Field(default_factory=dict, description="zone -> capacity")
    checkout_queue: int | None = Field(None, ge=0)
    dwell_s: dict[str, float] = Field(default_factory=dict, description="zone -> seconds")
    model_config = {"extra": "forbid"}
    gateway_silent_s: float | None = Field(120.0, gt=0)
    hysteresis: int = Field(1, ge=0)


def alerts_csv(active: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for alert in active:
        writer.writerow(["" if alert[c] is None else alert[c] for c in columns])
    return out.getvalue()


def history_csv(episodes: list[dict[str, Any]]) -> str:
    """The alert history as CSV (the API's format=csv and ``omnizone report``)."""
    return alerts_csv(episodes, HISTORY_COLUMNS)


def alerts_router(
    service: AlertsService, require_scope: Callable[[str], Any], *, prefix: str = API_PREFIX
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["alerts"])
    read = [Depends(require_scope("read"))]
    admin = [Depends(require_scope("admin"))]

    @router.get(
        "/stores/{store}/alerts",
        dependencies=read,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def alerts(
        store: str,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
        recent: Annotated[int, Query(ge=0, le=500, description="recent changes to list")] = 50,
    ) -> Any:
        try:
            monitor = service.check(store)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        active = [a.as_json() for a in monitor.active()]
        if format == "csv":
            return csv_download(alerts_csv(active), f"{store}-alerts")
        return JSONResponse(
            {
                "store": store,
                "active": active,
                "recent": monitor.recent(recent),
                "webhook_failures": monitor.sink_failures,
            }
        )

    @router.get("/stores/{store}/alerts/rules", dependencies=read)
    def get_rules(store: str) -> dict[str, Any]:
        try:
            return {"store": store, "rules": rules_json(service.rules(store))}
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None

    @router.put("/stores/{store}/alerts/rules", dependencies=admin)
    def put_rules(store: str, rules: AlertRulesIn) -> dict[str, Any]:
        try:
            service.set_rules(store, AlertRules(**rules.model_dump()))
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except UnusableRules as error:
            detail = [
                {"loc": ["body", *where.split(".")], "msg": what, "type": "value_error"}
                for where, what in error.problems
            ]
            raise HTTPException(422, detail) from None
        return {"store": store, "rules": rules_json(service.rules(store))}

    @router.get(
        "/stores/{store}/alerts/history",
        dependencies=read,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def history(
        store: str,
        from_ms: Annotated[int, Query(alias="from_ms", ge=0, description="epoch ms")] = 0,
        to_ms: Annotated[int | None, Query(alias="to_ms", ge=0, description="epoch ms")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    ) -> Any:
        end = to_ms if to_ms is not None else 2**62
        if end <= from_ms:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["query", "to_ms"],
                        "msg": "must be after from_ms",
                        "type": "value_error",
                    }
                ],
            )
        try:
            found = service.history(store, from_ms, end)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        episodes = [e.as_json() for e in found]
        if format == "csv":
            return csv_download(history_csv(episodes), f"{store}-alert-history")
        return {
            "store": store,
            "episodes": episodes,
            "summary": history_summary(found),
        }

    return router
