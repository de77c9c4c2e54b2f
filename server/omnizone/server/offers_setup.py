"""Assembles the offers part of one server: catalog and campaigns from their
files, the engine, delivery with its push channels, and their routes.

Kept out of ``runtime.py`` so the runtime reads as "ingest, shoppers,
offers, API"; everything here is construction, no behaviour.
"""

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import Response
from sqlalchemy import Engine

from omnizone.paths import shipped_config
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.webpush import VapidKeys, WebPushChannel
from omnizone.server.domain.identity import may_send_offer
from omnizone.server.domain.offers import Catalog, load_campaigns, load_catalog
from omnizone.server.entrypoints.api import RouterFactory
from omnizone.server.entrypoints.campaign_api import campaign_router
from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.entrypoints.offers_api import offers_router
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.campaign_report import CampaignFigures, campaign_report
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import OfferDelivery
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.shoppers import ShopperService
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan

log = logging.getLogger(__name__)


@dataclass
class OffersPart:
    engine: OfferEngine
    delivery: OfferDelivery
    offers: OfferRepository
    vapid: VapidKeys
    routers: list[RouterFactory]

    def close(self) -> None:
        self.engine.close()
        self.delivery.close()


def build_offers(
    settings: ServerSettings,
    stores: Mapping[str, StorePlan],
    engine: Engine,
    shoppers: ShopperService,
) -> OffersPart:
    catalog = _catalog(settings, stores)
    offers = OfferRepository(engine)
    vapid = VapidKeys(_vapid_path(settings))
    delivery = OfferDelivery(
        offers,
        channels=[WebPushChannel(offers, vapid, settings.vapid_subject)],
        ack_timeout_s=settings.offer_ack_timeout_s,
        may_deliver=lambda shopper: may_send_offer(shoppers.consent(shopper)),
    )
    campaigns = CampaignRepository(engine)

    admin = CampaignAdmin(stores, campaigns, catalog)
    for path in _campaign_files(settings):
        found = [c for c in load_campaigns(path, catalog=catalog) if c.store in stores]
        added = admin.seed(found)
        log.info("%s: %d campaigns, %d new", path, len(found), added)
    offer_engine = OfferEngine(
        stores, admin, campaigns, catalog, shoppers, delivery.publish_many, background=True
    )
    shoppers.subscribe_to_erasure(lambda shopper: _forget(delivery.erase_shopper(shopper)))
    shoppers.subscribe_to_erasure(campaigns.erase_shopper)
    shoppers.subscribe_to_erasure(offer_engine.forget_shopper)
    shoppers.add_export_section("offers", delivery.export_shopper)
    shoppers.add_export_section("offer_decisions", campaigns.export_shopper)

    def report(store: str) -> list[CampaignFigures]:
        return campaign_report(admin.campaigns(store), campaigns, offers.campaign_counts, shoppers)

    routers: list[RouterFactory] = [
        lambda require: offers_router(
            delivery, shoppers.authenticate, require, vapid.public_key_b64url
        ),
        lambda require: campaign_router(
            admin, offer_engine, report, shoppers.authenticate, require
        ),
        lambda _require: _qr_router(delivery, shoppers),
    ]
    return OffersPart(offer_engine, delivery, offers, vapid, routers)


def _forget(_removed: int) -> None:
    """Erasure listeners return nothing; delivery reports how much it removed."""


def _catalog(settings: ServerSettings, stores: Mapping[str, StorePlan]) -> Catalog:
    path = settings.catalog_file or shipped_config("catalog/rivoli.yaml")
    if settings.catalog_file is None and not path.exists():
        return Catalog(products=[])
    return load_catalog(path, stores.values())


def _campaign_files(settings: ServerSettings) -> list[Path]:
    if settings.campaign_files is not None:
        return list(settings.campaign_files)
    shipped = shipped_config("campaigns/rivoli.yaml")
    return [shipped] if shipped.exists() else []


def _vapid_path(settings: ServerSettings) -> Path:
    if settings.vapid_key_file is not None:
        return settings.vapid_key_file
    url = settings.database_url
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).with_suffix(".vapid.pem")
    return Path("omnizone-vapid.pem")


def _qr_router(delivery: OfferDelivery, shoppers: ShopperService) -> APIRouter:
    """The till code of one of the shopper's offers as a QR code (SVG)."""
    router = APIRouter(prefix=API_PREFIX, tags=["offers"])

    @router.get("/me/offers/{offer_id}/qr.svg", response_class=Response)
    def offer_qr(
        offer_id: str,
        shopper_id: Annotated[str, Depends(shopper_dependency(shoppers.authenticate))],
    ) -> Response:
        offer = next(
            (o for o in delivery.offers_after(shopper_id, 0, 10_000) if o.offer_id == offer_id),
            None,
        )
        if offer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no offer {offer_id!r} of yours")
        svg = io.BytesIO()  # a standalone SVG document (with its namespace), not inline markup
        segno.make(offer.coupon_code, error="m").save(svg, kind="svg", scale=6, border=2)
        return Response(
            svg.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )

    return router
