"""The same repository on PostgreSQL, on a private server the tests start
(tests/postgres_instance.py)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.service.ingest import IngestService, Outcome
from omnizone.store import StorePlan

from .conftest import DEVICE_A, STORE, T0, ble


@pytest.fixture
def pg_repo(postgres_schema_url: str) -> Iterator[SqlRepository]:
    repo = SqlRepository.from_url(postgres_schema_url)
    try:
        yield repo
    finally:
        repo.close()


def test_ingest_visits_and_stats_on_postgres(plan: StorePlan, pg_repo: SqlRepository) -> None:
    service = IngestService({plan.id: plan}, pg_repo)
    for t in range(0, 15):
        outcome = service.handle(*ble("gw-shoes", t, T0 + t * 1000, {DEVICE_A: -60}), T0)
        assert outcome.outcome is Outcome.ACCEPTED
    for t in range(15, 30):
        service.handle(*ble("gw-denim", t, T0 + t * 1000, {DEVICE_A: -60}), T0)
    duplicate = service.handle(*ble("gw-shoes", 3, T0 + 3000, {DEVICE_A: -60}), T0)
    assert duplicate.outcome is Outcome.DUPLICATE
    service.handle("omnizone/v1/paris-rivoli/gw-shoes/ble", b"\x00", T0)
    stats = pg_repo.ingest_stats()
    assert (stats.ingested, stats.duplicates, stats.dead_lettered, stats.gaps) == (30, 1, 1, 0)
    summary = {s.zone: s for s in pg_repo.zone_summaries(STORE)}
    assert summary["shoes"].visits == 1 and summary["shoes"].mean_dwell_s == 14.0
    assert pg_repo.presence_by_zone(STORE) == {"denim": 1}
    assert pg_repo.dead_letters(5)[0].payload == b"\x00"
    # sightings go in by COPY on PostgreSQL: every one, with its values
    with pg_repo.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT gateway, device, window_start_ms, rssi_mean FROM ble_sightings")
        ).all()
    assert len(rows) == 30
    assert ("gw-shoes", DEVICE_A, T0, -60.0) in [tuple(r) for r in rows]
