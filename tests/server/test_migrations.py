"""Schema migrations (Alembic): a new database is built by the migrations, an
old one made by ``create_all`` is recognised and stamped, the models and the
migrations agree (a model changed without a migration fails here), on SQLite
and on a private PostgreSQL."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, inspect, text
from typer.testing import CliRunner

from omnizone.server.adapters import schema
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository, create_schema, make_engine
from omnizone.suite.cli import app

DEAD_LETTER = (
    "INSERT INTO dead_letters (received_ms, topic, payload, reason) VALUES (1, 't', :p, 'r')"
)


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_the_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    assert schema.current_revision(engine) is None
    assert schema.upgrade(engine) == schema.head_revision()
    assert schema.differences(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert set(schema.server_metadata().tables) <= tables and "alembic_version" in tables


def test_upgrading_twice_changes_nothing(engine: Engine) -> None:
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(DEAD_LETTER),
            {"p": b"x"},
        )
    assert schema.upgrade(engine) == schema.head_revision()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM dead_letters")).scalar() == 1


def test_a_database_from_before_migrations_is_stamped_and_keeps_its_rows(engine: Engine) -> None:
    create_schema(engine)  # what every version before migrations did
    with engine.begin() as connection:
        connection.execute(
            text(DEAD_LETTER),
            {"p": b"kept"},
        )
    assert schema.current_revision(engine) is None
    assert schema.upgrade(engine) == schema.head_revision()
    assert schema.differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT payload FROM dead_letters")).scalar() == b"kept"


CAMPAIGN = {
    "id": "denim-10",
    "name": "Denim",
    "store": "paris-rivoli",
    "trigger": {"kind": "zone_entered", "zones": ["denim"]},
    "content": {"title": "10% off denim"},
}


@pytest.mark.parametrize("versioned", [True, False], ids=["at-0001", "before-migrations"])
def test_campaigns_stored_before_revisions_start_at_revision_1(
    engine: Engine, versioned: bool
) -> None:
    """0002 adds the campaigns' revision to a database at 0001, and to one from
    before migrations with the old campaigns table; the rows are kept."""
    schema.upgrade(engine, "0001")
    if not versioned:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
    assert "revision" not in {c["name"] for c in inspect(engine).get_columns("campaigns")}
    old = sa.table(
        "campaigns",
        sa.column("id"),
        sa.column("store"),
        sa.column("body", sa.JSON),
        sa.column("updated_ms"),
    )
    with engine.begin() as connection:
        connection.execute(
            sa.insert(old).values(id="denim-10", store="paris-rivoli", body=CAMPAIGN, updated_ms=5)
        )
    assert schema.upgrade(engine) == schema.head_revision()
    assert schema.differences(engine) == []
    campaigns = CampaignRepository(engine)
    (stored,) = campaigns.stored_campaigns()
    assert (stored.campaign.name, stored.revision, stored.updated_ms) == ("Denim", 1, 5)
    assert campaigns.save_campaign(stored.campaign, 6, expected_revision=1).revision == 2


def test_a_model_changed_without_a_migration_shows_as_a_difference(tmp_path: Path) -> None:
    engine = create_engine(_sqlite(tmp_path))
    schema.upgrade(engine)
    with engine.begin() as connection:  # as if a model had gained this index and no migration
        connection.execute(text("DROP INDEX ix_presence_store_zone"))
    drift = schema.differences(engine)
    assert drift and "ix_presence_store_zone" in str(drift)
    engine.dispose()


def test_the_migrate_command_upgrades_and_checks(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    SqlRepository.from_url(url).close()  # an old-style database
    runner = CliRunner()
    check = runner.invoke(app, ["server", "migrate", "--database-url", url, "--check"])
    assert check.exit_code == 1 and json.loads(check.stdout)["current"] is None
    done = runner.invoke(app, ["server", "migrate", "--database-url", url])
    assert done.exit_code == 0, done.output
    head = schema.head_revision()
    assert json.loads(done.stdout) == {"from": None, "to": head, "head": head}
    check = runner.invoke(app, ["server", "migrate", "--database-url", url, "--check"])
    assert check.exit_code == 0 and json.loads(check.stdout)["up_to_date"] is True
    bad = runner.invoke(app, ["server", "migrate", "--database-url", "nosuchdb://x"])
    assert bad.exit_code == 2


def _old_shopper(engine: Engine, shopper_id: str) -> None:
    old = sa.table(
        "shoppers",
        sa.column("id"),
        sa.column("store"),
        sa.column("token_hash"),
        sa.column("eid_key", sa.LargeBinary),
        sa.column("created_ms"),
    )
    with engine.begin() as connection:
        connection.execute(
            sa.insert(old).values(
                id=shopper_id,
                store="paris-rivoli",
                token_hash="0" * 64,
                eid_key=bytes(range(16)),
                created_ms=5,
            )
        )


@pytest.mark.parametrize("origin", ["at-0004", "before-migrations"])
def test_shoppers_from_before_0005_get_eid_parameters_of_their_own(
    engine: Engine, origin: str
) -> None:
    """0005 gives every phone registered before it its own rotation exponent and
    beacon clock, whether the columns are new (a database at 0004) or were
    made by today's models with their defaults (a database from before migrations)."""
    from omnizone.server.adapters.shopper_db import ShopperRepository

    if origin == "at-0004":
        schema.upgrade(engine, "0004")
    else:
        create_schema(engine)
    shoppers = [f"{n:032x}" for n in range(20)]
    for shopper_id in shoppers:
        _old_shopper(engine, shopper_id)
    assert schema.upgrade(engine) == schema.head_revision()
    assert schema.differences(engine) == []
    devices = ShopperRepository(engine).devices()
    assert set(devices) == set(shoppers)
    assert {d.key for d in devices.values()} == {bytes(range(16))}  # the keys are kept
    assert {d.exponent for d in devices.values()} <= {8, 9, 10}
    offsets = {d.clock_offset_s for d in devices.values()}
    assert len(offsets) == 20 and 0 not in offsets


