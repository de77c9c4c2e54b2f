"""The analytics' reads: the rows of one store and time range, as plain tuples.

SQLAlchemy Core, no ORM objects: a week holds a few hundred thousand stays
and building an object per row would cost more than the query. Every query
is a range scan of an index on (store, time); the indexes this part needs
on other parts' tables are declared here and created when missing.
"""

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Engine, Index, Table, and_, func, select

from omnizone.server.adapters.campaign_db import DecisionRow
from omnizone.server.adapters.db import (
    Base,
    DevicePresenceRow,
    NfcTapRow,
    TryOnRow,
    VisitRow,
    in_chunks,
)
from omnizone.server.adapters.offer_db import OfferRow, RedemptionRow
from omnizone.server.adapters.shopper_db import ProfileEventRow
from omnizone.server.adapters.stay_rollup_db import StayRollup, stays_query
from omnizone.server.domain.analytics import StayRow, Stays
from omnizone.server.service.ports.analytics import AnalyticsStore, Extent

_visits = VisitRow.__table__
_presence = DevicePresenceRow.__table__
_taps = NfcTapRow.__table__
_try_ons = TryOnRow.__table__
_decisions = DecisionRow.__table__
_events = ProfileEventRow.__table__
_offers = OfferRow.__table__
_redemptions = RedemptionRow.__table__

#: Indexes the analytics' range scans need. The one on visits covers every
#: column the stays query reads, so a week's scan never touches the table.
INDEXES = (
    Index(
        "ix_visits_analytics",
        VisitRow.store,
        VisitRow.entered_ms,
        VisitRow.zone,
        VisitRow.status,
        VisitRow.left_ms,
        VisitRow.device,
    ),
    Index("ix_nfc_taps_store_time", NfcTapRow.store, NfcTapRow.at_ms),
    Index("ix_try_ons_store_time", TryOnRow.store, TryOnRow.at_ms),
    Index("ix_profile_events_type_time", ProfileEventRow.type, ProfileEventRow.at_ms),
    Index(
        "ix_decisions_store_trigger_time", DecisionRow.store, DecisionRow.trigger, DecisionRow.at_ms
    ),
    Index("ix_redemptions_store_time", RedemptionRow.store, RedemptionRow.redeemed_ms),
    # The campaign report's receipt and redemption counts of one campaign
    # (without it SQLite scans every receipt for each campaign: migration 0014).
    Index("ix_offers_campaign", OfferRow.campaign_id),
)

TABLES: list[Table] = [
    Base.metadata.tables[name]
    for name in (
        "received_messages",
        "visits",
        "device_presence",
        "nfc_taps",
        "try_ons",
        "shoppers",
        "profile_events",
        "offer_decisions",
        "offers",
        "offer_redemptions",
    )
]


