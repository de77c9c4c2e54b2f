"""``omnizone eval replay``: a real recording's radio through the deployed
server, scored against the recording's ground truth.

The readings are imported as a recording (one real ``GatewayNode`` per
anchor, ``omnizone.sim.recording.imports``). Each localizer is a whole server
made by ``build_server``, the production composition root, from a settings
object and a store file, as ``omnizone server run`` makes one; every message
goes to its ingest in recorded order with its receive time, which is what
the MQTT adapter does, and the windows still waiting are decided at the end.
Each device's reported zones are recorded by a placement subscription. There
is no evaluation-only path in the server.

A survey given here is used as a deployed store uses its own: a copy of the
store file is written naming it (``localization.survey``), and that file is
what the server is started with. The nearest-gateway baseline is the same
server with ``localizer = "nearest"``. The peer, when there is a survey (given
or named by the store), is scikit-learn's random forest trained on it and
applied to every window the servers see (the recorded BLE messages decoded
with the contract): each device's mean RSSI per anchor, "not heard" as
-100 dBm (``fingerprint.classifier_features``). Its stays come from its
timeline through the server's own visit rules (``domain/visits``), so its
dwell is scored like the servers'.
"""

import secrets
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray

from omnizone.contract import BleMessage, parse_message
from omnizone.server.bootstrap import build_server
from omnizone.server.domain.localize.survey import Survey
from omnizone.server.domain.visits import (
    DeviceVisitState,
    VisitClosed,
    VisitEvent,
    advance,
    expire,
)
from omnizone.server.service.ingest import Outcome
from omnizone.server.service.radio_setup import radio_setup
from omnizone.server.settings import ServerSettings
from omnizone.sim.recording.format import RecordedMessage
from omnizone.sim.recording.imports import read_readings, read_truth, readings_to_messages
from omnizone.store import StorePlan, VisitSettings, load_store
from omnizone.suite.evaluation.fingerprint import classifier_features
from omnizone.suite.evaluation.localize import zone_recorder
from omnizone.suite.evaluation.metrics import Placement, RecordedVisit, TruthRow, evaluate

ReplayLocalizer = Literal["grid", "zone"]
FOREST_TREES = 200
FOREST_SEED = 0


@dataclass(frozen=True, slots=True)
class ServerRun:
    """What one server made of a replay."""

    timelines: dict[str, list[Placement]]  # device -> reported zone changes
    visits: list[RecordedVisit]
    dead_lettered: list[str]  # the reasons, one per message the server refused


def run_replay_eval(
    store_path: str | Path,
    readings_path: str | Path,
    truth_path: str | Path,
    *,
    survey_path: str | Path | None = None,
    localizer: ReplayLocalizer = "grid",
    window_ms: int = 1000,
) -> dict[str, Any]:
    """Import, replay into omnizone and the baseline (and score the peer), score.

    Raises ``StoreConfigError``, ``SurveyError`` or ``ImportProblems`` for
    bad input, naming the file and line."""
    plan = load_store(store_path)
    if survey_path is not None:
        plan = with_survey(plan, Path(survey_path))
    survey = radio_setup(plan).survey  # what the server will learn from, checked now
    readings = read_readings(readings_path, plan)
    messages = readings_to_messages(plan, readings, window_ms=window_ms)
    truth = [TruthRow(p.t_ms, p.device, p.device, p.zone) for p in read_truth(truth_path, plan)]
    end_ms = max(messages[-1].rx_ms, truth[-1].t_ms)
    settings = plan.store.visits

    def score(
        timelines: Mapping[str, Sequence[Placement]], visits: Iterable[RecordedVisit]
    ) -> dict[str, Any]:
        return evaluate(truth, timelines, visits, min_stay_s=settings.min_presence_s, end_ms=end_ms)

    with tempfile.TemporaryDirectory(prefix="omnizone-replay-") as tmp:
        folder = Path(tmp)
        store_file = Path(store_path)
        if survey_path is not None:  # the store as deployed with this survey
            store_file = write_store_file(plan, folder / "store.yaml")
        ours = replay_into_server(store_file, localizer, messages, folder / localizer)
        nearest = replay_into_server(store_file, "nearest", messages, folder / "nearest")

    peer: dict[str, Any] | None = None
    if survey is not None:
        placements = forest_placements(survey, messages)
        peer = {
            "method": "random-forest",
            "n_estimators": FOREST_TREES,
            "random_state": FOREST_SEED,
            "n_train": len(survey),
            **score(placements, stays_from_placements(placements, settings)),
        }
    return {
        "store": plan.id,
        "readings": str(readings_path),
        "truth": str(truth_path),
        "survey": plan.localization.survey,
        "localizer": localizer,
        "window_ms": window_ms,
        "readings_imported": len(readings),
        "messages": len(messages),
        "dead_lettered": len(ours.dead_lettered),
        "dead_letter_reasons": _first_reasons(ours.dead_lettered),
        "devices": len({row.device for row in truth}),
        **score(ours.timelines, ours.visits),
        "baseline": {
            "localizer": "nearest-gateway",
            "dead_lettered": len(nearest.dead_lettered),
            "dead_letter_reasons": _first_reasons(nearest.dead_lettered),
            **score(nearest.timelines, nearest.visits),
        },
        "peer": peer,
    }


