"""Campaign routes: define, pause and resume campaigns, read the report and
the decision log ("why did this shopper (not) get an offer?"), the product
catalog for the app, and the app's shelf-tag taps."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field, ValidationError

from omnizone.server.domain.offers import Campaign, is_gtin
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.campaign_report import CampaignFigures
from omnizone.server.service.offer_engine import CampaignRejected, OfferEngine, UnknownCampaign

Authenticate = Callable[[str], str | None]


class DecisionOut(BaseModel):
    campaign_id: str
    shopper_id: str
    outcome: str
    reason: str
    trigger: str
    at_ms: int


class TapIn(BaseModel):
    """The app opened a shelf tag's product page (``/app/p/<gtin>?tap=<tap point>``)."""

    store: str
    gtin: str = Field(pattern=r"^\d{14}$")
    tap_point: str | None = None


class TapOut(BaseModel):
    offer_sent: bool
    decisions: list[DecisionOut]


def campaign_router(
    engine: OfferEngine,
    report: Callable[[str], list[CampaignFigures]],
    authenticate: Authenticate,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = "/api/v1",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["campaigns"])
    read = [Depends(require_scope("read"))]
    admin = [Depends(require_scope("admin"))]

    def known_store(store: str) -> None:
        if store not in engine.stores:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no store {store!r}")

    def parse(store: str, body: dict[str, Any]) -> Campaign:
        try:
            campaign = Campaign.model_validate({"store": store, **body})
        except ValidationError as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                [
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in error.errors(include_url=False)
                ],
            ) from None
        if campaign.store != store:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                [f"store: the campaign is for {campaign.store!r}, not {store!r}"],
            )
        return campaign

    def save(campaign: Campaign) -> dict[str, Any]:
        try:
            return engine.save_campaign(campaign).model_dump(mode="json")
        except CampaignRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, error.problems) from None

    @router.get("/stores/{store}/campaigns", dependencies=read)
    def list_campaigns(store: str) -> list[dict[str, Any]]:
        known_store(store)
        return [c.model_dump(mode="json") for c in engine.campaigns(store)]

    @router.post("/stores/{store}/campaigns", dependencies=admin, status_code=201)
    def create_campaign(store: str, body: dict[str, Any]) -> dict[str, Any]:
        known_store(store)
        campaign = parse(store, body)
        if any(c.id == campaign.id for c in engine.campaigns(store)):
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"campaign {campaign.id!r} exists: PUT it"
            )
        return save(campaign)

    @router.put("/stores/{store}/campaigns/{campaign_id}", dependencies=admin)
    def replace_campaign(store: str, campaign_id: str, body: dict[str, Any]) -> dict[str, Any]:
        known_store(store)
        campaign = parse(store, {**body, "id": campaign_id})
        return save(campaign)

    def set_status(store: str, campaign_id: str, new_status: str) -> dict[str, Any]:
        known_store(store)
        try:
            campaign = engine.campaign(campaign_id)
        except UnknownCampaign as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        if campaign.store != store:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r} here")
        return engine.set_status(campaign_id, new_status).model_dump(mode="json")

    @router.post("/stores/{store}/campaigns/{campaign_id}/pause", dependencies=admin)
    def pause(store: str, campaign_id: str) -> dict[str, Any]:
        return set_status(store, campaign_id, "paused")

    @router.post("/stores/{store}/campaigns/{campaign_id}/resume", dependencies=admin)
    def resume(store: str, campaign_id: str) -> dict[str, Any]:
        return set_status(store, campaign_id, "active")

    @router.get("/stores/{store}/campaigns/report", dependencies=read)
    def campaign_report(store: str) -> list[dict[str, Any]]:
        known_store(store)
        return [figures.as_dict() for figures in report(store)]

    @router.get("/stores/{store}/decisions", dependencies=read, response_model=list[DecisionOut])
    def decisions(
        store: str,
        campaign: str | None = None,
        shopper: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[DecisionOut]:
        known_store(store)
        found = engine.decisions(store=store, campaign_id=campaign, shopper_id=shopper, limit=limit)
        return [DecisionOut(**_fields(d)) for d in found]

    @router.get("/products/{gtin}")
    def product(gtin: str) -> dict[str, Any]:
        if not is_gtin(gtin):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{gtin!r} is not a GTIN-14")
        found = engine.catalog.product(gtin)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {gtin}")
        return found.model_dump(mode="json")

    @router.post("/me/taps", response_model=TapOut)
    def tap(
        body: TapIn, shopper: Annotated[str, Depends(shopper_dependency(authenticate))]
    ) -> TapOut:
        if body.store not in engine.stores:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, f"store: no store {body.store!r}"
            )
        batch = engine.on_tap(body.store, shopper, body.tap_point, body.gtin, engine.now_ms())
        return TapOut(
            offer_sent=batch.offer is not None,
            decisions=[
                DecisionOut(
                    campaign_id=d.campaign_id,
                    shopper_id=d.shopper_id,
                    outcome=str(d.outcome),
                    reason=d.reason,
                    trigger="nfc_tap",
                    at_ms=d.at_ms,
                )
                for d in batch.decisions
            ],
        )

    return router


def _fields(decision: Any) -> dict[str, Any]:
    return {name: getattr(decision, name) for name in DecisionOut.model_fields}
