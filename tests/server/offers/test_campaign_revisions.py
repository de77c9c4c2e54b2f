"""Campaign revisions below the API. The repository's compare-and-set holds
without the engine's lock: two writers that loaded the same revision (as two
server processes on one database would be) cannot both save, on SQLite and
on PostgreSQL. The engine checks a write's condition against the database,
and a pause never undoes an edit it did not see."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from omnizone.server.adapters.campaign_db import (
    CampaignRepository,
    RevisionMismatch,
    StoredCampaign,
)
from omnizone.server.adapters.db import make_engine
from omnizone.server.domain.offers import Campaign
from omnizone.server.service.campaigns import CampaignChanged
from omnizone.store import StorePlan
from tests.server.offers.test_engine import Store, _campaign


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def engines(database_url: str) -> Iterator[list[Engine]]:
    """Four engines on one database: four writers with connections of their own."""
    made = [make_engine(database_url) for _ in range(4)]
    yield made
    for engine in made:
        engine.dispose()


def _titled(title: str) -> Campaign:
    return _campaign(content={"title": title, "body": "10% off"})


def test_a_save_conditional_on_a_revision_is_a_compare_and_set(engines: list[Engine]) -> None:
    one, other = CampaignRepository(engines[0]), CampaignRepository(engines[1])
    assert one.save_campaign(_titled("Created"), 10).revision == 1
    # Both loaded revision 1; the first to save wins, the second is told what is there.
    assert one.save_campaign(_titled("One"), 20, expected_revision=1).revision == 2
    with pytest.raises(RevisionMismatch) as refused:
        other.save_campaign(_titled("Other"), 20, expected_revision=1)
    assert refused.value.current == StoredCampaign(_titled("One"), 2, 20)
    assert other.stored_campaign("hello") == StoredCampaign(_titled("One"), 2, 20)
    # Saved in the same millisecond, the revision still tells the versions apart.
    assert other.save_campaign(_titled("Other"), 20, expected_revision=2).revision == 3
    # 0: create only.
    with pytest.raises(RevisionMismatch) as exists:
        one.save_campaign(_titled("Again"), 30, expected_revision=0)
    assert exists.value.current is not None and exists.value.current.revision == 3
    # A condition on a campaign that does not exist fails too.
    with pytest.raises(RevisionMismatch) as absent:
        one.save_campaign(_campaign(id="nope"), 30, expected_revision=1)
    assert absent.value.current is None and other.stored_campaign("nope") is None
    # No condition: the next revision, whatever is stored.
    assert one.save_campaign(_titled("Script"), 40).revision == 4
    assert [(s.campaign.id, s.revision) for s in other.stored_campaigns()] == [("hello", 4)]


def test_of_writers_racing_from_the_same_revision_exactly_one_saves(
    engines: list[Engine],
) -> None:
    CampaignRepository(engines[0]).save_campaign(_titled("Created"), 10)
    start = threading.Barrier(len(engines))
    outcomes: dict[int, int | str] = {}

    def write(i: int, engine: Engine) -> None:
        repository = CampaignRepository(engine)
        start.wait()
        try:
            outcomes[i] = repository.save_campaign(
                _titled(f"Writer {i}"), 20, expected_revision=1
            ).revision
        except RevisionMismatch:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=write, args=(i, e)) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in outcomes.items() if outcome == 2]
    assert len(winners) == 1 and sorted(outcomes.values(), key=str).count("refused") == 3
    stored = CampaignRepository(engines[0]).stored_campaign("hello")
    assert stored is not None and stored.revision == 2
    assert stored.campaign.content.title == f"Writer {winners[0]}"


def test_an_engine_checks_against_the_database_and_a_pause_keeps_an_edit_made_elsewhere(
    plan: StorePlan, tmp_path: Path
) -> None:
    one = Store(plan, tmp_path)
    one.campaigns.save_campaign(_titled("Created"))
    other = Store(plan, tmp_path)  # a second process on the same database
    try:
        assert other.campaigns.stored_campaign("hello").revision == 1
        edited = one.campaigns.put_campaign(
            _titled("Edited"), precondition=lambda c: c is not None and c.revision == 1
        )
        assert edited.revision == 2
        # The other engine still has revision 1 in memory. Its pause starts
        # from what the database holds: the edit stays.
        assert other.campaigns.campaign("hello").content.title == "Created"
        paused = other.campaigns.set_status("hello", "paused")
        assert paused.revision == 3 and paused.campaign.status == "paused"
        assert paused.campaign.content.title == "Edited"
        # A condition is checked against the database too, not the engine's memory.
        with pytest.raises(CampaignChanged) as refused:
            one.campaigns.put_campaign(
                _titled("Stale"), precondition=lambda c: c is not None and c.revision == 2
            )
        assert refused.value.current == paused
        assert one.campaigns.stored_campaign("hello") == paused
    finally:
        one.delivery.close()
        other.delivery.close()
