"""Guided survey sessions: staff start one, a surveying phone pairs with its
code, staff (or the phone) pick the zone being walked, and every 1 s window
ingest sees of that phone, at every gateway, becomes a sample labelled with
the zone (``domain/localize/guided_survey.py``). Finishing writes the survey
CSV, fits the calibration (``service/calibration.py``), writes its YAML and
answers with the report ``omnizone calibrate --json`` prints.

Privacy: the surveying phone is staff equipment, registered like a shopper's
phone (so its rotating ids resolve) but needing no shopper consent. Its
windows reach the survey only while it is paired with an open session, are
held in memory, and the survey file has no device column; ingest still
stores or localizes them only as the device's own consent allows (none, for
a staff phone that gave none). The pairing code is the staff's say-so: it
is issued by a staff key with the ``survey`` (or ``admin``) scope, lives 10
minutes, pairs one phone once.
"""

import hmac
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.localize.guided_survey import (
    EnoughRule,
    Reading,
    SurveyWalk,
)
from omnizone.server.domain.localize.survey import write_survey
from omnizone.server.service.calibration import calibrate, report
from omnizone.server.service.locators import Sighting
from omnizone.store import Localization, StorePlan
from omnizone.store.calibration import dump_calibration

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed on a phone
CODE_LENGTH = 6
PAIRING_TTL_MS = 10 * 60_000
#: An open session nobody touched for this long is cancelled (a forgotten walk).
IDLE_TTL_MS = 2 * 3600_000
MAX_OPEN_PER_STORE = 2
MAX_KEPT_CLOSED = 20


class SurveyNotFound(LookupError):
    """No such session (or store): 404."""


class SurveyConflict(RuntimeError):
    """The session cannot do that now (finished, not paired, full): 409."""


class SurveyInvalid(ValueError):
    """A bad value in the request (unknown zone): 422."""


class SurveyNotWritten(OSError):
    """The survey folder or a file the store file names cannot be written:
    the survey stays open (finish again once fixed): 500 naming the file."""


@dataclass(slots=True)
class _Session:
    id: str
    store: str
    code: str
    created_ms: int
    walk: SurveyWalk
    touched_ms: int
    state: str = "waiting_for_phone"  # → paired → finished | cancelled
    device: str | None = None
    token: str | None = None
    report: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)


