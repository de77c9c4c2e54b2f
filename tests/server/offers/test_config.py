"""Campaign and catalog files: the shipped examples load, and every mistake is
reported with the file, the item and the field."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from omnizone.server.domain.offers import (
    Campaign,
    Catalog,
    OffersConfigError,
    check_campaign,
    check_catalog,
    is_gtin,
    load_campaigns,
    load_catalog,
    parse_campaigns,
    parse_catalog,
)
from omnizone.store import StorePlan
from tests.server.offers.conftest import JACKET, ROOT, STORE

CAMPAIGNS_FILE = ROOT / "config" / "campaigns" / "rivoli.yaml"
CATALOG_FILE = ROOT / "config" / "catalog" / "rivoli.yaml"
TRIGGER_KINDS = {
    "store_entered",
    "zone_entered",
    "dwell",
    "zone_left",
    "nfc_tap",
    "try_on",
    "returning_shopper",
    "wishlist_item_in_zone",
    "cart_item_in_zone",
    # follow-ups after the visit
    "left_store",
    "tried_on_not_bought",
    "tapped_not_bought",
    "wishlist_lingered",
}


@pytest.fixture(scope="module")
def catalog(plan: StorePlan) -> Catalog:
    return load_catalog(CATALOG_FILE, [plan])


def minimal(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "denim-10",
        "name": "Denim",
        "store": STORE,
        "trigger": {"kind": "zone_entered", "zones": ["denim"]},
        "content": {"title": "10% off"},
    }
    base.update(fields)
    return base


def problems_in(
    tmp_path: Path,
    campaigns: list[dict[str, Any]],
    plan: StorePlan | None = None,
    catalog: Catalog | None = None,
) -> list[str]:
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump({"campaigns": campaigns}), encoding="utf-8")
    with pytest.raises(OffersConfigError) as caught:
        load_campaigns(path, plan, catalog)
    assert all(line.startswith(f"{path}: ") for line in str(caught.value).splitlines())
    return caught.value.problems


# -- shipped files ------------------------------------------------------------------------


def test_shipped_catalog_loads_against_the_store(catalog: Catalog, plan: StorePlan) -> None:
    assert 8 <= len(catalog.products) <= 12
    jacket = catalog.product(JACKET)
    assert jacket is not None and jacket.stock_at(plan.id) > 0
    assert all(is_gtin(p.gtin) for p in catalog.products)
    assert any(p.stock_at(plan.id) == 0 for p in catalog.products)  # for out-of-stock demos
    tap_products = {t.product for t in plan.nfc_tap_points if t.product}
    assert tap_products <= set(catalog.by_gtin)
    assert check_catalog(catalog, [plan]) == []


def test_shipped_campaigns_load_against_store_and_catalog(
    catalog: Catalog, plan: StorePlan
) -> None:
    campaigns = load_campaigns(CAMPAIGNS_FILE, plan, catalog)
    assert {c.trigger.kind for c in campaigns} == TRIGGER_KINDS
    assert all(c.store == plan.id for c in campaigns)
    assert len({c.id for c in campaigns}) == len(campaigns)


def test_campaign_round_trips_through_json(catalog: Catalog, plan: StorePlan) -> None:
    """The API serves and accepts the same shape the files use."""
    for campaign in load_campaigns(CAMPAIGNS_FILE, plan, catalog):
        assert Campaign.model_validate(campaign.model_dump(mode="json")) == campaign


# -- campaign file errors ------------------------------------------------------------------


def test_unknown_zone_names_file_campaign_and_field(tmp_path: Path, plan: StorePlan) -> None:
    campaigns = [
        minimal(id="welcome", trigger={"kind": "store_entered"}),
        minimal(id="shoes", trigger={"kind": "zone_entered", "zones": ["shoes"]}),
        minimal(trigger={"kind": "zone_entered", "zones": ["dnim"]}),
    ]
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump({"campaigns": campaigns}), encoding="utf-8")
    with pytest.raises(OffersConfigError) as caught:
        load_campaigns(path, plan)
    assert str(caught.value) == (
        f"{path}: campaigns[2] (id 'denim-10'): trigger.zones[0]: "
        "zone 'dnim' is not in store paris-rivoli (did you mean 'denim'?)"
    )


def test_every_problem_is_reported(tmp_path: Path, plan: StorePlan, catalog: Catalog) -> None:
    problems = problems_in(
        tmp_path,
        [
            minimal(id="a", trigger={"kind": "nfc_tap", "tap_points": ["tap-nowhere"]}),
            minimal(id="b", trigger={"kind": "dwell", "zones": ["denim"]}),
            minimal(id="c", content={"title": "x", "product_gtin": "09506000999999"}),
            minimal(id="a"),
            minimal(id="e", limits={"per_vist": 2}),
            minimal(id="f", store="lyon"),
        ],
        plan,
        catalog,
    )
    assert problems == [
        "campaigns[0] (id 'a'): trigger.tap_points[0]: tap point 'tap-nowhere' is not in "
        "store paris-rivoli",
        "campaigns[1] (id 'b'): trigger.min_dwell_s: Field required",
        "campaigns[2] (id 'c'): content.product_gtin: product '09506000999999' is not in the "
        "catalog",
        "campaigns[3] (id 'a'): id: duplicate of campaigns[0]",
        "campaigns[4] (id 'e'): limits.per_vist: Extra inputs are not permitted",
        "campaigns[5] (id 'f'): store: 'lyon' is not the store of this plan (paris-rivoli)",
    ]


@pytest.mark.parametrize(
    ("campaign", "expected"),
    [
        (minimal(trigger={"kind": "teleport"}), "trigger: Input tag 'teleport'"),
        (minimal(trigger={"zones": ["denim"]}), "trigger: Unable to extract tag"),
        (
            minimal(conditions={"segments": [{"rule": "min_spend"}]}),
            "conditions.segments[0].amount: Field required",
        ),
        (
            minimal(conditions={"quiet_hours": [{"start": 1260, "end": "07:00"}]}),
            "conditions.quiet_hours[0].start: write times as quoted strings",
        ),
        (
            minimal(conditions={"quiet_hours": [{"start": "7:00", "end": "08:00"}]}),
            'conditions.quiet_hours[0].start: expected a time "HH:MM"',
        ),
        (
            minimal(conditions={"quiet_hours": [{"start": "07:00", "end": "07:00"}]}),
            "conditions.quiet_hours[0]: start and end are the same time",
        ),
        (
            minimal(conditions={"schedule": {"days": ["mon", "funday"]}}),
            "conditions.schedule.days[1]: Input should be 'mon'",
        ),
        (
            minimal(
                conditions={"schedule": {"start_date": "2026-07-01", "end_date": "2026-06-01"}}
            ),
            "conditions.schedule: end_date is before start_date",
        ),
        (
            minimal(content={"title": "x", "product_gtin": "09506000134353"}),
            "content.product_gtin: '09506000134353' has a wrong check digit (expected 2)",
        ),
        (
            minimal(content={"title": "x", "product_gtin": 9506000134352}),
            'content.product_gtin: write the GTIN as a quoted string, e.g. "09506000134352"',
        ),
        (
            minimal(content={"title": "x", "coupon_code": "SAVE-{shopper}"}),
            "content: coupon_code 'SAVE-{shopper}': use A-Z, 0-9 and '-'",
        ),
        (minimal(holdout_fraction=1.0), "holdout_fraction: Input should be less than 1"),
        (minimal(status="stopped"), "status: Input should be 'active' or 'paused'"),
        (minimal(priority="high"), "priority: Input should be a valid integer"),
        (
            minimal(conditions={"require_in_stock": True}),
            "conditions.require_in_stock needs content.product_gtin",
        ),
    ],
)
def test_schema_errors_name_the_field(
    tmp_path: Path, campaign: dict[str, Any], expected: str
) -> None:
    problems = problems_in(tmp_path, [campaign])
    assert len(problems) == 1, problems
    assert problems[0].startswith("campaigns[0] (id 'denim-10'): ")
    assert expected in problems[0]


def test_unknown_gtins_anywhere_are_errors_with_a_catalog(tmp_path: Path, catalog: Catalog) -> None:
    unknown = "09506000999999"
    campaign = minimal(
        trigger={"kind": "try_on", "gtins": [JACKET, unknown]},
        conditions={"segments": [{"rule": "has_purchased_gtin", "gtins": [unknown]}]},
    )
    problems = problems_in(tmp_path, [campaign], catalog=catalog)
    assert [p.split(": ")[1] for p in problems] == [
        "trigger.gtins[1]",
        "conditions.segments[0].gtins[0]",
    ]
    # Without a catalog the same campaign is accepted.
    assert parse_campaigns(yaml.safe_dump({"campaigns": [campaign]}))[0].id == "denim-10"


def test_file_level_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(OffersConfigError, match=r"nope\.yaml: cannot read the file"):
        load_campaigns(missing)
    with pytest.raises(OffersConfigError, match=r"x\.yaml: line 3, column 1: not valid YAML"):
        parse_campaigns("campaigns:\n  - id: [unclosed\n", source="x.yaml")
    with pytest.raises(OffersConfigError, match="expected a mapping with a 'campaigns' list"):
        parse_campaigns("- id: a\n", source="x.yaml")
    with pytest.raises(OffersConfigError, match="unknown top-level key"):
        parse_campaigns("campaigns: []\ncampaign: []\n", source="x.yaml")
    with pytest.raises(OffersConfigError, match="campaigns: expected a list"):
        parse_campaigns("campaigns: {id: a}\n", source="x.yaml")
    assert parse_campaigns("campaigns:\n", source="x.yaml") == []


def test_check_campaign_for_api_bodies(plan: StorePlan, catalog: Catalog) -> None:
    campaign = Campaign.model_validate(
        minimal(trigger={"kind": "wishlist_item_in_zone", "zones": ["denim", "attic"]})
    )
    assert check_campaign(campaign, plan, catalog) == [
        "trigger.zones[1]: zone 'attic' is not in store paris-rivoli"
    ]
    assert check_campaign(campaign) == []


# -- catalog file errors ---------------------------------------------------------------------


def test_catalog_errors_name_product_and_field(plan: StorePlan) -> None:
    text = yaml.safe_dump(
        {
            "products": [
                {"gtin": JACKET, "name": "Jacket", "price": 10, "currency": "EUR"},
                {"gtin": "09506000134369", "name": "Jeans", "price": -1, "currency": "euro"},
                {"gtin": JACKET, "name": "Again", "price": 1, "currency": "EUR"},
                {
                    "gtin": "09506000134383",
                    "name": "Boots",
                    "price": 1,
                    "currency": "EUR",
                    "stock": {"paris-rivoli": -2},
                    "zones": {"paris-rivoli": ["shoes", "garden"], "lyon": ["garden"]},
                },
                {"gtin": "123", "name": "Short", "price": 1, "currency": "EUR"},
            ]
        }
    )
    with pytest.raises(OffersConfigError) as caught:
        parse_catalog(text, source="catalog.yaml", plans=[plan])
    assert caught.value.problems == [
        "products[1] (gtin '09506000134369'): price: Input should be greater than or equal to 0",
        "products[1] (gtin '09506000134369'): currency: String should match pattern '^[A-Z]{3}$'",
        "products[2] (gtin '09506000134352'): gtin: duplicate of products[0]",
        "products[3] (gtin '09506000134383'): stock.paris-rivoli: Input should be greater than "
        "or equal to 0",
        "products[4] (gtin '123'): gtin: '123' is not a GTIN-14 (14 digits, quoted in YAML)",
    ]
    assert str(caught.value).startswith("catalog.yaml: products[1]")


def test_catalog_zones_are_checked_against_the_plan(plan: StorePlan) -> None:
    product = {
        "gtin": JACKET,
        "name": "Jacket",
        "price": 10,
        "currency": "EUR",
        "zones": {"paris-rivoli": ["shoes", "garden", "outerwaer"], "lyon-part-dieu": ["garden"]},
    }
    text = yaml.safe_dump({"products": [product]})
    with pytest.raises(OffersConfigError) as caught:
        parse_catalog(text, source="c.yaml", plans=[plan])
    assert caught.value.problems == [
        "products[0] (gtin '09506000134352'): zones.paris-rivoli[1]: zone 'garden' is not in "
        "store paris-rivoli",
        "products[0] (gtin '09506000134352'): zones.paris-rivoli[2]: zone 'outerwaer' is not in "
        "store paris-rivoli (did you mean 'outerwear'?)",
    ]
    catalog = parse_catalog(text)  # no plan: nothing to check against
    assert catalog.displayed_in("paris-rivoli", "shoes") == {JACKET}
    assert catalog.stock_at(JACKET, "paris-rivoli") == 0
