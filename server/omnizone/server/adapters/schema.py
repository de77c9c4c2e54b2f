"""The server's database schema, versioned with Alembic.

Every table is declared on ``db.Base`` by the adapter that owns it; the
migrations in ``migrations/versions`` build that schema step by step, so an
existing store database is upgraded in place instead of being recreated.
``upgrade`` is what the server runs at start and ``omnizone server migrate``
runs by hand; ``differences`` is what a test (and ``migrate --check``) uses to
catch a model changed without a migration."""

import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.sighting_partitions import is_partition_name
from omnizone.server.adapters.time_partitions import is_month_partition_name

#: Every adapter module that declares tables (or indexes) on ``Base``.
_TABLE_MODULES = (
    "omnizone.server.adapters.db_write",
    "omnizone.server.adapters.heatmap_db",  # the floor heatmap (issue 18 point 6)
    "omnizone.server.adapters.shopper_db",
    "omnizone.server.adapters.offer_db",
    "omnizone.server.adapters.campaign_db",
    "omnizone.server.adapters.layout_db",
    "omnizone.server.adapters.analytics_db",
    "omnizone.server.adapters.phone_db",
    "omnizone.server.adapters.insight_db",
    "omnizone.server.adapters.capture_db",
    "omnizone.server.adapters.alert_db",
    "omnizone.server.adapters.event_db",
    "omnizone.server.adapters.follow_up_db",
    "omnizone.server.adapters.stay_rollup_db",
)
#: The revision whose schema equals what ``create_all`` made before migrations
#: existed: a database without Alembic's version table but with our tables is
#: stamped with it, then upgraded from there.
BASELINE_REVISION = "0001"
_MIGRATIONS = Path(__file__).with_name("migrations")


def server_metadata() -> MetaData:
    for module in _TABLE_MODULES:
        importlib.import_module(module)
    return Base.metadata


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to ``revision``; returns the revision it is at now.

    A database made before migrations existed (our tables, no version table)
    is first completed with any table it lacks, then stamped as the baseline."""
    metadata = server_metadata()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite's procedure for rebuilding a table (0005): foreign keys off
            # outside the transaction, checked before they are turned on again.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config = _config(connection)
                versioned = (
                    MigrationContext.configure(connection).get_current_revision() is not None
                )
                ours = set(metadata.tables) & set(inspect(connection).get_table_names())
                if not versioned and ours:
                    metadata.create_all(connection)
                    command.stamp(config, BASELINE_REVISION)
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    return current_revision(engine)


def _not_a_partition(name: str | None, type_: str, _parent: Any) -> bool:
    """The day partitions of ``ble_sightings`` (PostgreSQL, 0015) and the month
    partitions of visits and offer decisions (0016) are their tables', not
    tables of the models."""
    partition = name is not None and (is_partition_name(name) or is_month_partition_name(name))
    return not (type_ == "table" and partition)


def differences(engine: Engine) -> list[Any]:
    """What the database lacks or has beyond the models (Alembic's autogenerate
    diff); empty when the migrations and the models agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": _not_a_partition}
        )
        return list(compare_metadata(context, server_metadata()))
