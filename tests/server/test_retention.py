"""Raw sightings are kept for ``sighting_retention_days`` only: the old ones
are deleted (in batches), the recent ones, visits and dwell stay; on SQLite
and on a private PostgreSQL, and by a started server."""

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnizone.server.adapters.db import BleSightingRow, SqlRepository, VisitRow
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.retention import DAY_MS, SightingRetention
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, T0, ble


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> SqlRepository:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    repository = SqlRepository.from_url(url)
    request.addfinalizer(repository.close)
    return repository


def _sightings(repo: SqlRepository) -> list[int]:
    with Session(repo.engine) as session:
        starts = session.scalars(select(BleSightingRow.window_start_ms))
        return sorted(starts)


def _count(repo: SqlRepository, table: type) -> int:
    with Session(repo.engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _ingest_days(plan: StorePlan, repo: SqlRepository, days: list[int]) -> None:
    service = IngestService({plan.id: plan}, repo)
    for seq, day in enumerate(days):
        at = T0 + day * DAY_MS
        service.handle(*ble("gw-denim", seq, at, {DEVICE_A: -60, DEVICE_B: -65}), at)


def test_old_sightings_go_and_recent_ones_stay(plan: StorePlan, repo: SqlRepository) -> None:
    _ingest_days(plan, repo, [0, 1, 2, 40, 41])
    visits_before = _count(repo, VisitRow)
    retention = SightingRetention(repo.prune_sightings, 30, clock_ms=lambda: T0 + 45 * DAY_MS)
    assert retention.run_once() == 6  # days 0, 1 and 2, two devices each
    kept = [T0 + day * DAY_MS - 1000 for day in (40, 40, 41, 41)]  # window starts
    assert _sightings(repo) == kept
    assert _count(repo, VisitRow) == visits_before  # what analytics use is kept
    assert retention.run_once() == 0


def test_pruning_works_in_batches(plan: StorePlan, repo: SqlRepository) -> None:
    _ingest_days(plan, repo, list(range(7)))
    window_start_day_5 = T0 + 5 * DAY_MS - 1000
    assert repo.prune_sightings(window_start_day_5, batch=3) == 10  # days 0-4, not day 5
    assert len(_sightings(repo)) == 4


def test_zero_days_is_refused_by_the_service_and_means_keep_forever_in_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        SightingRetention(lambda _cutoff: 0, 0)


def test_a_started_server_prunes_and_stops_its_thread(plan: StorePlan, tmp_path: Path) -> None:
    import threading

    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings

    url = f"sqlite:///{tmp_path / 'server.db'}"
    repository = SqlRepository.from_url(url)
    now = time.time_ns() // 1_000_000
    old_day = (now - 40 * DAY_MS - T0) // DAY_MS
    _ingest_days(plan, repository, [int(old_day), int(old_day) + 39])
    repository.close()
    settings = ServerSettings(
        database_url=url,
        api_keys={"key-1234567890abcdef": ["read"]},
        api_port=0,
        mqtt_port=1,  # no broker: ingest keeps retrying in the background
        sighting_retention_days=30,
    )
    with ServerRuntime(settings) as runtime:
        deadline = time.monotonic() + 30
        while len(_sightings(runtime.repository)) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_sightings(runtime.repository)) == 2  # the recent day's two devices
    assert not any(t.name == "sighting-retention" for t in threading.enumerate())
