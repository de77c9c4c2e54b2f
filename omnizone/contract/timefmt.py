"""Times are UTC epoch milliseconds on the wire and aware datetimes inside."""

from datetime import UTC, datetime


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime: omnizone only handles timezone-aware times")
    return round(value.timestamp() * 1000)
