"""Follow-ups after the visit (domain/offers/follow_ups.py): each trigger on a
visit that ended, and the in-store rules when due: consent, caps, quiet
hours (postponed, not dropped), holdout, "bought since", attribution."""

from dataclasses import replace
from typing import Any

import pytest

from omnizone.server.domain.offers import (
    CampaignTotals,
    OfferHistory,
    OffersConfigError,
    Outcome,
    Purchase,
    SentOffer,
    holdout_draw,
    parse_campaigns,
)
from omnizone.server.domain.offers.follow_up_triggers import TriedOnNotBought
from omnizone.server.domain.offers.follow_ups import (
    FollowUpPlan,
    VisitFacts,
    after_quiet_hours,
    attributed_purchase,
    decide_follow_up,
    end_visit,
    observe,
    plan_follow_ups,
)
from tests.server.offers.conftest import (
    BOOTS,
    CATALOG,
    JACKET,
    JEANS,
    PARIS,
    TZ,
    make_campaign,
    make_event,
    make_shopper,
    paris_ms,
)

START = paris_ms(2026, 6, 10, 14)  # Wednesday 14:00 in Paris
END = START + 20 * 60_000  # left at 14:20
HOUR = 3_600_000


def follow_up(kind: str, campaign_id: str = "fu", **trigger: Any) -> Any:
    body: dict[str, Any] = {"kind": kind, "after": "2h", **trigger}
    return make_campaign(campaign_id, body)


def visit(*events: Any, ended_ms: int = END) -> VisitFacts:
    facts = None
    for kind, at_ms, fields in events:
        facts = observe(facts, make_event(kind, visit_id=str(START), at_ms=at_ms, **fields))
    if facts is None:
        facts = observe(None, make_event("store_entered", visit_id=str(START), at_ms=START))
    return end_visit(facts, ended_ms)


def plans(campaigns: list[Any], facts: VisitFacts, wishlist: frozenset[str] = frozenset()) -> Any:
    return plan_follow_ups(facts, campaigns, wishlist, CATALOG, TZ)


# -- triggers ------------------------------------------------------------------------


def test_left_store_is_due_after_the_delay() -> None:
    (plan,) = plans([follow_up("left_store")], visit())
    assert (plan.kind, plan.trigger_ms, plan.due_ms) == ("left_store", END, END + 2 * HOUR)
    assert plan.visit_started_ms == START and plan.products == ()


def test_left_store_needs_the_minimum_visit() -> None:
    short = follow_up("left_store", min_visit_s=1800)  # the visit lasted 20 minutes
    assert plans([short], visit()) == []


def test_tried_on_not_bought_names_the_items_tried_on() -> None:
    facts = visit(
        ("zone_entered", START, {"zone": "fitting-room-1"}),
        ("try_on", START + 60_000, {"zone": "fitting-room-1", "product_gtin": JEANS}),
        ("try_on", START + 90_000, {"zone": "fitting-room-1", "product_gtin": BOOTS}),
    )
    (plan,) = plans([follow_up("tried_on_not_bought", gtins=[JEANS])], facts)
    assert plan.products == (JEANS,) and plan.zone == "fitting-room-1"
    assert plans([follow_up("tried_on_not_bought", zones=["fitting-room-2"])], facts) == []
    assert plans([follow_up("tried_on_not_bought")], visit()) == []  # nothing tried on


def test_tapped_not_bought_names_the_tapped_products() -> None:
    facts = visit(
        ("nfc_tap", START + 1000, {"tap_point": "tap-outerwear-jackets", "product_gtin": JACKET})
    )
    (plan,) = plans([follow_up("tapped_not_bought", tap_points=["tap-outerwear-jackets"])], facts)
    assert plan.products == (JACKET,)
    assert plans([follow_up("tapped_not_bought", products=[BOOTS])], facts) == []


def test_wishlist_lingered_needs_the_dwell_by_a_wishlist_item() -> None:
    facts = visit(
        ("zone_entered", START, {"zone": "denim"}),
        ("zone_left", START + 40_000, {"zone": "denim"}),
        ("zone_entered", START + 40_000, {"zone": "outerwear"}),
        ("zone_left", START + 50_000, {"zone": "outerwear"}),
    )
    lingered = follow_up("wishlist_lingered", min_dwell_s=30)
    (plan,) = plans([lingered], facts, frozenset({JEANS, JACKET}))
    assert plan.products == (JEANS,) and plan.zone == "denim"  # 10 s by the jacket: too short
    assert plans([lingered], facts, frozenset({JACKET})) == []
    assert plans([lingered], facts, frozenset()) == []


def test_the_last_zone_counts_when_the_visit_ends_in_it() -> None:
    facts = visit(("zone_entered", START, {"zone": "denim"}), ended_ms=START + 45_000)
    assert facts.dwell_s == {"denim": 45.0}


def test_paused_and_in_store_campaigns_plan_nothing() -> None:
    paused = make_campaign("p", {"kind": "left_store", "after": "1h"}, status="paused")
    in_store = make_campaign("s", {"kind": "store_entered"})
    assert plans([paused, in_store], visit()) == []


