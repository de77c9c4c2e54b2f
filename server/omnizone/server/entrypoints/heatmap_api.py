"""The floor heatmap route (issue 18, point 6), behind the ``read`` scope:

``GET /api/v1/stores/{store}/heatmap?from_ms=&to_ms=&cell_m=0.5|1|2&format=json|csv``
and, to compare two ranges, ``&compare_from_ms=&compare_to_ms=`` (docs/analytics.md,
"Floor heatmap")."""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from omnizone.server.entrypoints.answers import csv_download, store_range_errors
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.heatmap import HeatmapService, heatmap_csv

Ms = Annotated[int | None, Query(ge=0, description="epoch ms, store event time")]


def heatmap_router(
    service: HeatmapService,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["analytics"])
    read = [Depends(require_scope("read"))]

    @router.get(
        "/stores/{store}/heatmap",
        dependencies=read,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def heatmap(
        store: str,
        from_ms: Ms = None,
        to_ms: Ms = None,
        cell_m: Annotated[float, Query(description="cell side: 0.5, 1 or 2 metres")] = 1.0,
        compare_from_ms: Ms = None,
        compare_to_ms: Ms = None,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    ) -> Response:
        """Shopper-seconds per floor cell over the range, from the localizer's positions."""
        compare = (
            (compare_from_ms, compare_to_ms)
            if compare_from_ms is not None or compare_to_ms is not None
            else None
        )
        with store_range_errors():
            body = service.heatmap(store, from_ms, to_ms, cell_m=cell_m, compare=compare)
        if format == "csv":
            return csv_download(heatmap_csv(body), f"{store}-heatmap")
        return JSONResponse(body)

    return router
