"""Every decision outcome, the order of checks, caps, arbitration and holdout."""

from datetime import UTC, datetime
from typing import Any

import pytest

from omnizone.server.domain.offers import (
    Outcome,
    Purchase,
    SentOffer,
    holdout_draw,
    in_holdout,
)
from tests.server.offers.conftest import (
    BOOTS,
    JACKET,
    JEANS,
    NOW,
    TAPERED,
    make_campaign,
    make_event,
    make_shopper,
    outcomes,
    paris_ms,
    run,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def utc_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# -- sent -----------------------------------------------------------------------------


def test_sent_offer_carries_the_content() -> None:
    campaign = make_campaign(
        "denim",
        {"kind": "zone_entered", "zones": ["denim"]},
        content={
            "title": "10% off denim",
            "body": "Today only",
            "product_gtin": JEANS,
            "coupon_code": "DENIM-{code}",
            "expires_after_s": 600,
        },
    )
    event = make_event("zone_entered", zone="denim")
    batch = run([campaign], event, now_ms=NOW + 250)
    assert outcomes(batch) == {"denim": Outcome.SENT}
    offer = batch.offer
    assert offer is not None
    assert (offer.title, offer.body, offer.product_gtin) == ("10% off denim", "Today only", JEANS)
    assert offer.image == "/app/img/straight-jeans.svg"
    assert offer.created_ms == NOW + 250
    assert offer.expires_ms == NOW + 250 + 600_000
    assert offer.coupon_code is not None and offer.coupon_code.startswith("DENIM-")
    assert len(offer.coupon_code) == len("DENIM-") + 8
    assert offer.trigger == {
        "kind": "zone_entered",
        "event": "zone_entered",
        "store": "paris-rivoli",
        "visit_id": "visit-1",
        "at_ms": NOW,
        "zone": "denim",
    }
    assert batch.sent is not None and batch.sent.campaign_id == "denim"


def test_unique_coupon_codes_differ_per_offer_and_repeat_for_the_same_inputs() -> None:
    campaign = make_campaign("c", content={"coupon_code": "C-{code}"})
    codes = {
        run([campaign], make_event(visit_id=f"visit-{i}")).offer.coupon_code  # type: ignore[union-attr]
        for i in range(200)
    }
    assert len(codes) == 200
    again = run([campaign], make_event(visit_id="visit-3")).offer
    assert again is not None and again.coupon_code in codes
    fixed = make_campaign("f", content={"coupon_code": "SUMMER10"})
    assert run([fixed]).offer.coupon_code == "SUMMER10"  # type: ignore[union-attr]


def test_image_of_the_content_wins_over_the_product_image() -> None:
    campaign = make_campaign("c", content={"image": "/app/img/x.svg", "product_gtin": JACKET})
    assert run([campaign]).offer.image == "/app/img/x.svg"  # type: ignore[union-attr]


def test_event_for_another_shopper_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="shopper"):
        run([make_campaign()], make_event(shopper_id="a"), make_shopper("b"))


# -- consent, pause, segments ----------------------------------------------------------


def test_no_consent_to_offers_never_sends() -> None:
    campaign = make_campaign()
    batch = run([campaign], shopper=make_shopper(consent_offers=False))
    assert outcomes(batch) == {"c1": Outcome.NO_CONSENT}
    assert batch.offer is None


def test_location_triggers_need_location_consent_but_a_tap_does_not() -> None:
    no_location = make_shopper(consent_location=False)
    zone = make_campaign("zone", {"kind": "zone_entered", "zones": ["denim"]})
    tap = make_campaign("tap", {"kind": "nfc_tap"})
    zone_batch = run([zone], make_event("zone_entered", zone="denim"), no_location)
    assert outcomes(zone_batch) == {"zone": Outcome.NO_CONSENT}
    assert "location" in zone_batch.decisions[0].reason
    tap_event = make_event("nfc_tap", tap_point="tap-shoes-kiosk")
    assert outcomes(run([tap], tap_event, no_location)) == {"tap": Outcome.SENT}
    no_offers = make_shopper(consent_offers=False)
    assert outcomes(run([tap], tap_event, no_offers)) == {"tap": Outcome.NO_CONSENT}


def test_paused_campaign_is_recorded_but_not_sent() -> None:
    batch = run([make_campaign(status="paused")])
    assert outcomes(batch) == {"c1": Outcome.PAUSED}
    assert batch.offer is None