def test_the_same_visit_plans_the_same_follow_up() -> None:
    campaign = follow_up("left_store")
    assert plans([campaign], visit())[0].follow_up_id == plans([campaign], visit())[0].follow_up_id


def test_a_delay_into_quiet_hours_is_due_when_they_end() -> None:
    late = make_campaign(
        "late",
        {"kind": "left_store", "after": "8h"},  # 14:20 + 8 h = 22:20
        conditions={"quiet_hours": [{"start": "21:00", "end": "09:00"}]},
    )
    (plan,) = plans([late], visit())
    assert plan.due_ms == paris_ms(2026, 6, 11, 9)


def test_after_quiet_hours_keeps_the_wall_clock_across_dst() -> None:
    windows = make_campaign(
        "q", conditions={"quiet_hours": [{"start": "22:00", "end": "07:00"}]}
    ).conditions.quiet_hours
    saturday_night = paris_ms(2026, 3, 28, 23)  # spring forward that night
    assert after_quiet_hours(saturday_night, windows, PARIS) == paris_ms(2026, 3, 29, 7)
    assert after_quiet_hours(paris_ms(2026, 3, 28, 12), windows, PARIS) == paris_ms(2026, 3, 28, 12)


# -- when due ------------------------------------------------------------------------


def plan_of(
    kind: str = "tried_on_not_bought", products: tuple[str, ...] = (JEANS,)
) -> FollowUpPlan:
    return FollowUpPlan(
        follow_up_id="f1",
        campaign_id="fu",
        store="paris-rivoli",
        shopper_id="shopper-1",
        visit_id=str(START),
        kind=kind,
        visit_started_ms=START,
        trigger_ms=END,
        due_ms=END + 2 * HOUR,
        via="web_push",
        products=products,
    )


def due(
    campaign: Any, plan: FollowUpPlan | None = None, *, now_ms: int | None = None, **kw: Any
) -> Any:
    plan = plan or plan_of()
    return decide_follow_up(
        plan,
        campaign,
        kw.get("shopper", make_shopper()),
        OfferHistory(kw.get("sent", ())),
        CampaignTotals(kw.get("totals", {})),
        CATALOG,
        TZ,
        plan.due_ms if now_ms is None else now_ms,
    )


def test_a_due_follow_up_is_sent_with_a_code_fixed_by_the_follow_up() -> None:
    campaign = make_campaign(
        "fu",
        {"kind": "tried_on_not_bought", "after": "2h"},
        content={"title": "Still thinking?", "coupon_code": "BACK-{code}"},
    )
    first, again = due(campaign), due(campaign)
    assert first.decision.outcome is Outcome.SENT and first.offer is not None
    assert first.offer.coupon_code == again.offer.coupon_code
    assert first.offer.coupon_code.startswith("BACK-") and first.offer.coupon_unique
    assert first.offer.product_gtin == JEANS
    assert first.offer.trigger["follow_up_id"] == "f1"
    assert first.decision.visit_id == str(START)


def test_no_consent_no_follow_up() -> None:
    campaign = follow_up("tried_on_not_bought")
    no_offers = due(campaign, shopper=make_shopper(consent_offers=False))
    no_location = due(campaign, shopper=make_shopper(consent_location=False))
    assert no_offers.decision.outcome is Outcome.NO_CONSENT and no_offers.offer is None
    assert no_location.decision.outcome is Outcome.NO_CONSENT


def test_bought_since_the_visit_cancels_it_online_or_in_store() -> None:
    campaign = follow_up("tried_on_not_bought")
    for channel in ("online", "pos"):
        bought = make_shopper(purchases=(Purchase(JEANS, 89.0, END + HOUR, channel),))
        result = due(campaign, shopper=bought)
        assert result.decision.outcome is Outcome.BOUGHT_SINCE, channel
        assert channel in result.decision.reason
    other = make_shopper(purchases=(Purchase(BOOTS, 120.0, END + HOUR, "pos"),))
    assert due(campaign, shopper=other).decision.outcome is Outcome.SENT
    before = make_shopper(purchases=(Purchase(JEANS, 89.0, START - HOUR, "online"),))
    assert due(campaign, shopper=before).decision.outcome is Outcome.SENT


def test_consent_comes_before_bought_since() -> None:
    bought = make_shopper(
        consent_offers=False, purchases=(Purchase(JEANS, 89.0, END + HOUR, "pos"),)
    )
    assert (
        due(follow_up("tried_on_not_bought"), shopper=bought).decision.outcome is Outcome.NO_CONSENT
    )


def test_quiet_hours_at_due_time_postpone_it() -> None:
    campaign = make_campaign(
        "fu",
        {"kind": "tried_on_not_bought", "after": "2h"},
        conditions={"quiet_hours": [{"start": "21:00", "end": "09:00"}]},
    )
    late = paris_ms(2026, 6, 10, 23, 30)
    result = due(campaign, now_ms=late)
    assert result.decision.outcome is Outcome.QUIET_HOURS and result.offer is None
    assert result.retry_at_ms == paris_ms(2026, 6, 11, 9)


