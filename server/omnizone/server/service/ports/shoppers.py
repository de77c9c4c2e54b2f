"""Shoppers, their consent history and profile events: the port.

The records are the domain's (``domain.identity``). Consent changes are
appended, never updated, so the history of what a shopper allowed and when
survives; erasing a shopper deletes all three kinds of rows at once.
Implemented by ``adapters.shopper_db.ShopperRepository`` and
``adapters.memory.MemoryShopperStore``.
"""

from collections.abc import Iterable, Sequence
from typing import Protocol

from omnizone.contract.eid import EidParams
from omnizone.server.domain.identity import Consent, ConsentChange, ProfileEvent, Shopper


class ShopperStore(Protocol):
    def add_shopper(self, shopper: Shopper) -> None: ...

    def shopper(self, shopper_id: str) -> Shopper | None: ...

    def shoppers_with_loyalty(self, loyalty_id: str) -> list[str]:
        """Ids of the shoppers who linked this loyalty id, sorted."""
        ...

    def set_loyalty(self, shopper_id: str, loyalty_id: str) -> bool:
        """False when there is no such shopper."""
        ...

    def devices(self) -> dict[str, EidParams]:
        """Shopper (device) id -> identity key, for every shopper."""
        ...

    def add_consent_changes(self, shopper_id: str, changes: Sequence[ConsentChange]) -> None: ...

    def consent_history(self, shopper_id: str) -> list[ConsentChange]:
        """Oldest first."""
        ...

    def current_consents(self) -> dict[str, Consent]:
        """Every shopper's current consent (defaults for those who never chose)."""
        ...

    def add_profile_events(
        self, shopper_ids: Iterable[str], events: Sequence[ProfileEvent]
    ) -> None:
        """The same events for each shopper, at once."""
        ...

    def profile_events(self, shopper_id: str) -> list[ProfileEvent]:
        """In the order they were received."""
        ...

    def profile_events_of(self, shopper_ids: Sequence[str]) -> dict[str, list[ProfileEvent]]:
        """Each shopper's events in the order received; shoppers without any are absent."""
        ...

    def loyalty_ids(self, shopper_ids: Sequence[str]) -> dict[str, str | None]:
        """Per known shopper, the linked loyalty id (unknown shoppers are absent)."""
        ...

    def erase(self, shopper_id: str) -> bool:
        """Delete every row about the shopper; False if there was none."""
        ...
