"""The store funnel (store visit -> zone visit -> tap or try-on -> purchase)
and fitting-room try-on -> purchase conversion.

Taps at a reader and try-ons name no shopper: each is attributed to one
stay that covers it in the same zone, the one that began last before it
(docs/analytics.md). Purchases are matched to the shopper's trip whose
purchase window holds them.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stays import PASS_BY, Ints, Stays, Trips

#: Stays longer than this are matched to events one by one (few of them);
#: the rest through a window of entry times bounded by it.
_LONG_STAY_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class ZoneEvents:
    """Anonymous events in a zone: taps at a tap point, garments carried in."""

    zone: Ints
    at_ms: Ints
    gtin: tuple[str | None, ...] = ()  # per event, for try-ons


@dataclass(frozen=True, slots=True)
class ShopperEvents:
    """Events of a known shopper (device index into ``Stays.devices``)."""

    device: Ints
    at_ms: Ints
    gtin: tuple[str | None, ...] = ()


def covering_stays(stays: Stays, events: ZoneEvents, slack_ms: int) -> tuple[Ints, Ints]:
    """Pairs (event index, stay index) where the stay is in the event's zone
    and [entered - slack, end + slack] holds the event time."""
    pairs_e: list[Ints] = []
    pairs_s: list[Ints] = []
    if len(stays) == 0 or events.zone.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    for z in np.unique(events.zone):
        ev = np.flatnonzero(events.zone == z)
        st = np.flatnonzero(stays.zone == z)
        if st.size == 0:
            continue
        t = events.at_ms[ev]
        long = stays.dwell_ms[st] > _LONG_STAY_MS
        # Long stays: each against the events of its span.
        order_t = np.argsort(t, kind="stable")
        for s in st[long]:
            lo = np.searchsorted(t[order_t], stays.entered_ms[s] - slack_ms, side="left")
            hi = np.searchsorted(t[order_t], stays.end_ms[s] + slack_ms, side="right")
            hit = ev[order_t[lo:hi]]
            pairs_e.append(hit)
            pairs_s.append(np.full(hit.size, s, dtype=np.int64))
        # The others: entered within [t - slack - longest, t + slack], then check the end.
        short = st[~long]
        if short.size == 0:
            continue
        short = short[np.argsort(stays.entered_ms[short], kind="stable")]
        entered = stays.entered_ms[short]
        longest = int(stays.dwell_ms[short].max())
        lo = np.searchsorted(entered, t - slack_ms - longest, side="left")
        hi = np.searchsorted(entered, t + slack_ms, side="right")
        width = hi - lo
        if int(width.sum()) == 0:
            continue
        event_of = np.repeat(np.arange(ev.size), width)
        starts = np.repeat(lo - np.cumsum(width) + width, width)
        candidate = short[starts + np.arange(event_of.size)]
        covers = stays.end_ms[candidate] + slack_ms >= t[event_of]
        pairs_e.append(ev[event_of[covers]])
        pairs_s.append(candidate[covers])
    if not pairs_e:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(pairs_e).astype(np.int64), np.concatenate(pairs_s).astype(np.int64)


def attribute(stays: Stays, events: ZoneEvents, slack_ms: int) -> Ints:
    """Per event, the covering stay (``covering_stays``) that began last
    before it, or -1: whoever walked in most recently carried the garments in
    or tapped. A stay that began after the event (within the slack: the
    localizer is late) counts as beginning at the event."""
    out = np.full(events.zone.size, -1, dtype=np.int64)
    event, stay = covering_stays(stays, events, slack_ms)
    if event.size == 0:
        return out
    began = np.minimum(stays.entered_ms[stay], events.at_ms[event])
    order = np.lexsort((stay, began, event))  # within an event: latest beginning last
    event, stay = event[order], stay[order]
    last = np.ones(event.size, dtype=bool)
    last[:-1] = event[:-1] != event[1:]
    out[event[last]] = stay[last]
    return out


def trip_at(trips: Trips, device: Ints, at_ms: Ints, window_end_ms: Ints) -> Ints:
    """Per event of a known device, the trip whose [start, window end) holds
    it, or -1. Trips are ordered by (device, start), so the candidate is the
    device's last trip starting at or before the event."""
    if len(trips) == 0 or device.size == 0:
        return np.full(device.size, -1, dtype=np.int64)
    base = min(int(trips.start_ms.min()), int(at_ms.min()))
    span = max(int(trips.start_ms.max()), int(at_ms.max())) - base + 1
    key = trips.device * span + (trips.start_ms - base)
    probe = device * span + (at_ms - base)
    candidate = np.searchsorted(key, probe, side="right") - 1
    ok = candidate >= 0
    c = np.where(ok, candidate, 0)
    ok &= (trips.device[c] == device) & (at_ms < window_end_ms[c])
    return np.where(ok, c, -1).astype(np.int64)