def test_caps_count_the_offers_sent() -> None:
    capped = make_campaign(
        "fu", {"kind": "tried_on_not_bought", "after": "2h"}, limits={"per_day": 1}
    )
    today = SentOffer("fu", END + HOUR, "another-visit")
    assert due(capped, sent=[today]).decision.outcome is Outcome.CAPPED_DAY
    visit_cap = follow_up("tried_on_not_bought")  # per_visit 1 by default
    this_visit = SentOffer("fu", END, str(START))
    assert due(visit_cap, sent=[this_visit]).decision.outcome is Outcome.CAPPED_VISIT
    cooled = make_campaign(
        "fu", {"kind": "tried_on_not_bought", "after": "2h"}, limits={"cooldown_s": 7200}
    )
    recent = SentOffer("other", END + HOUR, "x")  # any campaign's offer
    assert due(cooled, sent=[recent]).decision.outcome is Outcome.COOLDOWN
    budget = make_campaign(
        "fu", {"kind": "tried_on_not_bought", "after": "2h"}, limits={"budget": 3}
    )
    assert due(budget, totals={"fu": 3}).decision.outcome is Outcome.BUDGET_EXHAUSTED


def test_the_holdout_is_the_in_store_draw() -> None:
    campaign = make_campaign(
        "fu", {"kind": "tried_on_not_bought", "after": "2h"}, holdout_fraction=0.5
    )
    outcomes = {}
    for n in range(40):
        shopper = f"s{n}"
        plan = replace(plan_of(), shopper_id=shopper)
        outcomes[shopper] = due(campaign, plan, shopper=make_shopper(shopper)).decision.outcome
    for shopper, outcome in outcomes.items():
        held = holdout_draw("fu", shopper) < 0.5
        assert outcome is (Outcome.HELD_OUT if held else Outcome.SENT)
    assert {Outcome.HELD_OUT, Outcome.SENT} == set(outcomes.values())


def test_a_deleted_or_changed_campaign_sends_nothing() -> None:
    assert due(None).decision.outcome is Outcome.CAMPAIGN_REMOVED
    changed = follow_up("left_store")
    assert due(changed).decision.outcome is Outcome.CAMPAIGN_REMOVED


def test_attribution_within_the_window_online_or_in_store() -> None:
    sent = END + 2 * HOUR
    day = 86_400
    bought = [
        Purchase(BOOTS, 120.0, sent + HOUR, "online"),  # not the product
        Purchase(JEANS, 89.0, sent + 2 * HOUR, "pos"),
    ]
    hit = attributed_purchase(sent, 7 * day, (JEANS,), bought)
    assert hit is not None and hit.channel == "pos"
    assert attributed_purchase(sent, 3600, (JEANS,), bought) is None  # window of 1 h
    assert attributed_purchase(sent, 7 * day, (), bought) == bought[0]  # any product
    assert attributed_purchase(sent, 7 * day, (JEANS,), bought, to_ms=sent + HOUR) is None
    assert attributed_purchase(sent, 7 * day, (JEANS,), [Purchase(JEANS, 1.0, sent - 1)]) is None


# -- campaign files ------------------------------------------------------------------


def test_follow_up_yaml_round_trips_its_durations() -> None:
    (campaign,) = parse_campaigns(
        """
campaigns:
  - id: back
    name: Come back
    store: paris-rivoli
    trigger: { kind: tried_on_not_bought, after: 2h, via: webhook, attribution: 3d }
    content: { title: Still thinking about it }
"""
    )
    trigger = campaign.trigger
    assert isinstance(trigger, TriedOnNotBought)
    assert (trigger.after, trigger.via, trigger.attribution) == (7200, "webhook", 3 * 86_400)
    dumped = campaign.model_dump(mode="json")["trigger"]
    assert (dumped["after"], dumped["attribution"]) == ("2h", "3d")


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("{ kind: left_store }", "trigger.after: Field required"),
        (
            "{ kind: left_store, after: 2 }",
            "trigger.after: write a duration as a number and a unit",
        ),
        ("{ kind: left_store, after: soon }", "trigger.after: expected a duration such as"),
        ("{ kind: left_store, after: 10s }", "trigger.after: 10s is out of range: from 1m to 30d"),
        (
            "{ kind: left_store, after: 2h, via: sms }",
            "trigger.via: Input should be 'web_push' or 'webhook'",
        ),
    ],
)
def test_bad_follow_up_triggers_say_where(trigger: str, expected: str) -> None:
    text = f"""
campaigns:
  - id: back
    name: Come back
    store: paris-rivoli
    trigger: {trigger}
    content: {{ title: Hi }}
"""
    with pytest.raises(OffersConfigError) as error:
        parse_campaigns(text, "x.yaml")
    message = str(error.value)
    assert "campaigns[0] (id 'back')" in message
    assert expected in message, message