@pytest.mark.parametrize(
    ("rule", "member", "outsider"),
    [
        (
            {"rule": "loyalty_member"},
            {"loyalty_id": "L-1"},
            {},
        ),
        (
            {"rule": "cart_not_empty"},
            {"cart": frozenset({JEANS})},
            {"wishlist": frozenset({JEANS})},
        ),
        (
            {"rule": "wishlist_not_empty"},
            {"wishlist": frozenset({JEANS})},
            {"cart": frozenset({JEANS})},
        ),
        (
            {"rule": "has_purchased_gtin", "gtins": [JACKET]},
            {"purchases": (Purchase(JACKET, 189.0, NOW - DAY_MS),)},
            {"purchases": (Purchase(BOOTS, 159.0, NOW - DAY_MS),)},
        ),
        (
            {"rule": "has_purchased_gtin", "gtins": [JACKET], "within_days": 30},
            {"purchases": (Purchase(JACKET, 189.0, NOW - 29 * DAY_MS),)},
            {"purchases": (Purchase(JACKET, 189.0, NOW - 31 * DAY_MS),)},
        ),
        (
            {"rule": "min_purchases", "count": 2},
            {"purchases": (Purchase(None, 10.0, NOW - 1), Purchase(None, 5.0, NOW - 2))},
            {"purchases": (Purchase(None, 10.0, NOW - 1),)},
        ),
        (
            {"rule": "min_spend", "amount": 100},
            {"purchases": (Purchase(None, 60.0, NOW - 1), Purchase(None, 40.0, NOW - 2))},
            {"purchases": (Purchase(None, 99.99, NOW - 1),)},
        ),
        (
            {"rule": "min_spend", "amount": 100, "within_days": 7},
            {"purchases": (Purchase(None, 100.0, NOW - 6 * DAY_MS),)},
            {"purchases": (Purchase(None, 100.0, NOW - 8 * DAY_MS),)},
        ),
        (
            {"rule": "loyalty_member", "negate": True},
            {},
            {"loyalty_id": "L-1"},
        ),
    ],
)
def test_segment_rules(
    rule: dict[str, Any], member: dict[str, Any], outsider: dict[str, Any]
) -> None:
    campaign = make_campaign(conditions={"segments": [rule]})
    assert outcomes(run([campaign], shopper=make_shopper(**member))) == {"c1": Outcome.SENT}
    batch = run([campaign], shopper=make_shopper(**outsider))
    assert outcomes(batch) == {"c1": Outcome.NOT_IN_SEGMENT}
    assert str(rule["rule"]) in batch.decisions[0].reason


def test_all_segment_rules_must_hold() -> None:
    campaign = make_campaign(
        conditions={"segments": [{"rule": "loyalty_member"}, {"rule": "cart_not_empty"}]}
    )
    assert outcomes(run([campaign], shopper=make_shopper(loyalty_id="L"))) == {
        "c1": Outcome.NOT_IN_SEGMENT
    }
    both = make_shopper(loyalty_id="L", cart=frozenset({JEANS}))
    assert outcomes(run([campaign], shopper=both)) == {"c1": Outcome.SENT}


# -- schedule and quiet hours (store time zone) -------------------------------------------


def at(campaign_conditions: dict[str, Any], when_ms: int) -> Outcome:
    campaign = make_campaign(conditions=campaign_conditions)
    return outcomes(run([campaign], make_event(at_ms=when_ms)))["c1"]


def test_schedule_days_and_windows_in_store_time() -> None:
    weekdays = {
        "schedule": {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "windows": [{"start": "10:00", "end": "19:00"}],
        }
    }
    assert at(weekdays, paris_ms(2026, 6, 10, 10)) is Outcome.SENT  # Wednesday
    assert at(weekdays, paris_ms(2026, 6, 10, 18, 59)) is Outcome.SENT
    assert at(weekdays, paris_ms(2026, 6, 10, 19)) is Outcome.OUTSIDE_SCHEDULE
    assert at(weekdays, paris_ms(2026, 6, 10, 9, 59)) is Outcome.OUTSIDE_SCHEDULE
    assert at(weekdays, paris_ms(2026, 6, 13, 12)) is Outcome.OUTSIDE_SCHEDULE  # Saturday
    # 09:30 in Paris is 07:30 UTC: a UTC clock would call it outside.
    morning = {"schedule": {"windows": [{"start": "09:00", "end": "10:00"}]}}
    assert at(morning, paris_ms(2026, 6, 10, 9, 30)) is Outcome.SENT


