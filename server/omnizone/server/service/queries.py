"""Read-side use cases behind the API: occupancy, visits, zone summaries, stats.

They know the store plans (zone names and order) and ask the repository for
the numbers; unknown stores and zones raise ``NotFound`` with a clear message.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.service.ports import (
    DeadLetter,
    IngestStats,
    Repository,
    VisitRecord,
    ZoneSummary,
)
from omnizone.store import StorePlan


def plan_of(stores: Mapping[str, StorePlan], store: str) -> StorePlan:
    """The store's plan; ``NotFound`` names the stores there are."""
    try:
        return stores[store]
    except KeyError:
        known = ", ".join(sorted(stores)) or "none"
        raise NotFound(f"unknown store {store!r} (known: {known})") from None


class NotFound(LookupError):
    """A store or zone the caller named does not exist; the text says which."""


@dataclass(frozen=True, slots=True)
class ZoneOccupancy:
    zone: str
    name: str
    devices: int


@dataclass(frozen=True, slots=True)
class Occupancy:
    store: str
    at_ms: int
    zones: list[ZoneOccupancy]


class StoreQueries:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        repository: Repository,
        event_time: Callable[[str], int | None] | None = None,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """`clock_ms` dates occupancy when the store has no event time yet."""
        self._stores = stores  # the running plans (RunningStores in the server), not a copy
        self._repo = repository
        self._event_time = event_time
        self._clock_ms = clock_ms

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._stores

    def plan(self, store: str) -> StorePlan:
        return plan_of(self._stores, store)

    def occupancy(self, store: str) -> Occupancy:
        """Devices with an open stay per zone, at the store's event time."""
        plan = self.plan(store)
        counts = self._repo.presence_by_zone(store)
        at_ms = (self._event_time(store) if self._event_time else None) or (
            self._repo.latest_event_ms(store)
        )
        if at_ms is None:
            at_ms = self._clock_ms()
        zones = [ZoneOccupancy(z.id, z.name, counts.get(z.id, 0)) for z in plan.zones]
        return Occupancy(store, at_ms, zones)

    def recent_visits(
        self, store: str, limit: int = 50, zone: str | None = None
    ) -> list[VisitRecord]:
        plan = self.plan(store)
        if zone is not None and zone not in {z.id for z in plan.zones}:
            raise NotFound(f"store {store!r} has no zone {zone!r}")
        return self._repo.recent_visits(store, limit, zone)

    def zone_summaries(self, store: str) -> list[ZoneSummary]:
        """One row per zone of the plan, zeros where nothing happened yet."""
        plan = self.plan(store)
        found = {row.zone: row for row in self._repo.zone_summaries(store)}
        return [found.get(z.id, ZoneSummary(z.id, 0, 0, 0, None)) for z in plan.zones]

    def ingest_stats(self) -> IngestStats:
        return self._repo.ingest_stats()

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self._repo.dead_letters(limit)
