"""Every storage port of the service layer, in memory (no database library).

For tests and replays that need no database: each class behaves as its SQL
counterpart, which the repository contract tests (tests/server/repositories)
check by running the same tests against both. ``MemoryStorage`` is one set of
them, the analytics reading the others, as the SQL ones share one database.
"""

from dataclasses import dataclass, field

from omnizone.server.adapters.memory.analytics import MemoryAnalyticsReads
from omnizone.server.adapters.memory.campaigns import MemoryCampaignStore
from omnizone.server.adapters.memory.ingest import DuplicateKey, MemoryRepository
from omnizone.server.adapters.memory.layouts import MemoryLayoutStore
from omnizone.server.adapters.memory.offers import MemoryOfferStore
from omnizone.server.adapters.memory.shoppers import MemoryShopperStore, UnknownShopper

__all__ = [
    "DuplicateKey",
    "MemoryAnalyticsReads",
    "MemoryCampaignStore",
    "MemoryLayoutStore",
    "MemoryOfferStore",
    "MemoryRepository",
    "MemoryShopperStore",
    "MemoryStorage",
    "UnknownShopper",
]


@dataclass
class MemoryStorage:
    """One server's worth of in-memory stores."""

    ingest: MemoryRepository = field(default_factory=MemoryRepository)
    campaigns: MemoryCampaignStore = field(default_factory=MemoryCampaignStore)
    layouts: MemoryLayoutStore = field(default_factory=MemoryLayoutStore)
    offers: MemoryOfferStore = field(default_factory=MemoryOfferStore)
    shoppers: MemoryShopperStore = field(default_factory=MemoryShopperStore)
    analytics: MemoryAnalyticsReads = field(init=False)

    def __post_init__(self) -> None:
        self.analytics = MemoryAnalyticsReads(
            self.ingest, self.campaigns, self.shoppers, self.offers
        )