def test_schedule_window_past_midnight_belongs_to_the_day_it_opened() -> None:
    friday_night = {"schedule": {"days": ["fri"], "windows": [{"start": "22:00", "end": "02:00"}]}}
    assert at(friday_night, paris_ms(2026, 6, 12, 23)) is Outcome.SENT  # Friday
    assert at(friday_night, paris_ms(2026, 6, 13, 1, 30)) is Outcome.SENT  # Saturday early
    assert at(friday_night, paris_ms(2026, 6, 13, 23)) is Outcome.OUTSIDE_SCHEDULE  # Saturday
    assert at(friday_night, paris_ms(2026, 6, 12, 1, 30)) is Outcome.OUTSIDE_SCHEDULE  # Thu night


def test_schedule_dates_are_inclusive_store_dates() -> None:
    june = {"schedule": {"start_date": "2026-06-01", "end_date": "2026-06-30"}}
    assert at(june, paris_ms(2026, 6, 1, 0, 5)) is Outcome.SENT  # still May 31st in UTC
    assert at(june, paris_ms(2026, 6, 30, 23, 55)) is Outcome.SENT
    assert at(june, paris_ms(2026, 7, 1, 0, 5)) is Outcome.OUTSIDE_SCHEDULE  # June 30th in UTC
    assert at(june, paris_ms(2026, 5, 31, 23, 55)) is Outcome.OUTSIDE_SCHEDULE


QUIET_NIGHT = {"quiet_hours": [{"start": "22:00", "end": "07:00"}]}


def test_quiet_hours_across_midnight() -> None:
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 10, 21, 59)) is Outcome.SENT
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 10, 22)) is Outcome.QUIET_HOURS
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 10, 23, 59)) is Outcome.QUIET_HOURS
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 11, 0, 0)) is Outcome.QUIET_HOURS
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 11, 6, 59)) is Outcome.QUIET_HOURS
    assert at(QUIET_NIGHT, paris_ms(2026, 6, 11, 7)) is Outcome.SENT


def test_quiet_hours_on_the_spring_forward_night() -> None:
    # 2026-03-29: Paris clocks jump from 02:00 CET to 03:00 CEST.
    assert at(QUIET_NIGHT, utc_ms(2026, 3, 28, 21, 30)) is Outcome.QUIET_HOURS  # 22:30 CET
    assert at(QUIET_NIGHT, utc_ms(2026, 3, 29, 0, 59)) is Outcome.QUIET_HOURS  # 01:59 CET
    assert at(QUIET_NIGHT, utc_ms(2026, 3, 29, 1, 0)) is Outcome.QUIET_HOURS  # 03:00 CEST
    assert at(QUIET_NIGHT, utc_ms(2026, 3, 29, 4, 59)) is Outcome.QUIET_HOURS  # 06:59 CEST
    # 05:00 UTC is 07:00 CEST: quiet hours are over (it would be 06:00 in winter time).
    assert at(QUIET_NIGHT, utc_ms(2026, 3, 29, 5, 0)) is Outcome.SENT


def test_quiet_hours_on_the_fall_back_night() -> None:
    # 2026-10-25: Paris clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 24, 19, 59)) is Outcome.SENT  # 21:59 CEST
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 24, 20, 0)) is Outcome.QUIET_HOURS  # 22:00 CEST
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 25, 0, 30)) is Outcome.QUIET_HOURS  # 02:30 CEST
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 25, 1, 30)) is Outcome.QUIET_HOURS  # 02:30 CET
    # 05:30 UTC is 06:30 CET, still quiet (it would be 07:30 in summer time).
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 25, 5, 30)) is Outcome.QUIET_HOURS
    assert at(QUIET_NIGHT, utc_ms(2026, 10, 25, 6, 0)) is Outcome.SENT  # 07:00 CET


def test_quiet_hours_reason_names_the_window_and_store_time() -> None:
    batch = run(
        [make_campaign(conditions=QUIET_NIGHT)], make_event(at_ms=paris_ms(2026, 6, 10, 23, 5))
    )
    assert batch.decisions[0].reason == "quiet hours 22:00–07:00 at Wed 23:05 Europe/Paris"


