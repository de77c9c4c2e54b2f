"""Reading campaign files, and checking a campaign against its store plan and
the catalog (also used for campaigns that arrive through the API)."""

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from omnizone.server.domain.offers.campaign import Campaign, HasPurchasedGtin, LikelyToBuy
from omnizone.server.domain.offers.catalog import Catalog
from omnizone.server.domain.offers.errors import (
    OffersConfigError,
    item_label,
    parse_yaml,
    read_yaml,
    top_level_list,
    validation_problems,
)
from omnizone.store import StorePlan
from omnizone.store.suggest import did_you_mean

__all__ = ["campaigns_from_data", "check_campaign", "load_campaigns", "parse_campaigns"]


def load_campaigns(
    path: str | Path, plan: StorePlan | None = None, catalog: Catalog | None = None
) -> list[Campaign]:
    """Read a campaign file; with a plan (catalog), unknown zones and tap points
    (products) are errors. Raises OffersConfigError listing every problem."""
    source, data = read_yaml(path)
    return campaigns_from_data(data, source, plan, catalog)


def parse_campaigns(
    text: str,
    source: str = "<campaigns>",
    plan: StorePlan | None = None,
    catalog: Catalog | None = None,
) -> list[Campaign]:
    return campaigns_from_data(parse_yaml(text, source), source, plan, catalog)


def campaigns_from_data(
    data: Any, source: str, plan: StorePlan | None = None, catalog: Catalog | None = None
) -> list[Campaign]:
    items = top_level_list(data, "campaigns", source)
    problems: list[str] = []
    campaigns: list[Campaign] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        label = item_label("campaigns", index, item, "id")
        try:
            campaign = Campaign.model_validate(item)
        except ValidationError as error:
            problems += [f"{label}: {p}" for p in validation_problems(error, item)]
            continue
        if campaign.id in first_index:
            problems.append(f"{label}: id: duplicate of campaigns[{first_index[campaign.id]}]")
        first_index.setdefault(campaign.id, index)
        problems += [f"{label}: {p}" for p in check_campaign(campaign, plan, catalog)]
        campaigns.append(campaign)
    if problems:
        raise OffersConfigError(source, problems)
    return campaigns


def check_campaign(
    campaign: Campaign, plan: StorePlan | None = None, catalog: Catalog | None = None
) -> list[str]:
    """Cross-references a schema cannot check, as ``field.path: problem`` lines."""
    problems: list[str] = []
    if plan is not None:
        problems += _check_plan(campaign, plan)
    if catalog is not None:
        problems += _check_catalog(campaign, catalog)
    return problems


def _check_plan(campaign: Campaign, plan: StorePlan) -> list[str]:
    if campaign.store != plan.id:
        return [f"store: {campaign.store!r} is not the store of this plan ({plan.id})"]
    problems = []
    zones = {z.id for z in plan.zones}
    taps = {t.id for t in plan.nfc_tap_points}
    trigger = campaign.trigger
    for j, zone in enumerate(getattr(trigger, "zones", [])):
        if zone not in zones:
            problems.append(
                f"trigger.zones[{j}]: zone {zone!r} is not in store {plan.id}"
                + did_you_mean(zone, zones)
            )
    for j, tap in enumerate(getattr(trigger, "tap_points", [])):
        if tap not in taps:
            problems.append(
                f"trigger.tap_points[{j}]: tap point {tap!r} is not in store {plan.id}"
                + did_you_mean(tap, taps)
            )
    for i, rule in enumerate(campaign.conditions.segments):
        for j, zone in enumerate(getattr(rule, "categories", [])):
            if zone not in zones:
                problems.append(
                    f"conditions.segments[{i}].categories[{j}]: category {zone!r} is not a "
                    f"zone of store {plan.id}" + did_you_mean(zone, zones)
                )
    return problems


def _check_catalog(campaign: Campaign, catalog: Catalog) -> list[str]:
    named: list[tuple[str, str]] = []
    for key in ("products", "gtins"):
        named += [
            (f"trigger.{key}[{j}]", g) for j, g in enumerate(getattr(campaign.trigger, key, []))
        ]
    if campaign.content.product_gtin is not None:
        named.append(("content.product_gtin", campaign.content.product_gtin))
    for i, rule in enumerate(campaign.conditions.segments):
        if isinstance(rule, HasPurchasedGtin | LikelyToBuy):
            named += [(f"conditions.segments[{i}].gtins[{j}]", g) for j, g in enumerate(rule.gtins)]
    return [
        f"{where}: product {gtin!r} is not in the catalog"
        for where, gtin in named
        if catalog.product(gtin) is None
    ]
