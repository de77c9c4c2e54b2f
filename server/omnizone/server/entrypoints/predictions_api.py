"""Prediction routes (issue 18, point 9), JSON or one CSV table:

- ``GET /api/v1/stores/{store}/predictions/footfall?at_ms=&days=`` expected
  stays begun per zone and hour for the next days (``read`` scope);
- ``GET /api/v1/stores/{store}/predictions/products?at_ms=&top=&limit=`` the
  consented shoppers' likely next products (``read`` scope);
- ``GET /api/v1/stores/{store}/predictions/products/{shopper_id}`` one of them;
- ``GET /api/v1/me/predictions/products`` the shopper's own, with their token,
  only while they consent to personalized_offers (403 otherwise).

docs/analytics.md ("Predictions") documents the fields and the models.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response

from omnizone.server.entrypoints.answers import csv_download
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.predictions import NoPrediction, PredictionService, predictions_csv
from omnizone.server.service.queries import NotFound

AtMs = Annotated[int | None, Query(ge=0, description="predict as of (epoch ms); default: now")]
Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]
Top = Annotated[int, Query(ge=1, le=20, description="products per shopper")]


def _answer(kind: str, body: dict[str, Any], format: str, name: str) -> Response:
    if format == "csv":
        return csv_download(predictions_csv(kind, body), name)
    return JSONResponse(body)


def predictions_router(
    service: PredictionService,
    require_scope: Callable[[str], Any],
    authenticate: Callable[[str], str | None],
    store_of: Callable[[str], str],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    """``store_of``: the store a shopper registered in."""
    router = APIRouter(prefix=prefix, tags=["predictions"])
    read = [Depends(require_scope("read"))]
    current_shopper = shopper_dependency(authenticate)

    def not_found(error: Exception) -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, str(error))

    @router.get("/stores/{store}/predictions/footfall", dependencies=read)
    def footfall(
        store: str,
        at_ms: AtMs = None,
        days: Annotated[int, Query(ge=1, le=14, description="days ahead")] = 7,
        format: Format = "json",
    ) -> Response:
        try:
            body = service.footfall(store, at_ms, days)
        except NotFound as error:
            raise not_found(error) from None
        return _answer("footfall", body, format, f"{store}-footfall-forecast")

    @router.get("/stores/{store}/predictions/products", dependencies=read)
    def products(
        store: str,
        at_ms: AtMs = None,
        top: Top = 3,
        limit: Annotated[int, Query(ge=1, le=1000, description="shoppers")] = 100,
        format: Format = "json",
    ) -> Response:
        try:
            body = service.products(store, at_ms, top, limit)
        except NotFound as error:
            raise not_found(error) from None
        return _answer("products", body, format, f"{store}-next-products")

    @router.get("/stores/{store}/predictions/products/{shopper_id}", dependencies=read)
    def shopper_products(
        store: str, shopper_id: str, at_ms: AtMs = None, top: Top = 3, format: Format = "json"
    ) -> Response:
        try:
            body = service.shopper_products(store, shopper_id, at_ms, top)
        except (NotFound, NoPrediction) as error:
            raise not_found(error) from None
        return _answer("products", body, format, f"{store}-next-products-{shopper_id}")

    @router.get("/me/predictions/products")
    def my_products(
        me: Annotated[str, Depends(current_shopper)], top: Top = 3, format: Format = "json"
    ) -> Response:
        try:
            body = service.shopper_products(store_of(me), me, None, top)
        except NoPrediction:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "predictions need your consent to personalized_offers (PUT /api/v1/me/consent)",
            ) from None
        except NotFound as error:
            raise not_found(error) from None
        return _answer("products", body, format, "my-next-products")

    return router
