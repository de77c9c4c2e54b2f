"""Properties of the decision over generated campaigns, events, shoppers and
histories: one offer at most, never without consent, arbitration order, and
the holdout share."""

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.server.domain.offers import (
    Campaign,
    DecisionBatch,
    EventKind,
    Outcome,
    SentOffer,
    ShopperContext,
    TriggerEvent,
    arbitration_key,
    holdout_draw,
    in_holdout,
)
from omnizone.server.domain.offers.campaign import PRODUCT_TRIGGERS
from tests.server.offers.conftest import (
    BELT,
    BOOTS,
    JACKET,
    JEANS,
    NOW,
    STORE,
    TAPERED,
    make_campaign,
    run,
)

ZONES = ["denim", "shoes", "fitting-room-1"]  # few, so that triggers often fire
GTINS = [JACKET, JEANS, TAPERED, BOOTS, BELT]
EVENT_KINDS: list[EventKind] = [
    "store_entered",
    "zone_entered",
    "dwell",
    "zone_left",
    "nfc_tap",
    "try_on",
]
HOUR_MS = 3_600_000

zones = st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True)
triggers = st.one_of(
    st.just({"kind": "store_entered"}),
    st.builds(lambda z: {"kind": "zone_entered", "zones": z}, zones),
    st.builds(
        lambda z, s: {"kind": "dwell", "zones": z, "min_dwell_s": s},
        zones,
        st.sampled_from([10, 30, 60]),
    ),
    st.builds(lambda z: {"kind": "zone_left", "zones": z}, zones),
    st.just({"kind": "nfc_tap"}),
    st.builds(lambda g: {"kind": "try_on", "gtins": g}, st.lists(st.sampled_from(GTINS))),
    st.builds(lambda n: {"kind": "returning_shopper", "min_previous_visits": n}, st.integers(1, 3)),
    st.just({"kind": "wishlist_item_in_zone"}),
    st.just({"kind": "cart_item_in_zone"}),
)
optional_cap = st.one_of(st.none(), st.integers(1, 3))


@st.composite
def campaigns(draw: st.DrawFn) -> list[Campaign]:
    count = draw(st.integers(1, 6))
    out = []
    for i in range(count):
        trigger = draw(triggers)
        product = draw(st.sampled_from([None, *GTINS]))
        names_a_product = product is not None or trigger["kind"] in PRODUCT_TRIGGERS
        fields: dict[str, Any] = {
            "status": draw(st.sampled_from(["active", "active", "active", "paused"])),
            "priority": draw(st.integers(0, 3)),
            "expected_value": draw(st.sampled_from([0.0, 1.0, 2.5])),
            "holdout_fraction": draw(st.sampled_from([0.0, 0.0, 0.3, 0.9])),
            "store": draw(st.sampled_from([STORE] * 5 + ["lyon-part-dieu"])),
            "conditions": {
                "require_in_stock": names_a_product and draw(st.booleans()),
                "segments": draw(
                    st.lists(
                        st.sampled_from([{"rule": "loyalty_member"}, {"rule": "cart_not_empty"}]),
                        max_size=1,
                    )
                ),
                "quiet_hours": draw(
                    st.lists(st.just({"start": "22:00", "end": "07:00"}), max_size=1)
                ),
            },
            "content": {"title": "t", "product_gtin": product},
            "limits": {
                "per_visit": draw(optional_cap),
                "per_day": draw(optional_cap),
                "per_campaign": draw(optional_cap),
                "cooldown_s": draw(st.sampled_from([0, 60, 3600])),
                "budget": draw(st.one_of(st.none(), st.integers(0, 3))),
            },
        }
        out.append(make_campaign(f"c{i}", trigger, **fields))
    return out


EVENT_OF_TRIGGER: dict[str, EventKind] = {
    **{kind: kind for kind in EVENT_KINDS},
    "returning_shopper": "store_entered",
    "wishlist_item_in_zone": "zone_entered",
    "cart_item_in_zone": "zone_entered",
}


@st.composite
def events(draw: st.DrawFn, likely: list[EventKind]) -> TriggerEvent:
    """Mostly events some campaign listens to, so that decisions are made."""
    kind = draw(st.sampled_from(likely * 3 + EVENT_KINDS))
    return TriggerEvent(
        kind=kind,
        store=STORE,
        shopper_id=draw(st.sampled_from(["shopper-1", "shopper-2", "shopper-3"])),
        visit_id=draw(st.sampled_from(["v1", "v2"])),
        at_ms=NOW + draw(st.integers(0, 24)) * HOUR_MS,
        zone=draw(st.sampled_from(ZONES)),
        dwell_s=draw(st.sampled_from([5.0, 45.0, 120.0])),
        tap_point=draw(st.sampled_from([None, "tap-outerwear-jackets", "tap-shoes-kiosk"])),
        product_gtin=draw(st.sampled_from([None, *GTINS])),
        previous_visits=draw(st.integers(0, 4)),
    )


