"""Schedules and quiet hours on the store's wall clock.

Windows are compared with the local time of day (zoneinfo), so "no offers
before 08:00" stays 08:00 in the store across daylight-saving changes.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers.campaign import DAYS, Schedule, TimeWindow

__all__ = ["local_time", "matching_window", "on_schedule", "store_zone"]


def store_zone(timezone: str | ZoneInfo) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)


def local_time(at_ms: int, timezone: str | ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, tz=store_zone(timezone))


def _minute(local: datetime) -> int:
    return local.hour * 60 + local.minute


def _in(window: TimeWindow, minute: int) -> bool:
    if window.wraps:
        return minute >= window.start or minute < window.end
    return window.start <= minute < window.end


def matching_window(windows: Sequence[TimeWindow], local: datetime) -> TimeWindow | None:
    """The first daily window holding this local time, if any (quiet hours)."""
    minute = _minute(local)
    return next((w for w in windows if _in(w, minute)), None)


def _day_allowed(schedule: Schedule, day: date) -> bool:
    if DAYS[day.weekday()] not in schedule.days:
        return False
    if schedule.start_date is not None and day < schedule.start_date:
        return False
    return schedule.end_date is None or day <= schedule.end_date


def on_schedule(schedule: Schedule, local: datetime) -> bool:
    """Whether the campaign runs now. The part of a window after midnight
    belongs to the day the window opened: Friday 22:00–02:00 covers Saturday 01:00."""
    today = local.date()
    if not schedule.windows:
        return _day_allowed(schedule, today)
    minute = _minute(local)
    for window in schedule.windows:
        if window.wraps and minute < window.end:
            opened = today - timedelta(days=1)
        elif _in(window, minute):
            opened = today
        else:
            continue
        if _day_allowed(schedule, opened):
            return True
    return False