def test_0006_keys_messages_by_epoch_and_keeps_what_points_at_them(engine: Engine) -> None:
    schema.upgrade(engine, "0005")
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO received_messages (id, store, gateway, seq, kind, sent_ms,"
                " received_ms, items, duplicates) VALUES (1, 's', 'g', 5, 'ble', 1, 2, 1, 0)"
            )
        )
        db.execute(
            text(
                "INSERT INTO ble_sightings (message_id, store, gateway, device, window_start_ms,"
                " window_ms, count, rssi_mean, rssi_max) VALUES (1, 's', 'g', 'd', 1, 1, 1, -5, -5)"
            )
        )
    assert schema.upgrade(engine) == schema.head_revision()
    with engine.begin() as db:
        assert db.execute(text("SELECT epoch, seq FROM received_messages")).all() == [(0, 5)]
        assert db.execute(text("SELECT COUNT(*) FROM ble_sightings")).scalar() == 1  # no cascade
        db.execute(  # the same seq in another epoch is another message
            text(
                "INSERT INTO received_messages (id, store, gateway, epoch, seq, kind, sent_ms,"
                " received_ms, items, duplicates) VALUES (2, 's', 'g', 9, 5, 'ble', 1, 2, 1, 0)"
            )
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO received_messages (id, store, gateway, epoch, seq, kind, sent_ms,"
                " received_ms, items, duplicates) VALUES (3, 's', 'g', 9, 5, 'ble', 1, 2, 1, 0)"
            )
        )
    with engine.begin() as db:  # the children still point at the rebuilt table
        db.execute(text("DELETE FROM received_messages WHERE id = 1"))
        assert db.execute(text("SELECT COUNT(*) FROM ble_sightings")).scalar() == 0
    assert schema.differences(engine) == []