def default_survey_dir(database_url: str) -> Path:
    """``surveys`` beside a SQLite database file, else ``./surveys``."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and len(database_url) > len(prefix):
        return Path(database_url.removeprefix(prefix)).parent / "surveys"
    return Path("surveys")


class SurveyService:
    """Sessions in memory (a survey is minutes of one phone, not history);
    thread-safe: ingest calls ``wanted``/``on_windows`` from its thread."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        radio_files: Mapping[str, Localization],
        out_dir: Path,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """``radio_files``: the survey and calibration each store file names;
        a finished survey rewrites those too, so a running server's
        ``LocalizerReload`` picks them up."""
        self._stores = dict(stores)
        self._radio_files = dict(radio_files)
        self._out = out_dir
        self._clock = clock_ms
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._linked: dict[tuple[str, str], str] = {}  # (store, device) -> session id

    # -- staff -----------------------------------------------------------------------

    def start(self, store: str) -> dict[str, Any]:
        plan = self._plan(store)
        with self._lock:
            now = self._clock()
            self._expire(now)
            open_here = [s for s in self._sessions.values() if s.store == store and _open(s)]
            if len(open_here) >= MAX_OPEN_PER_STORE:
                raise SurveyConflict(
                    f"store {store!r} already has {len(open_here)} open surveys (at most "
                    f"{MAX_OPEN_PER_STORE}): finish or cancel one first"
                )
            anchors = tuple(g.id for g in plan.gateways if g.ble)
            session = _Session(
                id=secrets.token_hex(6),
                store=store,
                code=self._new_code(),
                created_ms=now,
                touched_ms=now,
                walk=SurveyWalk(anchors, EnoughRule.for_store(len(anchors))),
            )
            self._sessions[session.id] = session
            return self._status(session)

    def status(self, store: str, survey: str) -> dict[str, Any]:
        with self._lock:
            return self._status(self._session(store, survey))

    def pick_zone(self, store: str, survey: str, zone: str | None) -> dict[str, Any]:
        plan = self._plan(store)
        if zone is not None and zone not in {z.id for z in plan.zones}:
            known = ", ".join(z.id for z in plan.zones)
            raise SurveyInvalid(f"zone {zone!r} is not in store {store!r} (its zones: {known})")
        with self._lock:
            session = self._session(store, survey)
            self._must_be_open(session)
            if session.state != "paired":
                raise SurveyConflict("no phone is paired yet: enter the code in the app first")
            session.walk.pick(zone)
            session.touched_ms = self._clock()
            return self._status(session)

    def cancel(self, store: str, survey: str) -> None:
        with self._lock:
            session = self._session(store, survey)
            self._must_be_open(session)
            self._close(session, "cancelled")

    def finish(self, store: str, survey: str) -> dict[str, Any]:
        """Write the survey and its calibration; the report. Slow (the fit):
        call off the event loop."""
        plan = self._plan(store)
        with self._lock:
            session = self._session(store, survey)
            self._must_be_open(session)
            session.walk.finish()
            walked = session.walk.survey()
            if len(walked) == 0:
                raise SurveyConflict("no window collected yet: walk a zone before finishing")
            self._close(session, "finishing")
        try:
            result = calibrate(plan, walked)
            summary = report(result, plan)
            try:
                written = self._write(session, walked, dump_calibration(result.calibration))
            except OSError as error:
                raise SurveyNotWritten(
                    f"cannot write {error.filename or self._out}: {error.strerror or error}; "
                    "the survey stays open, finish again once it can be written"
                ) from error
        except Exception:
            with self._lock:
                session.state = "paired" if session.device else "waiting_for_phone"
                if session.device:
                    self._linked[(store, session.device)] = session.id
            raise
        summary["survey"] = written["survey"]
        summary["written"] = written["calibration"]
        summary["installed"] = [v for k, v in written.items() if k.startswith("installed")]
        summary["previous"] = [v for k, v in written.items() if k.startswith("previous")]
        named = self._radio_files.get(store, Localization())
        if named.survey is None or named.calibration is None:
            summary["notes"].append(
                "the store file names no "
                + " and no ".join(
                    w
                    for w, n in (("survey", named.survey), ("calibration", named.calibration))
                    if n is None
                )
                + f": add 'localization: {{survey: {written['survey']}, calibration: "
                f"{written['calibration']}}}' (absolute, or relative to the store file) for the "
                "server to localize with them"
            )
        with self._lock:
            session.report = summary
            session.files = written
            session.state = "finished"
        log.info("survey %s of %s: %d samples, written %s", session.id, store, len(walked), written)
        return summary

    # -- the surveying phone -----------------------------------------------------------

    def pair(self, code: str, device: str) -> dict[str, Any]:
        """Link ``device`` (a registered phone) to the session of ``code``;
        the answer carries the survey token the app then sends."""
        wanted = code.strip().upper()
        with self._lock:
            now = self._clock()
            self._expire(now)
            found = next(
                (
                    s
                    for s in self._sessions.values()
                    if s.state == "waiting_for_phone" and hmac.compare_digest(s.code, wanted)
                ),
                None,
            )
            if found is None:
                raise SurveyNotFound("unknown or expired pairing code (it lives 10 minutes)")
            if (found.store, device) in self._linked:
                raise SurveyConflict("this phone already walks another survey of this store")
            found.device = device
            found.token = secrets.token_urlsafe(24)
            found.state = "paired"
            found.touched_ms = now
            self._linked[(found.store, device)] = found.id
            return {"token": found.token, **self._status(found)}

    def by_token(self, token: str) -> tuple[str, str] | None:
        """(store, survey id) of a survey token, or None."""
        with self._lock:
            for session in self._sessions.values():
                if session.token is not None and hmac.compare_digest(session.token, token):
                    return session.store, session.id
        return None

    # -- ingest's tap ------------------------------------------------------------------

    def wanted(self, store: str, device: str) -> bool:
        """Is ``device`` surveying at ``store`` (called per resolved sighting)?"""
        return (store, device) in self._linked

    def on_windows(self, store: str, gateway: str, sightings: Sequence[Sighting]) -> None:
        with self._lock:
            by_session: dict[str, list[Reading]] = {}
            for s in sightings:
                survey = self._linked.get((store, s.device))
                if survey is not None:
                    by_session.setdefault(survey, []).append(
                        Reading(gateway, s.window_start_ms, s.window_ms, s.rssi_mean)
                    )
            for survey, readings in by_session.items():
                self._sessions[survey].walk.add(readings)

    # -- internals ---------------------------------------------------------------------

    def _plan(self, store: str) -> StorePlan:
        plan = self._stores.get(store)
        if plan is None:
            raise SurveyNotFound(f"unknown store {store!r}")
        return plan

    def _session(self, store: str, survey: str) -> _Session:
        session = self._sessions.get(survey)
        if session is None or session.store != store:
            raise SurveyNotFound(f"no survey {survey!r} in store {store!r}")
        return session

    def _must_be_open(self, session: _Session) -> None:
        if not _open(session):
            raise SurveyConflict(f"survey {session.id} is {session.state}")

    def _close(self, session: _Session, state: str) -> None:
        session.state = state
        if session.device is not None:
            self._linked.pop((session.store, session.device), None)
        closed = [s for s in self._sessions.values() if not _open(s) and s.state != "finishing"]
        for old in sorted(closed, key=lambda s: s.created_ms)[:-MAX_KEPT_CLOSED]:
            del self._sessions[old.id]

    def _expire(self, now: int) -> None:
        for session in list(self._sessions.values()):
            unpaired = session.state == "waiting_for_phone"
            if (unpaired and now - session.created_ms > PAIRING_TTL_MS) or (
                _open(session) and now - session.touched_ms > IDLE_TTL_MS
            ):
                self._close(session, "cancelled")

    def _new_code(self) -> str:
        taken = {s.code for s in self._sessions.values() if s.state == "waiting_for_phone"}
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in taken:
                return code

    def _status(self, session: _Session) -> dict[str, Any]:
        plan = self._stores[session.store]
        walk = session.walk
        names = {z.id: z.name for z in plan.zones}
        return {
            "id": session.id,
            "store": session.store,
            "state": session.state,
            "code": session.code if session.state == "waiting_for_phone" else None,
            "pair_path": (
                f"/app/#survey={session.code}" if session.state == "waiting_for_phone" else None
            ),
            "code_expires_ms": session.created_ms + PAIRING_TTL_MS,
            "paired": session.device is not None,
            "zone": walk.zone,
            "rule": {"min_windows": walk.rule.min_windows, "min_anchors": walk.rule.min_anchors},
            "windows": len(walk.samples),
            "max_windows": walk.max_windows,
            "full": walk.full,
            "late_readings": walk.late_readings,
            "settling_windows": walk.settling_dropped,
            "over_limit_windows": walk.over_limit,
            "zones": [
                {
                    "zone": p.zone,
                    "name": names.get(p.zone, p.zone),
                    "windows": p.windows,
                    "anchors": len(p.anchors),
                    "anchors_heard": list(p.anchors),
                    "enough": p.enough,
                }
                for p in walk.progress([z.id for z in plan.zones])
            ],
            "report": session.report,
        }

    def _write(self, session: _Session, walked: Any, calibration_yaml: str) -> dict[str, str]:
        self._out.mkdir(parents=True, exist_ok=True)
        survey_path = self._out / f"{session.store}-survey-{session.id}.csv"
        calibration_path = self._out / f"{session.store}-calibration-{session.id}.yaml"
        write_survey(walked, survey_path)
        _write_atomically(calibration_path, calibration_yaml)
        written = {"survey": str(survey_path), "calibration": str(calibration_path)}
        named = self._radio_files.get(session.store, Localization())
        installs = (
            ("survey", named.survey, survey_path.read_text(encoding="utf-8")),
            ("calibration", named.calibration, calibration_yaml),
        )
        for what, target, text in installs:
            if target is None:
                continue
            old = Path(target)
            if old.exists():  # what ran before stays at hand, beside the new files
                kept = self._out / f"{old.stem}.before-{session.id}{old.suffix}"
                _write_atomically(kept, old.read_text(encoding="utf-8"))
                written[f"previous_{what}"] = str(kept)
            _write_atomically(old, text)
            written[f"installed_{what}"] = target
        return written


def _open(session: _Session) -> bool:
    return session.state in ("waiting_for_phone", "paired")


def _write_atomically(path: Path, text: str) -> None:
    """Whole or not at all: the localizer reload never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
