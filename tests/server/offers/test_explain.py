"""Campaign figures in words (issue 16): the lift as a marketer reads it, the
decision log's refusals, what holds a campaign back at a store-local time."""

from datetime import datetime
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers import campaign_lift
from omnizone.server.domain.offers.explain import held_back_now, lift_in_words, not_sent_reasons

from .conftest import make_campaign

PARIS = ZoneInfo("Europe/Paris")


def test_a_wide_interval_is_not_enough_data() -> None:
    # The "+0.0 pt [-79.3 pt, +29.9 pt]": one control shopper.
    words = lift_in_words(campaign_lift(10, 3, 1, 0))
    assert words.startswith("not enough data yet to tell")
    assert "pt" not in words and "[" not in words


def test_a_clear_lift_is_said_in_points() -> None:
    lift = campaign_lift(400, 120, 400, 60)  # 30 % vs 15 %
    assert lift.absolute_low is not None and lift.absolute_low > 0
    assert lift_in_words(lift).startswith("likely lifted purchases, by about 15 points")
    assert lift_in_words(campaign_lift(400, 60, 400, 120)).startswith(
        "likely lowered purchases, by about 15 points"
    )


def test_no_group_yet() -> None:
    assert lift_in_words(campaign_lift(0, 0, 5, 1)).startswith("not enough data yet to tell")


def test_refusals_are_ranked_and_sent_or_held_out_are_not_reasons() -> None:
    counts = {"sent": 50, "held_out": 5, "quiet_hours": 30, "capped_day": 30, "paused": 2, "x": 1}
    assert not_sent_reasons(counts, top=3) == [
        ("capped_day", "daily cap reached", 30),
        ("quiet_hours", "quiet hours", 30),
        ("paused", "campaign paused", 2),
    ]
    assert not_sent_reasons({"sent": 3}) == []


def test_what_holds_a_campaign_back_now() -> None:
    quiet = make_campaign(conditions={"quiet_hours": [{"start": "20:00", "end": "09:00"}]})
    assert held_back_now(quiet, datetime(2026, 6, 10, 8, 30, tzinfo=PARIS)) == (
        "quiet hours now (20:00–09:00, 08:30 store time)"
    )
    assert held_back_now(quiet, datetime(2026, 6, 10, 14, 0, tzinfo=PARIS)) is None
    weekend = make_campaign(conditions={"schedule": {"days": ["sat", "sun"]}})
    assert held_back_now(weekend, datetime(2026, 6, 10, 14, 0, tzinfo=PARIS)) == (
        "outside its schedule now (Wed 14:00 store time)"
    )
    assert held_back_now(make_campaign(status="paused"), datetime(2026, 6, 10, tzinfo=PARIS)) == (
        "paused"
    )