class AnalyticsRepository(AnalyticsStore):
    """Read-only queries over the server's database (any engine of ``db.make_engine``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=TABLES)
        for index in INDEXES:
            index.create(engine, checkfirst=True)
        self.days = StayRollup(engine)

    def extent(self, store: str) -> Extent:
        """Earliest stay entry and latest event time of the store."""
        with self.engine.connect() as conn:
            # Two queries: SQLite answers a lone min() or max() from the index's
            # ends, but both in one query scan every stay of the store.
            first = conn.scalar(
                select(func.min(_visits.c.entered_ms)).where(_visits.c.store == store)
            )
            last_entry = conn.scalar(
                select(func.max(_visits.c.entered_ms)).where(_visits.c.store == store)
            )
            heard = conn.scalar(
                select(func.max(_presence.c.last_heard_ms)).where(_presence.c.store == store)
            )
            last_left = None
            if last_entry is not None:
                # Stays end soon after they begin: look only at the last day's.
                last_left = conn.scalar(
                    select(func.max(_visits.c.left_ms)).where(
                        _visits.c.store == store, _visits.c.entered_ms >= last_entry - 86_400_000
                    )
                )
        known = [int(v) for v in (last_entry, heard, last_left) if v is not None]
        return Extent(None if first is None else int(first), max(known) if known else None)

    def stays(
        self, store: str, from_ms: int, to_ms: int, exclude: Sequence[str] = ()
    ) -> list[StayRow]:
        """Stays that entered in [from_ms, to_ms), as (device, zone, entered_ms,
        end_ms, status). An open stay ends, for now, where its device was last
        placed in the zone; one whose device has no such presence any more (an
        interrupted run) ends where it began."""
        query = stays_query(store, from_ms, to_ms, exclude)
        with self.engine.connect() as conn:
            # The driver's own tuples: plain ints and strings, and a week of
            # stays costs half as much without a Row object per stay.
            return cast(list[StayRow], conn.execute(query).cursor.fetchall())

    def stay_columns(
        self,
        store: str,
        from_ms: int,
        to_ms: int,
        zones: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> Stays:
        """``Stays.from_rows(self.stays(...), zones)``, closed days from the
        daily roll-up (``adapters/stay_rollup_db.py``)."""
        return self.days.stays(store, from_ms, to_ms, zones, exclude)

    def erase_device(self, device: str) -> int:
        """Erasure: the rolled-up days that name the device."""
        return self.days.erase_device(device)

    def purchases_of(self, shoppers: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """Every purchase of each shopper as (gtin, at_ms), in a few queries
        (the campaign report's conversions)."""
        e = _events.c
        found: dict[str, list[tuple[str, int]]] = {}
        with self.engine.connect() as conn:
            for chunk in in_chunks(shoppers):
                # The type is checked here, not in SQL: with it there SQLite
                # scans every purchase by (type, at_ms) for each chunk instead
                # of looking the shoppers up (10 s a month's campaign report).
                query = select(e.shopper_id, e.gtin, e.at_ms, e.type).where(e.shopper_id.in_(chunk))
                for shopper, gtin, at_ms, kind in conn.execute(query).cursor.fetchall():
                    if kind == "purchase":
                        found.setdefault(shopper, []).append((gtin, int(at_ms)))
        return found

    def purchases_between(
        self, from_ms: int | None, to_ms: int | None
    ) -> dict[str, list[tuple[str, int]]]:
        """Every purchase made in [from_ms, to_ms) (None: no bound) as (gtin,
        at_ms) per shopper: one range scan of (type, at_ms), for a report whose
        conversions all fall in its range."""
        e = _events.c
        query = select(e.shopper_id, e.gtin, e.at_ms).where(e.type == "purchase")
        if from_ms is not None:
            query = query.where(e.at_ms >= from_ms)
        if to_ms is not None:
            query = query.where(e.at_ms < to_ms)
        found: dict[str, list[tuple[str, int]]] = {}
        with self.engine.connect() as conn:
            for shopper, gtin, at_ms in conn.execute(query).cursor.fetchall():
                found.setdefault(shopper, []).append((gtin, int(at_ms)))
        return found

    def nfc_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        """(tap point, at_ms) of the reader taps in the range."""
        t = _taps.c
        query = select(t.tap_point, t.at_ms).where(
            t.store == store, t.at_ms >= from_ms, t.at_ms < to_ms
        )
        with self.engine.connect() as conn:
            return [(p, int(at)) for p, at in conn.execute(query).cursor.fetchall()]

    def app_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        """(shopper, at_ms) of the shopper app's taps, from the decision log
        (one row per campaign that considered the tap: distinct here)."""
        d = _decisions.c
        query = (
            select(d.shopper_id, d.at_ms)
            .where(d.store == store, d.trigger == "nfc_tap", d.at_ms >= from_ms, d.at_ms < to_ms)
            .distinct()
        )
        with self.engine.connect() as conn:
            return [(s, int(at)) for s, at in conn.execute(query).cursor.fetchall()]

    def try_ons(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        """(reader, gtin, at_ms) of garments carried into a fitting room."""
        t = _try_ons.c
        query = select(t.reader, t.gtin, t.at_ms).where(
            t.store == store, t.event == "arrived", t.at_ms >= from_ms, t.at_ms < to_ms
        )
        with self.engine.connect() as conn:
            return [(r, g, int(at)) for r, g, at in conn.execute(query).cursor.fetchall()]

    def purchases(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        """(shopper, gtin, at_ms): profile purchases (any channel; they carry no
        store) and redemptions of this store's offers, in the range."""
        e = _events.c
        bought = select(e.shopper_id, e.gtin, e.at_ms).where(
            e.type == "purchase", e.at_ms >= from_ms, e.at_ms < to_ms
        )
        r, o = _redemptions.c, _offers.c
        redeemed = (
            select(o.shopper_id, o.content["product_gtin"].as_string(), r.redeemed_ms)
            .select_from(_redemptions.join(_offers, and_(o.offer_id == r.offer_id)))
            .where(r.store == store, r.redeemed_ms >= from_ms, r.redeemed_ms < to_ms)
        )
        with self.engine.connect() as conn:
            rows = [(s, g, int(at)) for s, g, at in conn.execute(bought).cursor.fetchall()]
            rows += [(s, g, int(at)) for s, g, at in conn.execute(redeemed)]
        return rows