def _first_reasons(reasons: Sequence[str], most: int = 5) -> list[str]:
    """The distinct reasons a server refused messages for (a few: one per cause)."""
    return list(dict.fromkeys(reasons))[:most]


def with_survey(plan: StorePlan, survey: Path) -> StorePlan:
    """The plan naming ``survey`` (absolute) as its localization survey."""
    named = plan.localization.model_copy(update={"survey": str(survey.resolve())})
    return plan.model_copy(update={"localization": named})


def write_store_file(plan: StorePlan, path: Path) -> Path:
    """The plan as a store file (its paths are absolute, so it may live anywhere)."""
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json"), sort_keys=False), "utf-8")
    return path


def replay_into_server(
    store_file: Path,
    localizer: Literal["grid", "zone", "nearest"],
    messages: Sequence[RecordedMessage],
    folder: Path,
) -> ServerRun:
    """A server built by ``build_server`` from a settings object naming
    ``store_file``, fed every message through ingest in order."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(
        database_url=f"sqlite:///{folder / 'server.db'}",
        store_files=[store_file],
        localizer=localizer,
        api_keys={secrets.token_urlsafe(32): ["read"]},  # required; nobody calls the API
        campaign_files=[],
        vapid_key_file=folder / "vapid.pem",
    )
    parts = build_server(settings)
    try:
        timelines: dict[str, list[Placement]] = defaultdict(list)
        parts.ingest.subscribe_to_placements(zone_recorder(timelines))
        refused: list[str] = []
        for message in messages:
            outcome = parts.ingest.handle(message.topic, message.payload, message.rx_ms)
            if outcome.outcome is Outcome.DEAD_LETTERED:
                refused.append(outcome.reason or "")
        for store in parts.stores:
            parts.ingest.finish(store)
        visits = [
            RecordedVisit(v.device, v.zone, v.entered_ms, v.left_ms, v.dwell_s)
            for store in parts.stores
            for v in parts.storage.sql.recent_visits(store, 10**9, None)
        ]
    finally:
        parts.close()
    return ServerRun(dict(timelines), visits, refused)


# -- the peer -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Windows:
    """Every (device, window) the recorded BLE messages hold, as mean RSSI per anchor."""

    devices: list[str]
    ends_ms: list[int]
    rssi: NDArray[np.float64]  # (windows, anchors), NaN = not heard


def recorded_windows(messages: Iterable[RecordedMessage], anchors: Sequence[str]) -> Windows:
    """The windows a server sees, decoded with the contract: one row per
    device and window, its gateways' mean RSSI in ``anchors`` order."""
    column = {anchor: i for i, anchor in enumerate(anchors)}
    heard: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for recorded in messages:
        message = parse_message(recorded.topic, recorded.payload)
        if not isinstance(message, BleMessage) or message.gateway not in column:
            continue
        for item in message.items:
            key = (item.device, item.window_start_ms + item.window_ms)
            heard[key][column[message.gateway]] = item.rssi_mean
    keys = sorted(heard, key=lambda k: (k[1], k[0]))
    rssi = np.full((len(keys), len(anchors)), np.nan)
    for row, key in enumerate(keys):
        for col, dbm in heard[key].items():
            rssi[row, col] = dbm
    return Windows([k[0] for k in keys], [k[1] for k in keys], rssi)


def forest_placements(
    survey: Survey, messages: Sequence[RecordedMessage]
) -> dict[str, list[Placement]]:
    """The random forest, trained on the survey, placing every recorded window
    of every device at the window's end (a device nobody heard in a window
    has no placement for it, as in the server)."""
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

    windows = recorded_windows(messages, survey.anchors)
    if not windows.devices:
        return {}
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=FOREST_SEED)
    forest.fit(classifier_features(survey.rssi), list(survey.zones))
    zones = forest.predict(classifier_features(windows.rssi))
    placements: dict[str, list[Placement]] = defaultdict(list)
    for device, end_ms, zone in zip(windows.devices, windows.ends_ms, zones, strict=True):
        placements[device].append(Placement(end_ms, str(zone)))
    return dict(placements)


def stays_from_placements(
    placements: Mapping[str, Sequence[Placement]], settings: VisitSettings
) -> list[RecordedVisit]:
    """The stays the server's visit rules (``domain/visits``) make of a
    device's placements, stepped and expired as ingest does. A stay still
    open at the end has no dwell, as in the server's database."""
    visits: list[RecordedVisit] = []
    for device, steps in placements.items():
        state: DeviceVisitState | None = None
        for placement in sorted(steps, key=lambda p: p.at_ms):
            state, events = advance(state, placement.zone, placement.at_ms, settings)
            visits += _closed(device, events)
            state, events = expire(state, placement.at_ms, settings)
            visits += _closed(device, events)
        if state is not None:
            visits.append(RecordedVisit(device, state.zone, state.entered_ms, None, None))
    return visits


def _closed(device: str, events: Iterable[VisitEvent]) -> list[RecordedVisit]:
    return [
        RecordedVisit(device, e.zone, e.entered_ms, e.left_ms, e.dwell_s)
        for e in events
        if isinstance(e, VisitClosed)
    ]