def purchase_windows(trips: Trips, midnights: Ints) -> Ints:
    """Each trip's purchase window end: the store-local midnight after the
    trip ended, cut short at the same shopper's next trip."""
    if len(trips) == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.searchsorted(midnights, trips.end_ms, side="right")
    day_end = midnights[np.minimum(index, midnights.size - 1)]
    day_end = np.where(index < midnights.size, day_end, np.iinfo(np.int64).max)
    following = np.full(len(trips), np.iinfo(np.int64).max, dtype=np.int64)
    same = trips.device[1:] == trips.device[:-1]
    following[:-1] = np.where(same, trips.start_ms[1:], following[:-1])
    return np.minimum(day_end, following)


@dataclass(frozen=True, slots=True)
class FunnelFigures:
    steps: list[tuple[str, int, int]]  # (step, trips, distinct shoppers)
    purchased_trips: int
    try_on_events: int
    try_on_unattributed: int
    try_on_pairs: int
    try_on_purchased: int
    try_on_shoppers: int


STEPS = ("store_visit", "zone_visit", "engaged", "purchase")


def funnel(
    stays: Stays,
    trips: Trips,
    chosen_trips: Ints,
    browse_zones: Sequence[int],
    *,
    taps: ZoneEvents,
    app_taps: ShopperEvents,
    try_ons: ZoneEvents,
    purchases: ShopperEvents,
    slack_ms: int,
    midnights: Ints,
    from_ms: int,
    to_ms: int,
) -> FunnelFigures:
    """``browse_zones``: zone indices that count as a zone visit (not the
    entrance). ``try_ons`` carry their GTIN, ``purchases`` theirs."""
    n = len(trips)
    trip_of_stay = trips.of_stay()
    chosen = np.zeros(n, dtype=bool)
    chosen[chosen_trips] = True

    browsing = np.isin(stays.zone, np.asarray(browse_zones, dtype=np.int64)) & (
        stays.status != PASS_BY
    )
    zone_visit = np.zeros(n, dtype=bool)
    zone_visit[trip_of_stay[browsing]] = True

    engaged = np.zeros(n, dtype=bool)
    tap_stay = attribute(stays, taps, slack_ms)
    engaged[trip_of_stay[tap_stay[tap_stay >= 0]]] = True
    tap_ends = trips.end_ms + slack_ms
    app_trip = trip_at(trips, app_taps.device, app_taps.at_ms, tap_ends)
    engaged[app_trip[app_trip >= 0]] = True
    try_stay = attribute(stays, try_ons, slack_ms)
    try_event = np.flatnonzero(try_stay >= 0)
    try_trip = trip_of_stay[try_stay[try_event]]
    engaged[try_trip] = True

    windows = purchase_windows(trips, midnights)
    bought_trip = trip_at(trips, purchases.device, purchases.at_ms, windows)
    purchased = np.zeros(n, dtype=bool)
    purchased[bought_trip[bought_trip >= 0]] = True

    steps = []
    reached = chosen
    for name, condition in zip(STEPS, (chosen, zone_visit, engaged, purchased), strict=True):
        reached = reached & condition
        steps.append((name, int(reached.sum()), int(np.unique(trips.device[reached]).size)))

    # Try-on -> purchase: distinct (trip, GTIN) pairs of the chosen trips, each
    # pair as one integer (trip * number of GTINs + the GTIN's code).
    vocabulary: dict[str, int] = {}
    try_gtin = _gtin_codes(try_ons.gtin, try_ons.zone.size, vocabulary)[try_event]
    buy_gtin = _gtin_codes(purchases.gtin, purchases.device.size, vocabulary)
    width = len(vocabulary) + 1
    paired = (try_gtin >= 0) & chosen[try_trip]
    pairs = np.unique(try_trip[paired] * width + try_gtin[paired])
    is_bought = (bought_trip >= 0) & (buy_gtin >= 0)
    bought = np.unique(bought_trip[is_bought] * width + buy_gtin[is_bought])
    in_range = (try_ons.at_ms >= from_ms) & (try_ons.at_ms < to_ms)
    attributed = try_stay >= 0
    return FunnelFigures(
        steps=steps,
        purchased_trips=int((chosen & purchased).sum()),
        try_on_events=int(in_range.sum()),
        try_on_unattributed=int((in_range & ~attributed).sum()),
        try_on_pairs=int(pairs.size),
        try_on_purchased=int(np.intersect1d(pairs, bought, assume_unique=True).size),
        try_on_shoppers=int(np.unique(trips.device[pairs // width]).size),
    )


def _gtin_codes(gtins: tuple[str | None, ...], n: int, vocabulary: dict[str, int]) -> Ints:
    """Per event, its GTIN's code in ``vocabulary`` (added when new), -1 for
    none; all -1 when the events carry no GTINs."""
    if not gtins:
        return np.full(n, -1, dtype=np.int64)
    code = vocabulary.setdefault
    return np.asarray(
        [-1 if g is None else code(g, len(vocabulary)) for g in gtins], dtype=np.int64
    ).reshape(-1)
