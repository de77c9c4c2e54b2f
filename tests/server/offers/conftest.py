"""Builders for campaigns, events and shoppers over the shipped Rivoli catalog."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers import (
    Campaign,
    CampaignTotals,
    Catalog,
    DecisionBatch,
    EventKind,
    OfferHistory,
    Outcome,
    SentOffer,
    ShopperContext,
    TriggerEvent,
    decide,
    load_catalog,
)

ROOT = Path(__file__).resolve().parents[3]
STORE = "paris-rivoli"
TZ = "Europe/Paris"
PARIS = ZoneInfo(TZ)
CATALOG: Catalog = load_catalog(ROOT / "config" / "catalog" / "rivoli.yaml")
JACKET = "09506000134352"  # outerwear, 6 in stock
JEANS = "09506000134369"  # denim, 14 in stock
TAPERED = "09506000134376"  # denim, out of stock
BOOTS = "09506000134383"  # shoes, 4 in stock
BELT = "09506000134437"  # accessories and denim, 15 in stock
SCARF = "09506000134406"  # accessories


def paris_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    """Milliseconds for a wall-clock time in the store."""
    return int(datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp() * 1000)


NOW = paris_ms(2026, 6, 10, 14)  # Wednesday afternoon, inside every example window


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def make_campaign(
    campaign_id: str = "c1", trigger: Mapping[str, Any] | None = None, **fields: Any
) -> Campaign:
    data: dict[str, Any] = {
        "id": campaign_id,
        "name": f"Campaign {campaign_id}",
        "store": STORE,
        "trigger": dict(trigger or {"kind": "store_entered"}),
        "content": {"title": f"Offer {campaign_id}"},
    }
    return Campaign.model_validate(_merge(data, fields))


def make_event(kind: EventKind = "store_entered", **fields: Any) -> TriggerEvent:
    values: dict[str, Any] = {
        "store": STORE,
        "shopper_id": "shopper-1",
        "visit_id": "visit-1",
        "at_ms": NOW,
    }
    values.update(fields)
    return TriggerEvent(kind=kind, **values)


def make_shopper(shopper_id: str = "shopper-1", **fields: Any) -> ShopperContext:
    values: dict[str, Any] = {"consent_offers": True, "consent_location": True}
    values.update(fields)
    return ShopperContext(shopper_id=shopper_id, **values)


def run(
    campaigns: Iterable[Campaign],
    event: TriggerEvent | None = None,
    shopper: ShopperContext | None = None,
    sent: Sequence[SentOffer] = (),
    totals: Mapping[str, int] | None = None,
    now_ms: int | None = None,
    catalog: Catalog = CATALOG,
) -> DecisionBatch:
    event = event or make_event()
    return decide(
        event,
        shopper or make_shopper(event.shopper_id),
        list(campaigns),
        OfferHistory(sent=sent),
        CampaignTotals(sent_by_campaign=dict(totals or {})),
        catalog,
        TZ,
        event.at_ms if now_ms is None else now_ms,
    )


def outcomes(batch: DecisionBatch) -> dict[str, Outcome]:
    return {d.campaign_id: d.outcome for d in batch.decisions}
