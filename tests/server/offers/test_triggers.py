"""Each trigger kind fires on its event and only on it."""

from typing import Any

import pytest

from omnizone.server.domain.offers import DecisionBatch, EventKind, Outcome
from tests.server.offers.conftest import (
    BELT,
    BOOTS,
    JACKET,
    JEANS,
    SCARF,
    TAPERED,
    make_campaign,
    make_event,
    make_shopper,
    outcomes,
    run,
)

KINDS: tuple[EventKind, ...] = (
    "store_entered",
    "zone_entered",
    "dwell",
    "zone_left",
    "nfc_tap",
    "try_on",
)


def fires(trigger: dict[str, Any], event_kind: EventKind, **event: Any) -> bool:
    batch = run([make_campaign("c", trigger)], make_event(event_kind, **event))
    return "c" in outcomes(batch)


def test_store_entered_fires_on_store_entry_only() -> None:
    trigger = {"kind": "store_entered"}
    assert fires(trigger, "store_entered")
    for kind in KINDS[1:]:
        assert not fires(trigger, kind, zone="denim", dwell_s=100.0)


def test_zone_entered_needs_a_listed_zone() -> None:
    trigger = {"kind": "zone_entered", "zones": ["denim", "shoes"]}
    assert fires(trigger, "zone_entered", zone="shoes")
    assert not fires(trigger, "zone_entered", zone="outerwear")
    assert not fires(trigger, "zone_left", zone="shoes")
    assert not fires(trigger, "dwell", zone="shoes", dwell_s=60.0)


def test_dwell_needs_the_zone_and_long_enough() -> None:
    trigger = {"kind": "dwell", "zones": ["outerwear"], "min_dwell_s": 45}
    assert fires(trigger, "dwell", zone="outerwear", dwell_s=45.0)
    assert not fires(trigger, "dwell", zone="outerwear", dwell_s=44.9)
    assert not fires(trigger, "dwell", zone="shoes", dwell_s=300.0)
    assert not fires(trigger, "dwell", zone="outerwear")  # no dwell reported
    assert not fires(trigger, "zone_entered", zone="outerwear", dwell_s=300.0)


def test_zone_left_needs_a_listed_zone() -> None:
    trigger = {"kind": "zone_left", "zones": ["fitting-room-1"]}
    assert fires(trigger, "zone_left", zone="fitting-room-1")
    assert not fires(trigger, "zone_left", zone="fitting-room-2")
    assert not fires(trigger, "zone_entered", zone="fitting-room-1")


def test_nfc_tap_filters_by_tap_point_and_product() -> None:
    both = {"kind": "nfc_tap", "tap_points": ["tap-outerwear-jackets"], "products": [JACKET]}
    assert fires(both, "nfc_tap", tap_point="tap-outerwear-jackets", product_gtin=JACKET)
    assert not fires(both, "nfc_tap", tap_point="tap-shoes-kiosk", product_gtin=JACKET)
    assert not fires(both, "nfc_tap", tap_point="tap-outerwear-jackets", product_gtin=BOOTS)
    by_product = {"kind": "nfc_tap", "products": [BOOTS]}
    assert fires(by_product, "nfc_tap", tap_point="tap-shoes-kiosk", product_gtin=BOOTS)
    assert not fires(by_product, "nfc_tap", tap_point="tap-shoes-kiosk")
    any_tap = {"kind": "nfc_tap"}
    assert fires(any_tap, "nfc_tap", tap_point="tap-shoes-kiosk")
    assert not fires(any_tap, "zone_entered", zone="shoes")


def test_try_on_filters_by_gtin_and_fitting_room() -> None:
    trigger = {"kind": "try_on", "gtins": [JEANS], "zones": ["fitting-room-2"]}
    assert fires(trigger, "try_on", zone="fitting-room-2", product_gtin=JEANS)
    assert not fires(trigger, "try_on", zone="fitting-room-1", product_gtin=JEANS)
    assert not fires(trigger, "try_on", zone="fitting-room-2", product_gtin=TAPERED)
    assert fires({"kind": "try_on"}, "try_on", zone="fitting-room-1", product_gtin=BOOTS)
    assert not fires({"kind": "try_on"}, "nfc_tap", product_gtin=BOOTS)


def test_returning_shopper_counts_earlier_visits() -> None:
    trigger = {"kind": "returning_shopper", "min_previous_visits": 2}
    assert fires(trigger, "store_entered", previous_visits=2)
    assert fires(trigger, "store_entered", previous_visits=7)
    assert not fires(trigger, "store_entered", previous_visits=1)
    assert not fires(trigger, "zone_entered", zone="denim", previous_visits=5)


@pytest.mark.parametrize("kind", ["wishlist_item_in_zone", "cart_item_in_zone"])
def test_item_in_zone_fires_where_the_item_is_displayed(kind: str) -> None:
    items = frozenset({JACKET, BOOTS})
    shopper = (
        make_shopper(wishlist=items)
        if kind == "wishlist_item_in_zone"
        else make_shopper(cart=items)
    )
    campaign = make_campaign("c", {"kind": kind})

    def batch_in(zone: str, event_kind: EventKind = "zone_entered") -> DecisionBatch:
        return run([campaign], make_event(event_kind, zone=zone), shopper)

    shoes = batch_in("shoes")
    assert shoes.offer is not None and shoes.offer.product_gtin == BOOTS
    assert batch_in("outerwear").offer is not None
    assert outcomes(batch_in("denim")) == {}
    assert outcomes(batch_in("shoes", "zone_left")) == {}
    # The other list does not count.
    other = make_shopper(cart=items) if kind == "wishlist_item_in_zone" else make_shopper()
    assert outcomes(run([campaign], make_event("zone_entered", zone="shoes"), other)) == {}


def test_item_in_zone_narrowed_to_listed_zones() -> None:
    campaign = make_campaign("c", {"kind": "cart_item_in_zone", "zones": ["denim"]})
    shopper = make_shopper(cart=frozenset({BELT}))
    assert run([campaign], make_event("zone_entered", zone="denim"), shopper).offer is not None
    accessories = run([campaign], make_event("zone_entered", zone="accessories"), shopper)
    assert outcomes(accessories) == {}


def test_item_in_zone_prefers_an_item_in_stock() -> None:
    campaign = make_campaign(
        "c", {"kind": "cart_item_in_zone"}, conditions={"require_in_stock": True}
    )
    shopper = make_shopper(cart=frozenset({TAPERED, JEANS}))
    batch = run([campaign], make_event("zone_entered", zone="denim"), shopper)
    assert batch.offer is not None and batch.offer.product_gtin == JEANS
    only_tapered = make_shopper(cart=frozenset({TAPERED}))
    batch = run([campaign], make_event("zone_entered", zone="denim"), only_tapered)
    assert outcomes(batch) == {"c": Outcome.OUT_OF_STOCK}


def test_campaigns_of_other_stores_do_not_fire() -> None:
    campaign = make_campaign("c", store="lyon-part-dieu")
    assert outcomes(run([campaign])) == {}


def test_offer_product_comes_from_the_event_when_content_names_none() -> None:
    tap = make_campaign("c", {"kind": "nfc_tap"})
    batch = run([tap], make_event("nfc_tap", tap_point="tap-shoes-kiosk", product_gtin=SCARF))
    assert batch.offer is not None
    assert batch.offer.product_gtin == SCARF
    assert batch.offer.image == "/app/img/silk-scarf.svg"  # from the catalog
    assert batch.offer.trigger["tap_point"] == "tap-shoes-kiosk"
    assert batch.offer.trigger["kind"] == "nfc_tap"
