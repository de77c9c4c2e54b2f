"""The analytics' reads over the in-memory stores: the ``AnalyticsStore`` port.

The SQL reads join what several parts write to one database; here the same
rows are read from the in-memory store of each part, given at construction.
Behaves as ``adapters.analytics_db.AnalyticsRepository``.
"""

from collections.abc import Sequence

from omnizone.server.adapters.memory.campaigns import MemoryCampaignStore
from omnizone.server.adapters.memory.ingest import MemoryRepository
from omnizone.server.adapters.memory.offers import MemoryOfferStore
from omnizone.server.adapters.memory.shoppers import MemoryShopperStore
from omnizone.server.domain.analytics import StayRow, Stays
from omnizone.server.service.ports.analytics import AnalyticsStore, Extent

DAY_MS = 86_400_000


class MemoryAnalyticsReads(AnalyticsStore):
    def __init__(
        self,
        ingest: MemoryRepository,
        campaigns: MemoryCampaignStore,
        shoppers: MemoryShopperStore,
        offers: MemoryOfferStore,
    ) -> None:
        self._ingest = ingest
        self._campaigns = campaigns
        self._shoppers = shoppers
        self._offers = offers

    def extent(self, store: str) -> Extent:
        """Earliest stay entry and latest event time of the store."""
        visits = self._ingest.visits_of(store)
        if not visits:
            heard = [s.last_heard_ms for s in self._ingest.presence_of(store).values()]
            return Extent(None, max(heard) if heard else None)
        first = min(v.entered_ms for v in visits)
        last_entry = max(v.entered_ms for v in visits)
        known = [last_entry]
        known += [s.last_heard_ms for s in self._ingest.presence_of(store).values()]
        # Stays end soon after they begin: only the last day's are looked at.
        known += [
            v.left_ms
            for v in visits
            if v.left_ms is not None and v.entered_ms >= last_entry - DAY_MS
        ]
        return Extent(first, max(known))

    def stays(
        self, store: str, from_ms: int, to_ms: int, exclude: Sequence[str] = ()
    ) -> list[StayRow]:
        """An open stay ends where its device was last placed in the zone, or,
        without such a presence (an interrupted run), where it began."""
        left_out = set(exclude)
        presence = self._ingest.presence_of(store)
        rows: list[StayRow] = []
        for v in self._ingest.visits_of(store):
            if not from_ms <= v.entered_ms < to_ms or v.device in left_out:
                continue
            end = v.left_ms
            if end is None:
                state = presence.get(v.device)
                placed = (
                    state is not None and state.zone == v.zone and state.entered_ms == v.entered_ms
                )
                end = state.last_in_zone_ms if state is not None and placed else v.entered_ms
            rows.append((v.device, v.zone, v.entered_ms, end, v.status))
        return rows

    def stay_columns(
        self,
        store: str,
        from_ms: int,
        to_ms: int,
        zones: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> Stays:
        return Stays.from_rows(self.stays(store, from_ms, to_ms, exclude), zones)

    def purchases_of(self, shoppers: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        return self._shoppers.purchases_of(shoppers)

    def nfc_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        return [
            (t.tap_point, t.at_ms)
            for t in self._ingest.taps_of(store)
            if from_ms <= t.at_ms < to_ms
        ]

    def app_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        found = {
            (r.shopper_id, r.at_ms): None
            for r in self._campaigns.log_rows()
            if r.store == store and r.trigger == "nfc_tap" and from_ms <= r.at_ms < to_ms
        }
        return list(found)

    def try_ons(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        return [
            (t.reader, t.gtin, t.at_ms)
            for t in self._ingest.try_ons_of(store)
            if t.event == "arrived" and from_ms <= t.at_ms < to_ms
        ]

    def purchases(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        rows: list[tuple[str, str | None, int]] = [
            (shopper, e.gtin, e.at_ms)
            for shopper, e in self._shoppers.all_purchases()
            if from_ms <= e.at_ms < to_ms
        ]
        rows += [
            (offer.shopper_id, offer.product_gtin, r.redeemed_ms)
            for offer, r in self._offers.redemptions_of(store)
            if from_ms <= r.redeemed_ms < to_ms
        ]
        return rows
