"""Shoppers, consent history and profile events in memory: the ``ShopperStore`` port.

Behaves as ``adapters.shopper_db.ShopperRepository``, foreign keys included:
consent changes and profile events of a shopper who is not stored are
refused, and nothing of the call is kept.
"""

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from omnizone.contract.eid import EidParams
from omnizone.server.domain.identity import (
    Consent,
    ConsentChange,
    ProfileEvent,
    Shopper,
    current_consent,
)
from omnizone.server.service.ports.shoppers import ShopperStore


class UnknownShopper(LookupError):
    """A row about a shopper who is not stored (the foreign key refuses it)."""


class MemoryShopperStore(ShopperStore):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._shoppers: dict[str, Shopper] = {}
        self._consents: dict[str, list[ConsentChange]] = {}
        self._events: dict[str, list[ProfileEvent]] = {}

    def add_shopper(self, shopper: Shopper) -> None:
        with self._lock:
            if shopper.id in self._shoppers:
                raise ValueError(f"shopper {shopper.id!r} is stored already")
            self._shoppers[shopper.id] = shopper

    def shopper(self, shopper_id: str) -> Shopper | None:
        with self._lock:
            return self._shoppers.get(shopper_id)

    def shoppers_with_loyalty(self, loyalty_id: str) -> list[str]:
        with self._lock:
            return sorted(s.id for s in self._shoppers.values() if s.loyalty_id == loyalty_id)

    def set_loyalty(self, shopper_id: str, loyalty_id: str) -> bool:
        with self._lock:
            found = self._shoppers.get(shopper_id)
            if found is None:
                return False
            self._shoppers[shopper_id] = replace(found, loyalty_id=loyalty_id)
            return True

    def devices(self) -> dict[str, EidParams]:
        with self._lock:
            return {s.id: s.eid for s in self._shoppers.values()}

    def add_consent_changes(self, shopper_id: str, changes: Sequence[ConsentChange]) -> None:
        with self._lock:
            self._known(shopper_id)
            self._consents.setdefault(shopper_id, []).extend(changes)

    def consent_history(self, shopper_id: str) -> list[ConsentChange]:
        with self._lock:
            return list(self._consents.get(shopper_id, []))

    def current_consents(self) -> dict[str, Consent]:
        with self._lock:
            return {s: current_consent(self._consents.get(s, [])) for s in self._shoppers}

    def add_profile_events(
        self, shopper_ids: Iterable[str], events: Sequence[ProfileEvent]
    ) -> None:
        shoppers = list(shopper_ids)
        with self._lock:
            for shopper_id in shoppers:
                self._known(shopper_id)
            for shopper_id in shoppers:
                self._events.setdefault(shopper_id, []).extend(events)

    def profile_events(self, shopper_id: str) -> list[ProfileEvent]:
        return self.profile_events_of([shopper_id]).get(shopper_id, [])

    def profile_events_of(self, shopper_ids: Sequence[str]) -> dict[str, list[ProfileEvent]]:
        with self._lock:
            return {s: list(self._events[s]) for s in shopper_ids if self._events.get(s)}

    def loyalty_ids(self, shopper_ids: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            return {s: self._shoppers[s].loyalty_id for s in shopper_ids if s in self._shoppers}

    def erase(self, shopper_id: str) -> bool:
        with self._lock:
            self._consents.pop(shopper_id, None)
            self._events.pop(shopper_id, None)
            return self._shoppers.pop(shopper_id, None) is not None

    def purchases_of(self, shoppers: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """Each shopper's purchases as (gtin, at_ms), in the order received."""
        found: dict[str, list[tuple[str, int]]] = {}
        with self._lock:
            for shopper in dict.fromkeys(shoppers):
                for e in self._events.get(shopper, []):
                    if e.type == "purchase":
                        found.setdefault(shopper, []).append((e.gtin, e.at_ms))
        return found

    def all_purchases(self) -> list[tuple[str, ProfileEvent]]:
        """(shopper, event) of every purchase (what the in-memory analytics read)."""
        with self._lock:
            return [
                (shopper, e)
                for shopper, events in self._events.items()
                for e in events
                if e.type == "purchase"
            ]

    def _known(self, shopper_id: str) -> None:
        if shopper_id not in self._shoppers:
            raise UnknownShopper(f"no shopper {shopper_id!r}")
