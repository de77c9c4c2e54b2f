"""Retail insight routes (issue 18): headline figures, period comparison,
new and repeat visitors, staff devices; each as JSON or one CSV table
(``format=csv``), behind the ``read`` scope; registering or removing a staff
device needs ``admin`` (docs/analytics.md, "Retail insight")."""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from omnizone.server.entrypoints.answers import csv_download, store_range_errors
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.analytics import UnknownStore
from omnizone.server.service.insight import InsightService, insight_csv

Ms = Annotated[int | None, Query(ge=0, description="epoch ms")]
Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]


class StaffIn(BaseModel):
    label: str = Field("", max_length=63, description="who carries it, for the review list")


def insight_router(
    service: InsightService,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["insight"])
    read = [Depends(require_scope("read"))]
    admin = [Depends(require_scope("admin"))]

    def answer(store: str, view: str, fmt: str, make: Callable[[], dict[str, Any]]) -> Response:
        with store_range_errors():
            body = make()
        if fmt == "csv":
            return csv_download(insight_csv(view, body), f"{store}-{view}")
        return JSONResponse(body)

    @router.get("/stores/{store}/insight/headline", dependencies=read)
    def headline(store: str, at_ms: Ms = None, format: Format = "json") -> Response:
        """Shoppers now against the usual count; today against the same day last week."""
        return answer(store, "headline", format, lambda: service.headline(store, at_ms))

    @router.get("/stores/{store}/insight/compare", dependencies=read)
    def compare(
        store: str,
        view: Annotated[str, Query(description="an analytics view, or loyalty")] = "visits",
        preset: Annotated[Literal["week", "day"] | None, Query()] = None,
        a_from_ms: Ms = None,
        a_to_ms: Ms = None,
        b_from_ms: Ms = None,
        b_to_ms: Ms = None,
        format: Format = "json",
    ) -> Response:
        """Two ranges side by side: range a is the reference, b the one compared."""
        return answer(
            store,
            "compare",
            format,
            lambda: service.compare(
                store, view, preset, (a_from_ms, a_to_ms), (b_from_ms, b_to_ms)
            ),
        )

    @router.get("/stores/{store}/insight/loyalty", dependencies=read)
    def loyalty(
        store: str, from_ms: Ms = None, to_ms: Ms = None, format: Format = "json"
    ) -> Response:
        """New and repeat visitors, visit frequency and recency, per consented shopper."""
        return answer(store, "loyalty", format, lambda: service.loyalty(store, from_ms, to_ms))

    @router.get("/stores/{store}/insight/staff", dependencies=read)
    def staff(store: str, at_ms: Ms = None, format: Format = "json") -> Response:
        """Staff devices left out of every shopper figure, for review."""
        return answer(store, "staff", format, lambda: service.staff_view(store, at_ms))

    @router.put(
        "/stores/{store}/staff/{device}", dependencies=admin, status_code=status.HTTP_204_NO_CONTENT
    )
    def register(store: str, device: str, body: StaffIn) -> Response:
        """Mark a registered device (its shopper id) as a colleague's."""
        try:
            service.register_staff(store, device, body.label)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.delete(
        "/stores/{store}/staff/{device}", dependencies=admin, status_code=status.HTTP_204_NO_CONTENT
    )
    def remove(store: str, device: str) -> Response:
        try:
            removed = service.remove_staff(store, device)
        except UnknownStore as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        if not removed:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"{device} is not a staff device of {store}"
            )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
