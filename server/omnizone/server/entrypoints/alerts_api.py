"""Store alerts over HTTP: the active alerts and recent changes (JSON or CSV,
scope ``read``), and the thresholds (scope ``admin``). Issue 18, point 7."""

import csv
import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from omnizone.server.domain.analytics.alerts import AlertRules
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.alerts import AlertsService
from omnizone.server.service.analytics import UnknownStore

CSV_COLUMNS = ("key", "kind", "subject", "severity", "value", "threshold", "message")


class AlertRulesIn(BaseModel):
    zone_capacity: dict[str, int] = Field(default_factory=dict, description="zone -> capacity")
    checkout_queue: int | None = Field(None, ge=0)
    dwell_s: dict[str, float] = Field(default_factory=dict, description="zone -> seconds")
    gateway_silent_s: float | None = Field(120.0, gt=0)
    hysteresis: int = Field(1, ge=0)


def alerts_csv(active: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for alert in active:
        writer.writerow([alert[c] for c in CSV_COLUMNS])
    return out.getvalue()


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
            return Response(
                alerts_csv(active),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{store}-alerts.csv"'},
            )
        return JSONResponse(
            {
                "store": store,
                "active": active,
                "recent": monitor.recent(recent),
                "webhook_failures": monitor.sink_failures,
            }
        )

    @router.put("/stores/{store}/alerts/rules", dependencies=admin)
    def put_rules(store: str, rules: AlertRulesIn) -> dict[str, Any]:
        try:
            service.set_rules(store, AlertRules(**rules.model_dump()))
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        return {"store": store, "rules": rules.model_dump()}

    return router
