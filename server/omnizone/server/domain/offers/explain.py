"""Campaign figures in words a marketer reads: why offers were not sent, what
holds a campaign back right now, and what the lift says.

Pure functions over the decision log's outcome counts, a campaign's
conditions and the lift (``lift.py``); the campaign report and the dashboard
show their text as is.
"""

from collections.abc import Mapping
from datetime import datetime

from omnizone.server.domain.offers.campaign import Campaign
from omnizone.server.domain.offers.clock import matching_window, on_schedule
from omnizone.server.domain.offers.events import Outcome
from omnizone.server.domain.offers.lift import Lift

__all__ = ["NOT_SENT_WORDS", "held_back_now", "lift_in_words", "not_sent_reasons"]

#: Each refusal of the decision log, as a marketer would say it.
NOT_SENT_WORDS: dict[str, str] = {
    Outcome.NO_CONSENT: "no consent to offers or location",
    Outcome.PAUSED: "campaign paused",
    Outcome.NOT_IN_SEGMENT: "shopper not in the segment",
    Outcome.OUTSIDE_SCHEDULE: "outside the schedule",
    Outcome.QUIET_HOURS: "quiet hours",
    Outcome.OUT_OF_STOCK: "product out of stock",
    Outcome.CAPPED_VISIT: "already sent this visit",
    Outcome.CAPPED_DAY: "daily cap reached",
    Outcome.CAPPED_CAMPAIGN: "campaign cap reached",
    Outcome.COOLDOWN: "cool-down after the last offer",
    Outcome.BUDGET_EXHAUSTED: "budget spent",
    Outcome.LOST_ARBITRATION: "another campaign won",
    Outcome.BOUGHT_SINCE: "bought before the follow-up was due",
    Outcome.CAMPAIGN_REMOVED: "campaign changed before the follow-up was due",
}


def not_sent_reasons(outcomes: Mapping[str, int], top: int = 3) -> list[tuple[str, str, int]]:
    """The most frequent reasons the log gives for not sending, most first:
    (outcome, words, decisions). Sent and held out (the holdout is by design)
    are not reasons."""
    refused = [
        (outcome, NOT_SENT_WORDS.get(outcome, outcome.replace("_", " ")), n)
        for outcome, n in outcomes.items()
        if outcome not in (Outcome.SENT, Outcome.HELD_OUT) and n > 0
    ]
    refused.sort(key=lambda r: (-r[2], r[0]))
    return refused[:top]


def held_back_now(campaign: Campaign, local: datetime) -> str | None:
    """What stops the campaign from sending at this store-local time, if
    anything: paused, outside its schedule, or in quiet hours."""
    if campaign.status == "paused":
        return "paused"
    schedule = campaign.conditions.schedule
    if schedule is not None and not on_schedule(schedule, local):
        return f"outside its schedule now ({local:%a %H:%M} store time)"
    window = matching_window(campaign.conditions.quiet_hours, local)
    if window is not None:
        return f"quiet hours now ({window}, {local:%H:%M} store time)"
    return None


def lift_in_words(lift: Lift) -> str:
    """One sentence: whether the offer changed how many shoppers bought, in
    points (buyers per 100 shoppers), or that it cannot be told yet."""
    if lift.absolute is None or lift.absolute_low is None or lift.absolute_high is None:
        return "not enough data yet to tell: no shoppers in the offer group or in the holdout yet"
    points = round(lift.absolute * 100)
    level = f"{round(lift.confidence * 100)} % sure"
    if lift.absolute_low > 0:
        return (
            f"likely lifted purchases, by about {points} points "
            f"({points} more buyers per 100 shoppers; {level} it is above 0)"
        )
    if lift.absolute_high < 0:
        return (
            f"likely lowered purchases, by about {-points} points "
            f"({-points} fewer buyers per 100 shoppers; {level} it is below 0)"
        )
    low, high = round(lift.absolute_low * 100), round(lift.absolute_high * 100)
    return (
        "not enough data yet to tell: the effect could be anywhere from "
        f"{_signed(low)} to {_signed(high)} buyers per 100 shoppers"
    )


def _signed(points: int) -> str:
    return f"+{points}" if points > 0 else str(points)