def test_decision_time_is_now_not_the_event_time() -> None:
    campaign = make_campaign(conditions=QUIET_NIGHT)
    late = make_event(at_ms=paris_ms(2026, 6, 10, 21, 59))
    assert outcomes(run([campaign], late, now_ms=paris_ms(2026, 6, 10, 22, 0))) == {
        "c1": Outcome.QUIET_HOURS
    }


# -- stock ------------------------------------------------------------------------------


def test_out_of_stock_product_is_not_offered() -> None:
    conditions = {"require_in_stock": True}
    assert outcomes(
        run([make_campaign(conditions=conditions, content={"product_gtin": JEANS})])
    ) == {"c1": Outcome.SENT}
    batch = run([make_campaign(conditions=conditions, content={"product_gtin": TAPERED})])
    assert outcomes(batch) == {"c1": Outcome.OUT_OF_STOCK}
    assert TAPERED in batch.decisions[0].reason


def test_stock_is_per_store_and_unknown_products_have_none() -> None:
    tap = make_campaign("tap", {"kind": "nfc_tap"}, conditions={"require_in_stock": True})
    unknown = make_event("nfc_tap", tap_point="tap-shoes-kiosk", product_gtin="09506000999999")
    batch = run([tap], unknown)
    assert outcomes(batch) == {"tap": Outcome.OUT_OF_STOCK}
    assert "not in the catalog" in batch.decisions[0].reason
    no_product = make_event("nfc_tap", tap_point="tap-shoes-kiosk")
    assert outcomes(run([tap], no_product)) == {"tap": Outcome.OUT_OF_STOCK}


def test_without_require_in_stock_stock_is_not_checked() -> None:
    campaign = make_campaign(content={"product_gtin": TAPERED})
    assert outcomes(run([campaign])) == {"c1": Outcome.SENT}


# -- caps -------------------------------------------------------------------------------


def test_per_visit_cap() -> None:
    campaign = make_campaign(limits={"per_visit": 2})
    one = [SentOffer("c1", NOW - HOUR_MS, "visit-1")]
    two = [*one, SentOffer("c1", NOW - 1000, "visit-1")]
    assert outcomes(run([campaign], sent=one)) == {"c1": Outcome.SENT}
    assert outcomes(run([campaign], sent=two)) == {"c1": Outcome.CAPPED_VISIT}
    other_visit = [SentOffer("c1", NOW - 10, "visit-0")] * 2
    assert outcomes(run([campaign], sent=other_visit)) == {"c1": Outcome.SENT}
    other_campaign = [SentOffer("c2", NOW - 10, "visit-1")] * 2
    assert outcomes(run([campaign], sent=other_campaign)) == {"c1": Outcome.SENT}


def test_per_visit_defaults_to_one_and_can_be_lifted() -> None:
    sent = [SentOffer("c1", NOW - 1000, "visit-1")]
    assert outcomes(run([make_campaign()], sent=sent)) == {"c1": Outcome.CAPPED_VISIT}
    assert outcomes(run([make_campaign(limits={"per_visit": None})], sent=sent)) == {
        "c1": Outcome.SENT
    }


def test_per_day_cap_counts_the_store_calendar_day() -> None:
    campaign = make_campaign(limits={"per_visit": None, "per_day": 1})
    late_evening = paris_ms(2026, 6, 10, 23, 30)  # 21:30 UTC
    after_midnight = paris_ms(2026, 6, 11, 0, 30)  # 22:30 UTC, same UTC day
    sent = [SentOffer("c1", late_evening, "visit-0")]
    same_day = paris_ms(2026, 6, 10, 23, 50)
    assert outcomes(run([campaign], make_event(at_ms=same_day), sent=sent)) == {
        "c1": Outcome.CAPPED_DAY
    }
    assert outcomes(run([campaign], make_event(at_ms=after_midnight), sent=sent)) == {
        "c1": Outcome.SENT
    }


def test_per_campaign_cap_is_lifetime() -> None:
    campaign = make_campaign(limits={"per_visit": None, "per_campaign": 2})
    sent = [SentOffer("c1", NOW - 300 * DAY_MS, "v-a"), SentOffer("c1", NOW - 100 * DAY_MS, "v-b")]
    assert outcomes(run([campaign], sent=sent[:1])) == {"c1": Outcome.SENT}
    assert outcomes(run([campaign], sent=sent)) == {"c1": Outcome.CAPPED_CAMPAIGN}


