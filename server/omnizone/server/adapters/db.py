"""SQLAlchemy storage: the ingest ``Repository`` as one object over one engine.

The concerns live apart: ``db_write`` holds the tables, the engine and the
write side (one transaction per gateway message), ``db_read`` the queries the
API and start-up read. ``SqlRepository`` is both halves, so it is still the
one object ingest, the queries and gateway admin are given. The tables and
engine helpers are re-exported here: the other adapters declare their tables
on this ``Base``.
"""

from typing import Any

from sqlalchemy import Engine

from omnizone.server.adapters.db_read import SqlQueries
from omnizone.server.adapters.db_write import (
    DEFAULT_DATABASE_URL,
    Base,
    BleSightingRow,
    DeadLetterRow,
    DevicePresenceRow,
    GatewayConfigRow,
    GatewayStatusRow,
    Id,
    Ident,
    NfcTapRow,
    ReceivedMessage,
    RfidReadRow,
    SqlIngestWriter,
    TryOnRow,
    VisitRow,
    create_schema,
    in_chunks,
    make_engine,
)
from omnizone.server.service.ports.ingest import LocationData

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Base",
    "BleSightingRow",
    "DeadLetterRow",
    "DevicePresenceRow",
    "GatewayConfigRow",
    "GatewayStatusRow",
    "Id",
    "Ident",
    "NfcTapRow",
    "ReceivedMessage",
    "RfidReadRow",
    "SqlIngestWriter",
    "SqlQueries",
    "SqlRepository",
    "TryOnRow",
    "VisitRow",
    "create_schema",
    "in_chunks",
    "make_engine",
    "within_range",
]


class SqlRepository(SqlIngestWriter, SqlQueries, LocationData):
    """The ``Repository`` and ``LocationData`` ports over an SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        SqlIngestWriter.__init__(self, engine)
        SqlQueries.__init__(self, engine)

    @classmethod
    def from_url(cls, url: str = DEFAULT_DATABASE_URL, *, create: bool = True) -> "SqlRepository":
        engine = make_engine(url)
        if create:
            create_schema(engine)
        return cls(engine)


def within_range(column: Any, from_ms: int | None, to_ms: int | None) -> list[Any]:
    """The conditions ``from_ms <= column < to_ms`` (a report's range), a
    bound that is None left out."""
    found = []
    if from_ms is not None:
        found.append(column >= from_ms)
    if to_ms is not None:
        found.append(column < to_ms)
    return found
