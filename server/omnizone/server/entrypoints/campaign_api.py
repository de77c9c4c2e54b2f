"""Campaign routes: define, pause and resume campaigns, read the report and
the decision log ("why did this shopper (not) get an offer?"), the product
catalog for the app, and the app's shelf-tag taps.

Every campaign has a revision the server gives it (1, 2, … one per save,
pause or resume included): it is the ``revision`` field of the campaign's
JSON and, quoted, the ``ETag`` of single-campaign answers. ``PUT`` (and
pause/resume) honour ``If-Match``: a campaign changed since the client
loaded it answers 412 and is left as it is (docs/offers.md, "Campaign API")."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status
from pydantic import BaseModel, Field, ValidationError

from omnizone.server.domain.offers import Campaign, is_gtin
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.campaign_report import CampaignReport
from omnizone.server.service.campaigns import (
    CampaignAdmin,
    CampaignChanged,
    CampaignRejected,
    Precondition,
    UnknownCampaign,
)
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.ports.campaigns import StoredCampaign

Authenticate = Callable[[str], str | None]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='the ETag the campaign was loaded with, e.g. "3": 412 if it changed since',
    ),
]

#: Fields of a campaign's JSON that the server sets; a body may carry them
#: back (a client sends what it loaded) and they are ignored.
READ_ONLY_FIELDS = ("revision",)


def etag(stored: StoredCampaign) -> str:
    return f'"{stored.revision}"'


def as_json(stored: StoredCampaign) -> dict[str, Any]:
    return {**stored.campaign.model_dump(mode="json"), "revision": stored.revision}


def if_match(header: str | None) -> Precondition | None:
    """``If-Match`` as a condition on what is stored (RFC 9110, 13.1.1): ``*``
    holds for any stored campaign; a list of entity tags holds when one of
    them is the campaign's. Comparison is strong, so a weak tag (``W/"3"``)
    never matches; a bare number (``3``) is taken as ``"3"``. Anything else
    matches nothing."""
    if header is None:
        return None
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if tags == ["*"]:
        return lambda current: current is not None
    revisions = set()
    for tag in tags:
        bare = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else tag
        if bare.isascii() and bare.isdigit():
            revisions.add(int(bare))
    return lambda current: current is not None and current.revision in revisions


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
    campaigns: CampaignAdmin,
    engine: OfferEngine,
    report: CampaignReport,
    authenticate: Authenticate,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    """Campaigns are administered by ``campaigns``; taps and the decision log
    are the ``engine``'s."""
    router = APIRouter(prefix=prefix, tags=["campaigns"])
    read = [Depends(require_scope("read"))]
    admin = [Depends(require_scope("admin"))]

    def known_store(store: str) -> None:
        if store not in campaigns.stores:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no store {store!r}")

    def parse(store: str, body: dict[str, Any]) -> Campaign:
        body = {k: v for k, v in body.items() if k not in READ_ONLY_FIELDS}
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

    def when(store: str, at_ms: int) -> str:
        plan = campaigns.stores.get(store)
        zone = plan.store.timezone if plan else "UTC"
        moment = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ZoneInfo(zone))
        return f"{moment:%Y-%m-%d %H:%M:%S} ({zone})"

    def changed(store: str, campaign_id: str, sent: str, error: CampaignChanged) -> HTTPException:
        current = error.current
        if current is None:
            return HTTPException(
                status.HTTP_412_PRECONDITION_FAILED,
                f"campaign {campaign_id!r} does not exist, so If-Match {sent} cannot hold",
            )
        return HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"campaign {campaign_id!r} changed since it was loaded (If-Match {sent}): it is "
            f"at revision {current.revision} now, saved {when(store, current.updated_ms)}; "
            "nothing was changed. Load it again (GET it), reapply your edits and send "
            f'If-Match: "{current.revision}"',
            headers={"ETag": etag(current)},
        )

    def answer(response: Response, stored: StoredCampaign) -> dict[str, Any]:
        response.headers["ETag"] = etag(stored)
        return as_json(stored)

    def found(store: str, campaign_id: str) -> StoredCampaign:
        known_store(store)
        try:
            stored = campaigns.stored_campaign(campaign_id)
        except UnknownCampaign as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        if stored.campaign.store != store:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r} here")
        return stored

    @router.get("/stores/{store}/campaigns", dependencies=read)
    def list_campaigns(store: str) -> list[dict[str, Any]]:
        known_store(store)
        return [as_json(stored) for stored in campaigns.stored_campaigns(store)]

    @router.post("/stores/{store}/campaigns", dependencies=admin, status_code=201)
    def create_campaign(store: str, body: dict[str, Any], response: Response) -> dict[str, Any]:
        known_store(store)
        campaign = parse(store, body)
        exists = HTTPException(status.HTTP_409_CONFLICT, f"campaign {campaign.id!r} exists: PUT it")
        if any(c.id == campaign.id for c in campaigns.campaigns(store)):
            raise exists
        try:
            stored = campaigns.put_campaign(campaign, precondition=lambda current: current is None)
        except CampaignRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, error.problems) from None
        except CampaignChanged:  # created meanwhile by another request
            raise exists from None
        return answer(response, stored)

    @router.put(
        "/stores/{store}/campaigns/{campaign_id}",
        dependencies=admin,
        responses={412: {"description": "the campaign changed since the If-Match revision"}},
    )
    def replace_campaign(
        store: str,
        campaign_id: str,
        body: dict[str, Any],
        response: Response,
        if_match_header: IfMatch = None,
    ) -> dict[str, Any]:
        """Replace the campaign (or create it). Send ``If-Match`` with the ETag
        it was loaded with: without it, the last save wins."""
        known_store(store)
        campaign = parse(store, {**body, "id": campaign_id})
        try:
            stored = campaigns.put_campaign(campaign, precondition=if_match(if_match_header))
        except CampaignRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, error.problems) from None
        except CampaignChanged as error:
            raise changed(store, campaign_id, str(if_match_header), error) from None
        return answer(response, stored)

    def set_status(
        store: str, campaign_id: str, new_status: str, sent: str | None, response: Response
    ) -> dict[str, Any]:
        found(store, campaign_id)
        try:
            stored = campaigns.set_status(campaign_id, new_status, precondition=if_match(sent))
        except UnknownCampaign as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except CampaignRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, error.problems) from None
        except CampaignChanged as error:
            raise changed(store, campaign_id, str(sent), error) from None
        return answer(response, stored)

    @router.post("/stores/{store}/campaigns/{campaign_id}/pause", dependencies=admin)
    def pause(
        store: str,
        campaign_id: str,
        response: Response,
        if_match_header: IfMatch = None,
    ) -> dict[str, Any]:
        return set_status(store, campaign_id, "paused", if_match_header, response)

    @router.post("/stores/{store}/campaigns/{campaign_id}/resume", dependencies=admin)
    def resume(
        store: str,
        campaign_id: str,
        response: Response,
        if_match_header: IfMatch = None,
    ) -> dict[str, Any]:
        return set_status(store, campaign_id, "active", if_match_header, response)

    @router.get("/stores/{store}/campaigns/report", dependencies=read)
    def campaign_report(
        store: str,
        from_ms: Annotated[
            int | None, Query(ge=0, description="inclusive; default: no bound")
        ] = None,
        to_ms: Annotated[
            int | None, Query(ge=0, description="exclusive; default: no bound")
        ] = None,
    ) -> list[dict[str, Any]]:
        """Every figure counted within the range: decisions, offers sent,
        receipts, redemptions, purchases and so the lift. No range: each
        campaign's whole life."""
        known_store(store)
        if from_ms is not None and to_ms is not None and from_ms >= to_ms:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"to_ms ({to_ms}) must be after from_ms ({from_ms})",
            )
        return [f.as_dict() for f in report(store, from_ms=from_ms, to_ms=to_ms)]

    # After ".../campaigns/report", which this route would otherwise answer.
    @router.get("/stores/{store}/campaigns/{campaign_id}", dependencies=read)
    def get_campaign(store: str, campaign_id: str, response: Response) -> dict[str, Any]:
        """One campaign, with its revision as the ``ETag`` to send back in ``If-Match``."""
        return answer(response, found(store, campaign_id))

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
        found = campaigns.catalog.product(gtin)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {gtin}")
        return found.model_dump(mode="json")

    @router.post("/me/taps", response_model=TapOut)
    def tap(
        body: TapIn, shopper: Annotated[str, Depends(shopper_dependency(authenticate))]
    ) -> TapOut:
        if body.store not in campaigns.stores:
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
