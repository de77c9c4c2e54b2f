"""The passer-by counts (issue 18, point 4) on every backend: in memory,
SQLite and PostgreSQL keep one number per store and hour, replace it, and
read a range of hours."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnizone.server.adapters.capture_db import PassersByRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.memory.passers_by import MemoryPassersBy
from omnizone.server.service.ports.passers_by import PassersByCounts

from .conftest import BACKENDS

H = 3_600_000


@pytest.fixture(params=BACKENDS)
def counts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PassersByCounts]:
    if request.param == "memory":
        yield MemoryPassersBy()
        return
    url = (
        f"sqlite:///{tmp_path / 'counts.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_schema_url")
    )
    repository = SqlRepository.from_url(url)
    try:
        yield PassersByRepository(repository.engine)
    finally:
        repository.close()


def test_one_count_per_store_and_hour_replaced_and_read_by_range(counts: PassersByCounts) -> None:
    assert counts.count("a", 0) is None and counts.counts("a", 0, 10 * H) == {}
    counts.save_count("a", H, 3, H + 1)
    counts.save_count("a", H, 5, H + 2)  # replaced, not added
    counts.save_count("a", 2 * H, 0, 2 * H)
    counts.save_count("b", H, 9, H)
    assert counts.count("a", H) == 5 and counts.count("a", 2 * H) == 0
    assert counts.counts("a", 0, 10 * H) == {H: 5, 2 * H: 0}
    assert counts.counts("a", H + 1, 10 * H) == {2 * H: 0}  # by the hour's start
    assert counts.counts("b", 0, 2 * H) == {H: 9}