mostly_true = st.sampled_from([True, True, True, False])


def shoppers(shopper_id: str) -> st.SearchStrategy[ShopperContext]:
    items = st.frozensets(st.sampled_from(GTINS), max_size=3)
    return st.builds(
        ShopperContext,
        shopper_id=st.just(shopper_id),
        consent_offers=mostly_true,
        consent_location=mostly_true,
        cart=items,
        wishlist=items,
        loyalty_id=st.sampled_from([None, "L-1"]),
    )


histories = st.lists(
    st.builds(
        SentOffer,
        campaign_id=st.sampled_from(["c0", "c1", "c2", "other"]),
        at_ms=st.integers(NOW - 48 * HOUR_MS, NOW),
        visit_id=st.sampled_from(["v0", "v1", "v2"]),
    ),
    max_size=6,
)
totals = st.dictionaries(st.sampled_from(["c0", "c1", "c2"]), st.integers(0, 4), max_size=3)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Campaign], DecisionBatch, ShopperContext]:
    found = draw(campaigns())
    likely = [EVENT_OF_TRIGGER[c.trigger.kind] for c in found]
    event = draw(events(likely))
    shopper = draw(shoppers(event.shopper_id))
    batch = run(found, event, shopper, draw(histories), draw(totals))
    return found, batch, shopper


@settings(max_examples=200)
@given(scenarios())
def test_at_most_one_offer_per_event(
    scenario: tuple[list[Campaign], DecisionBatch, ShopperContext],
) -> None:
    found, batch, _ = scenario
    sent = [d for d in batch.decisions if d.outcome is Outcome.SENT]
    assert len(sent) <= 1
    assert (batch.offer is None) == (not sent)
    if batch.offer is not None:
        assert batch.offer.campaign_id == sent[0].campaign_id
    ids = [d.campaign_id for d in batch.decisions]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {c.id for c in found if c.store == STORE}


@settings(max_examples=200)
@given(scenarios())
def test_no_consent_never_sends(
    scenario: tuple[list[Campaign], DecisionBatch, ShopperContext],
) -> None:
    _, batch, shopper = scenario
    if not shopper.consent_offers:
        assert batch.offer is None
        assert {d.outcome for d in batch.decisions} <= {Outcome.PAUSED, Outcome.NO_CONSENT}


@settings(max_examples=200)
@given(scenarios())
def test_winner_is_the_first_eligible_campaign_not_held_out(
    scenario: tuple[list[Campaign], DecisionBatch, ShopperContext],
) -> None:
    found, batch, _ = scenario
    by_id = {c.id: c for c in found}
    keys = [arbitration_key(by_id[d.campaign_id]) for d in batch.decisions]
    assert keys == sorted(keys)
    sent = batch.sent
    for decision in batch.decisions:
        campaign = by_id[decision.campaign_id]
        if decision.outcome is Outcome.LOST_ARBITRATION:
            assert sent is not None
            assert arbitration_key(by_id[sent.campaign_id]) < arbitration_key(campaign)
        if decision.outcome is Outcome.HELD_OUT:
            assert in_holdout(campaign.id, decision.shopper_id, campaign.holdout_fraction)
            if sent is not None:
                assert arbitration_key(campaign) < arbitration_key(by_id[sent.campaign_id])
    if sent is not None:
        winner = by_id[sent.campaign_id]
        assert not in_holdout(winner.id, sent.shopper_id, winner.holdout_fraction)


@settings(max_examples=100)
@given(scenarios())
def test_decisions_are_deterministic(
    scenario: tuple[list[Campaign], DecisionBatch, ShopperContext],
) -> None:
    found, batch, shopper = scenario
    again = run(list(reversed(found)), batch.event, shopper, (), {})
    first = run(found, batch.event, shopper, (), {})
    assert again == first


@settings(max_examples=40, deadline=None)
@given(
    fraction=st.floats(0.01, 0.99),
    campaign_id=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    prefix=st.text(min_size=0, max_size=8),
)
def test_holdout_share_matches_the_fraction(fraction: float, campaign_id: str, prefix: str) -> None:
    n = 4000
    held = sum(in_holdout(campaign_id, f"{prefix}{i}", fraction) for i in range(n))
    sd = math.sqrt(n * fraction * (1 - fraction))
    assert abs(held - n * fraction) <= 5 * sd


@given(st.text(max_size=30), st.text(max_size=30))
def test_holdout_draw_is_a_fixed_number_in_the_unit_interval(campaign: str, shopper: str) -> None:
    draw = holdout_draw(campaign, shopper)
    assert 0.0 <= draw < 1.0
    assert draw == holdout_draw(campaign, shopper)
