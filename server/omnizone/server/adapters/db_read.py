"""SQLAlchemy storage, the read side: what start-up, the API and a shopper's
export read of ingest's tables (``db_write``)."""

from typing import Any

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from omnizone.server.adapters.db_write import (
    BleSightingRow,
    DeadLetterRow,
    DevicePresenceRow,
    GatewayConfigRow,
    GatewayStatusRow,
    NfcTapRow,
    ReceivedMessage,
    TryOnRow,
    VisitRow,
)
from omnizone.server.domain.redact import MAX_DEAD_LETTER_BYTES
from omnizone.server.domain.sequence import MAX_COUNTED_GAP
from omnizone.server.domain.visits import DeviceVisitState
from omnizone.server.service.ports.ingest import (
    DeadLetter,
    GatewayRecord,
    IngestReads,
    IngestStats,
    ReceivedKey,
    StoredGatewayConfig,
    VisitRecord,
    VisitStatus,
    ZoneSummary,
    location_export,
)


class SqlQueries(IngestReads):
    """The read half of the ingest ``Repository``: plain queries, each in a
    session of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_presence(self) -> dict[tuple[str, str], DeviceVisitState]:
        with Session(self.engine) as session:
            return {
                (r.store, r.device): DeviceVisitState(
                    zone=r.zone,
                    entered_ms=r.entered_ms,
                    last_in_zone_ms=r.last_in_zone_ms,
                    last_heard_ms=r.last_heard_ms,
                    away_zone=r.away_zone,
                    away_since_ms=r.away_since_ms,
                )
                for r in session.scalars(select(DevicePresenceRow))
            }

    def highest_seqs(self) -> dict[tuple[str, str], int]:
        query = select(
            ReceivedMessage.store, ReceivedMessage.gateway, func.max(ReceivedMessage.seq)
        ).group_by(ReceivedMessage.store, ReceivedMessage.gateway)
        with Session(self.engine) as session:
            return {(s, g): int(m) for s, g, m in session.execute(query)}

    def sequence_heads(self) -> dict[tuple[str, str, int], int]:
        m = ReceivedMessage
        query = select(m.store, m.gateway, m.epoch, func.max(m.seq)).group_by(
            m.store, m.gateway, m.epoch
        )
        with Session(self.engine) as session:
            return {(s, g, int(e)): int(h) for s, g, e, h in session.execute(query)}

    def presence_by_zone(self, store: str) -> dict[str, int]:
        query = (
            select(DevicePresenceRow.zone, func.count())
            .where(DevicePresenceRow.store == store)
            .group_by(DevicePresenceRow.zone)
        )
        with Session(self.engine) as session:
            return {zone: int(n) for zone, n in session.execute(query)}

    def latest_event_ms(self, store: str) -> int | None:
        with Session(self.engine) as session:
            heard = session.scalar(
                select(func.max(DevicePresenceRow.last_heard_ms)).where(
                    DevicePresenceRow.store == store
                )
            )
            if heard is None:
                heard = session.scalar(
                    select(func.max(ReceivedMessage.sent_ms)).where(ReceivedMessage.store == store)
                )
            return None if heard is None else int(heard)

    def device_history(self, device: str) -> dict[str, Any]:
        """Everything stored about where one device was (a shopper's data export)."""
        with Session(self.engine) as session:
            visits = session.scalars(
                select(VisitRow).where(VisitRow.device == device).order_by(VisitRow.entered_ms)
            )
            sightings = session.scalars(
                select(BleSightingRow)
                .where(BleSightingRow.device == device)
                .order_by(BleSightingRow.window_start_ms)
            )
            return location_export(visits, sightings)

    def device_presence(self, device: str) -> list[dict[str, Any]]:
        """The device's open stays, by store (a shopper's data export)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(DevicePresenceRow)
                .where(DevicePresenceRow.device == device)
                .order_by(DevicePresenceRow.store)
            )
            return [
                {
                    "store": r.store,
                    "zone": r.zone,
                    "entered_ms": r.entered_ms,
                    "last_in_zone_ms": r.last_in_zone_ms,
                    "last_heard_ms": r.last_heard_ms,
                    "away_zone": r.away_zone,
                    "away_since_ms": r.away_since_ms,
                }
                for r in rows
            ]

    def recent_visits(self, store: str, limit: int, zone: str | None) -> list[VisitRecord]:
        query = select(VisitRow).where(VisitRow.store == store)
        if zone is not None:
            query = query.where(VisitRow.zone == zone)
        query = query.order_by(VisitRow.entered_ms.desc(), VisitRow.id.desc()).limit(limit)
        with Session(self.engine) as session:
            return [
                VisitRecord(
                    device=r.device,
                    zone=r.zone,
                    entered_ms=r.entered_ms,
                    left_ms=r.left_ms,
                    dwell_s=r.dwell_s,
                    status=_status(r.status),
                )
                for r in session.scalars(query)
            ]

    def zone_summaries(self, store: str) -> list[ZoneSummary]:
        def n(status: str) -> Any:
            return func.coalesce(func.sum(case((VisitRow.status == status, 1), else_=0)), 0)

        query = (
            select(
                VisitRow.zone,
                n("visit"),
                n("pass_by"),
                n("open"),
                func.avg(case((VisitRow.status == "visit", VisitRow.dwell_s), else_=None)),
            )
            .where(VisitRow.store == store)
            .group_by(VisitRow.zone)
        )
        with Session(self.engine) as session:
            return [
                ZoneSummary(
                    zone=zone,
                    visits=int(v),
                    pass_bys=int(p),
                    open_visits=int(o),
                    mean_dwell_s=None if mean is None else float(mean),
                )
                for zone, v, p, o, mean in session.execute(query)
            ]

    def ingest_stats(self) -> IngestStats:
        m = ReceivedMessage
        # Each hole between neighbours of one epoch, a hole wider than
        # MAX_COUNTED_GAP counted as one (domain/sequence.py): one hostile seq
        # cannot make the figure meaningless.
        previous = func.lag(m.seq).over(partition_by=(m.store, m.gateway, m.epoch), order_by=m.seq)
        holes = select(
            m.store, m.gateway, m.epoch, m.seq, m.duplicates, (m.seq - previous - 1).label("hole")
        ).subquery()
        counted = case((holes.c.hole > MAX_COUNTED_GAP, 1), else_=holes.c.hole)
        per_epoch = select(
            func.count(),
            func.max(holes.c.seq),
            func.min(holes.c.seq),
            func.sum(holes.c.duplicates),
            func.sum(counted),
            holes.c.store,
            holes.c.gateway,
            holes.c.epoch,
        ).group_by(holes.c.store, holes.c.gateway, holes.c.epoch)
        ingested = duplicates = gaps = 0
        with Session(self.engine) as session:
            awaiting_will = self._wills_pending(session)
            for count, highest, lowest, dups, missing, store, gateway, epoch in session.execute(
                per_epoch
            ):
                ingested += int(count)
                duplicates += int(dups or 0)
                lost = int(missing or 0)
                will = awaiting_will.get((store, gateway, int(epoch)))
                if will is not None and lowest < will < highest and lost > 0:
                    lost -= 1  # reserved for the live session's last will: not lost
                gaps += lost
            dead = session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0
        return IngestStats(ingested, duplicates, int(dead), gaps)

    @staticmethod
    def _wills_pending(session: Session) -> dict[tuple[str, str, int], int]:
        """Gateways whose latest status is a birth: its seq + 1 is their will's, not a gap."""
        query = select(GatewayStatusRow).where(GatewayStatusRow.state == "online")
        pending = {}
        for row in session.scalars(query):
            if row.status_seq is None:
                continue
            will = row.status_seq + 1
            seen = session.scalar(
                select(func.count())
                .select_from(ReceivedMessage)
                .where(
                    ReceivedMessage.store == row.store,
                    ReceivedMessage.gateway == row.gateway,
                    ReceivedMessage.epoch == row.status_epoch,
                    ReceivedMessage.seq == will,
                )
            )
            if not seen:
                pending[(row.store, row.gateway, row.status_epoch)] = will
        return pending

    def activity_counts(self, store: str) -> dict[str, int]:
        with Session(self.engine) as session:
            taps = session.scalar(
                select(func.count()).select_from(NfcTapRow).where(NfcTapRow.store == store)
            )
            try_ons = dict(
                session.execute(
                    select(TryOnRow.event, func.count())
                    .where(TryOnRow.store == store)
                    .group_by(TryOnRow.event)
                ).all()
            )
        return {
            "nfc_taps": int(taps or 0),
            "try_ons_arrived": int(try_ons.get("arrived", 0)),
            "try_ons_departed": int(try_ons.get("departed", 0)),
        }

    def gateway_records(self, store: str) -> list[GatewayRecord]:
        query = select(GatewayStatusRow).where(GatewayStatusRow.store == store)
        with Session(self.engine) as session:
            return [
                GatewayRecord(
                    r.store, r.gateway, r.state, r.session, r.version, r.received_ms, r.health
                )
                for r in session.scalars(query)
            ]

    def gateway_config(self, store: str, gateway: str) -> StoredGatewayConfig | None:
        with Session(self.engine) as session:
            row = session.get(GatewayConfigRow, (store, gateway))
            return None if row is None else StoredGatewayConfig(row.revision, dict(row.body))

    def received_keys(self, store: str) -> list[ReceivedKey]:
        m = ReceivedMessage
        query = (
            select(m.gateway, m.epoch, m.seq)
            .where(m.store == store)
            .order_by(m.gateway, m.epoch, m.seq)
        )
        with Session(self.engine) as session:
            return [
                ReceivedKey(store, gateway, seq, int(epoch))
                for gateway, epoch, seq in session.execute(query)
            ]

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        # Rows stored before payloads were capped may be huge: read a bounded prefix.
        row = DeadLetterRow
        query = (
            select(
                row.id,
                row.received_ms,
                row.topic,
                func.substr(row.payload, 1, MAX_DEAD_LETTER_BYTES),
                row.reason,
                func.coalesce(row.original_bytes, func.length(row.payload)),
            )
            .order_by(row.id.desc())
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [
                DeadLetter(id_, received, topic, bytes(payload), reason, int(size))
                for id_, received, topic, payload, reason, size in session.execute(query)
            ]


def _status(value: str) -> VisitStatus:
    if value == "open":
        return "open"
    if value == "pass_by":
        return "pass_by"
    return "visit"
