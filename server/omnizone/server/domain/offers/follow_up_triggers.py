"""Follow-up triggers: campaigns that fire after the visit (docs/offers.md,
"Follow-ups after the visit").

They fire when a store visit ends, and their offer goes out ``after`` later,
by Web Push to the shopper's phone or by the signed webhook to the retailer's
email or CRM system. The in-store engine never fires them.
"""

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from omnizone.contract.base import StrictModel
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.server.domain.offers.catalog import Gtin

__all__ = [
    "FOLLOW_UP_TRIGGERS",
    "Duration",
    "LeftStore",
    "TappedNotBought",
    "TriedOnNotBought",
    "WishlistLingered",
    "duration_text",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MIN_AFTER_S = 60
MAX_AFTER_S = 30 * 86_400
MAX_ATTRIBUTION_S = 90 * 86_400


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1.5d"`` -> seconds (int)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f'write a duration as a number and a unit s, m, h or d, e.g. "2h" (got {value!r})'
        )
    found = _DURATION.match(value)
    if found is None:
        raise ValueError(f'expected a duration such as "90s", "30m", "2h" or "1d", got {value!r}')
    return round(float(found.group(1)) * _UNIT_S[found.group(2)])


def duration_text(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0 and seconds >= _UNIT_S[unit]:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    PlainSerializer(duration_text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["2h"]}),
]


def _between(low_s: int, high_s: int) -> Callable[[int], int]:
    def check(seconds: int) -> int:
        if not low_s <= seconds <= high_s:
            raise ValueError(
                f"{duration_text(seconds)} is out of range: "
                f"from {duration_text(low_s)} to {duration_text(high_s)}"
            )
        return seconds

    return check


Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Via = Literal["web_push", "webhook"]


class _FollowUp(StrictModel):
    model_config = ConfigDict(strict=True)

    after: Annotated[Duration, AfterValidator(_between(MIN_AFTER_S, MAX_AFTER_S))] = Field(
        description="how long after the visit ended the follow-up is due (1m to 30d)"
    )
    via: Via = Field("web_push", description="web_push: the shopper's phone; webhook: the CRM")
    attribution: Annotated[Duration, AfterValidator(_between(3600, MAX_ATTRIBUTION_S))] = Field(
        7 * 86_400, description="a purchase this long after the follow-up is attributed to it"
    )


class LeftStore(_FollowUp):
    """The visit ended (the shopper left the store), after at least ``min_visit_s``."""

    kind: Literal["left_store"]
    min_visit_s: float = Field(0, ge=0, le=86_400)


class TriedOnNotBought(_FollowUp):
    """An item was tried on during the visit and not bought by the time it is due."""

    kind: Literal["tried_on_not_bought"]
    gtins: list[Gtin] = []
    zones: list[Identifier] = []


class TappedNotBought(_FollowUp):
    """A shelf tag was tapped during the visit and the product not bought since."""

    kind: Literal["tapped_not_bought"]
    tap_points: list[Identifier] = []
    products: list[Gtin] = []


class WishlistLingered(_FollowUp):
    """The shopper stayed ``min_dwell_s`` in a zone showing a wishlist item, and
    has not bought it since."""

    kind: Literal["wishlist_lingered"]
    zones: list[Identifier] = []
    min_dwell_s: float = Field(30, gt=0, le=86_400)


FOLLOW_UP_TRIGGERS = frozenset(
    {"left_store", "tried_on_not_bought", "tapped_not_bought", "wishlist_lingered"}
)
