"""One set of storage ports per backend: in memory, SQLite (a file) and
PostgreSQL (a fresh schema on the tests' private server). Every test here
takes ``storage`` and so runs three times, once per backend: what one
backend does and another does not fails there."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from omnizone.server.adapters.analytics_db import AnalyticsRepository
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.layout_db import LayoutRepository
from omnizone.server.adapters.memory import MemoryStorage
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.service.ports import (
    AnalyticsStore,
    CampaignStore,
    LayoutStore,
    LocationData,
    OfferStorage,
    Repository,
    ShopperStore,
)

BACKENDS = ("memory", "sqlite", "postgres")


class IngestStorage(Repository, LocationData, Protocol):
    """The ingest repository with the location rows' export, erasure and retention."""


@dataclass
class Storage:
    backend: str
    ingest: IngestStorage
    campaigns: CampaignStore
    layouts: LayoutStore
    offers: OfferStorage
    shoppers: ShopperStore
    analytics: AnalyticsStore


def _sql(backend: str, url: str) -> tuple[Storage, SqlRepository]:
    ingest = SqlRepository.from_url(url)
    engine = ingest.engine
    storage = Storage(
        backend,
        ingest,
        CampaignRepository(engine),
        LayoutRepository(engine),
        OfferRepository(engine),
        ShopperRepository(engine),
        AnalyticsRepository(engine),
    )
    return storage, ingest


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    backend: str = request.param
    if backend == "memory":
        memory = MemoryStorage()
        yield Storage(
            backend,
            memory.ingest,
            memory.campaigns,
            memory.layouts,
            memory.offers,
            memory.shoppers,
            memory.analytics,
        )
        return
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    storage, repository = _sql(backend, url)
    try:
        yield storage
    finally:
        repository.close()