def test_cooldown_applies_across_campaigns() -> None:
    campaign = make_campaign(limits={"cooldown_s": 600})
    recent = [SentOffer("other", NOW - 599_000, "visit-0")]
    batch = run([campaign], sent=recent)
    assert outcomes(batch) == {"c1": Outcome.COOLDOWN}
    assert batch.decisions[0].reason == "last offer 599 s ago, cool-down 600 s"
    assert outcomes(run([campaign], sent=[SentOffer("other", NOW - 600_000, "visit-0")])) == {
        "c1": Outcome.SENT
    }


def test_budget_is_global() -> None:
    campaign = make_campaign(limits={"budget": 100})
    assert outcomes(run([campaign], totals={"c1": 99})) == {"c1": Outcome.SENT}
    assert outcomes(run([campaign], totals={"c1": 100})) == {"c1": Outcome.BUDGET_EXHAUSTED}
    assert outcomes(run([campaign], totals={"other": 1000})) == {"c1": Outcome.SENT}
    zero = make_campaign(limits={"budget": 0})
    assert outcomes(run([zero])) == {"c1": Outcome.BUDGET_EXHAUSTED}


# -- order of checks --------------------------------------------------------------------


def test_checks_run_in_the_documented_order() -> None:
    """A campaign failing every check reports the first; fixing it reveals the next."""
    quiet_now = paris_ms(2026, 6, 10, 23)  # Wednesday
    event = make_event(at_ms=quiet_now)
    history = [SentOffer("c1", quiet_now - 1000, "visit-1")]
    failing: dict[str, Any] = {
        "status": "paused",
        "conditions": {
            "segments": [{"rule": "loyalty_member"}],
            "schedule": {"days": ["mon"]},
            "quiet_hours": [{"start": "22:00", "end": "07:00"}],
            "require_in_stock": True,
        },
        "content": {"product_gtin": TAPERED},
        "limits": {"per_visit": 1, "per_day": 1, "per_campaign": 1, "cooldown_s": 60, "budget": 5},
    }
    fixes: list[tuple[Outcome, dict[str, Any]]] = [
        (Outcome.PAUSED, {"status": "active"}),
        (Outcome.NO_CONSENT, {}),
        (Outcome.NOT_IN_SEGMENT, {"conditions": {"segments": []}}),
        (Outcome.OUTSIDE_SCHEDULE, {"conditions": {"schedule": None}}),
        (Outcome.QUIET_HOURS, {"conditions": {"quiet_hours": []}}),
        (Outcome.OUT_OF_STOCK, {"content": {"product_gtin": JEANS}}),
        (Outcome.CAPPED_VISIT, {"limits": {"per_visit": None}}),
        (Outcome.CAPPED_DAY, {"limits": {"per_day": None}}),
        (Outcome.CAPPED_CAMPAIGN, {"limits": {"per_campaign": None}}),
        (Outcome.COOLDOWN, {"limits": {"cooldown_s": 0}}),
        (Outcome.BUDGET_EXHAUSTED, {"limits": {"budget": None}}),
    ]
    consent = False
    seen = []
    for expected, fix in fixes:
        shopper = make_shopper(consent_offers=consent)
        batch = run([make_campaign(**failing)], event, shopper, history, totals={"c1": 5})
        seen.append(outcomes(batch)["c1"])
        assert seen[-1] is expected, seen
        if expected is Outcome.NO_CONSENT:
            consent = True
        failing = _deep(failing, fix)
    batch = run([make_campaign(**failing)], event, make_shopper(), history, totals={"c1": 5})
    assert outcomes(batch) == {"c1": Outcome.SENT}


