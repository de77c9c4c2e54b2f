"""What the analytics read: one store's rows in one time range, as plain tuples.

The reads span what other parts write (visits and presence from ingest, taps
and try-ons, the decision log, profile events, redeemed offers), so one
implementation reads them all: ``adapters.analytics_db.AnalyticsRepository``
over the shared database, ``adapters.memory.MemoryAnalyticsReads`` over the
in-memory stores. Rows come in no particular order.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from omnizone.server.domain.analytics import StayRow, Stays


@dataclass(frozen=True, slots=True)
class Extent:
    """Earliest stay entry and latest event time of a store (None: nothing stored)."""

    first_ms: int | None
    last_ms: int | None


class AnalyticsReads(Protocol):
    """What ``service.analytics.AnalyticsService`` reads."""

    def extent(self, store: str) -> Extent: ...

    def stays(
        self, store: str, from_ms: int, to_ms: int, exclude: Sequence[str] = ()
    ) -> list[StayRow]:
        """Stays that entered in [from_ms, to_ms), devices in ``exclude`` left out."""
        ...

    def stay_columns(
        self,
        store: str,
        from_ms: int,
        to_ms: int,
        zones: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> Stays:
        """``Stays.from_rows(stays(store, from_ms, to_ms, exclude), zones)``, row
        for row; an adapter may serve closed days from a roll-up."""
        ...

    def nfc_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        """(tap point, at_ms) of the reader taps in the range."""
        ...

    def app_taps(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, int]]:
        """Distinct (shopper, at_ms) of the shopper app's taps (from the decision log)."""
        ...

    def try_ons(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        """(reader, gtin, at_ms) of garments carried into a fitting room."""
        ...

    def purchases(self, store: str, from_ms: int, to_ms: int) -> list[tuple[str, str | None, int]]:
        """(shopper, gtin, at_ms): profile purchases (any channel) and redemptions
        of this store's offers, in the range."""
        ...


class PurchaseReads(Protocol):
    """What the campaign report reads to count conversions."""

    def purchases_of(self, shoppers: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """Every purchase of each shopper as (gtin, at_ms); shoppers without any are absent."""
        ...


class AnalyticsStore(AnalyticsReads, PurchaseReads, Protocol):
    """Both reads, as one adapter serves them."""