def _deep(base: dict[str, Any], fix: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in fix.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = {**current, **value}
        else:
            out[key] = value
    return out


# -- arbitration -------------------------------------------------------------------------


def test_at_most_one_offer_highest_priority_wins() -> None:
    low = make_campaign("low", priority=1, expected_value=100)
    high = make_campaign("high", priority=5, expected_value=1)
    batch = run([low, high])
    assert outcomes(batch) == {"high": Outcome.SENT, "low": Outcome.LOST_ARBITRATION}
    assert batch.offer is not None and batch.offer.campaign_id == "high"
    assert [d.campaign_id for d in batch.decisions] == ["high", "low"]
    assert batch.decisions[1].reason == "lost to high"


def test_expected_value_then_id_break_ties() -> None:
    a = make_campaign("a", priority=3, expected_value=2)
    b = make_campaign("b", priority=3, expected_value=9)
    assert run([a, b]).offer.campaign_id == "b"  # type: ignore[union-attr]
    c = make_campaign("c", priority=3, expected_value=9)
    assert run([c, b]).offer.campaign_id == "b"  # type: ignore[union-attr]
    assert run([b, c]).offer.campaign_id == "b"  # type: ignore[union-attr]


def test_ineligible_winner_lets_the_next_one_send() -> None:
    high = make_campaign("high", priority=9, conditions={"segments": [{"rule": "loyalty_member"}]})
    low = make_campaign("low", priority=1)
    assert outcomes(run([high, low])) == {"high": Outcome.NOT_IN_SEGMENT, "low": Outcome.SENT}


def test_only_matching_campaigns_get_a_decision() -> None:
    entered = make_campaign("entered")
    denim = make_campaign("denim", {"kind": "zone_entered", "zones": ["denim"]})
    assert outcomes(run([entered, denim])) == {"entered": Outcome.SENT}


# -- holdout -----------------------------------------------------------------------------

SHOPPERS = [f"shopper-{i}" for i in range(400)]


def shoppers_by_holdout(campaign_id: str, fraction: float) -> tuple[list[str], list[str]]:
    held = [s for s in SHOPPERS if in_holdout(campaign_id, s, fraction)]
    treated = [s for s in SHOPPERS if not in_holdout(campaign_id, s, fraction)]
    return held, treated


def test_holdout_is_stable_per_shopper_and_campaign() -> None:
    campaign = make_campaign("promo", holdout_fraction=0.3)
    held, treated = shoppers_by_holdout("promo", 0.3)
    assert held and treated
    for shopper in held[:20]:
        for visit in range(3):
            event = make_event(shopper_id=shopper, visit_id=f"v{visit}", at_ms=NOW + visit * DAY_MS)
            batch = run([campaign], event)
            assert outcomes(batch) == {"promo": Outcome.HELD_OUT}
            assert batch.offer is None
    for shopper in treated[:20]:
        assert outcomes(run([campaign], make_event(shopper_id=shopper))) == {"promo": Outcome.SENT}
    # The draw depends on the campaign too: another campaign holds out other shoppers.
    assert held != shoppers_by_holdout("other-promo", 0.3)[0]
    assert holdout_draw("promo", "shopper-1") == holdout_draw("promo", "shopper-1")


def test_holdout_is_checked_after_eligibility() -> None:
    campaign = make_campaign(
        "promo",
        holdout_fraction=0.5,
        conditions={"quiet_hours": [{"start": "00:00", "end": "24:00"}]},
    )
    held, _ = shoppers_by_holdout("promo", 0.5)
    assert outcomes(run([campaign], make_event(shopper_id=held[0]))) == {
        "promo": Outcome.QUIET_HOURS
    }
    no_consent = make_shopper(held[0], consent_offers=False)
    assert outcomes(
        run(
            [make_campaign("promo", holdout_fraction=0.5)],
            make_event(shopper_id=held[0]),
            no_consent,
        )
    ) == {"promo": Outcome.NO_CONSENT}


def test_held_out_winner_falls_through_to_the_next_campaign() -> None:
    """The control group of 'top' is exactly the shoppers it would have been sent to."""
    top = make_campaign("top", priority=9, holdout_fraction=0.5)
    second = make_campaign("second", priority=1)
    held, treated = shoppers_by_holdout("top", 0.5)
    batch = run([top, second], make_event(shopper_id=held[0]))
    assert outcomes(batch) == {"top": Outcome.HELD_OUT, "second": Outcome.SENT}
    batch = run([top, second], make_event(shopper_id=treated[0]))
    assert outcomes(batch) == {"top": Outcome.SENT, "second": Outcome.LOST_ARBITRATION}


def test_a_campaign_that_loses_arbitration_is_not_drawn_for_holdout() -> None:
    top = make_campaign("top", priority=9)
    second = make_campaign("second", priority=1, holdout_fraction=0.5)
    held, _ = shoppers_by_holdout("second", 0.5)
    batch = run([top, second], make_event(shopper_id=held[0]))
    assert outcomes(batch) == {"top": Outcome.SENT, "second": Outcome.LOST_ARBITRATION}


def test_zero_holdout_never_holds_out() -> None:
    assert not any(in_holdout("promo", s, 0.0) for s in SHOPPERS)
