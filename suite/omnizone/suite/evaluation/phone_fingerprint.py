"""``omnizone eval fingerprint --through-phone``: a survey from the phone's
side sent through the phone path, scored beside the direct classifiers
(issue 15, point 7: the calibration issue's fingerprint targets through this
path).

The store file (``sim datasets convert`` writes one per split of UCI and
manwestc) names the training survey as its ``localization.survey``; a server
made by ``build_server`` (the production composition root, as ``omnizone
server run`` makes one) is started from it and learns from that survey as a
deployed store does. Each test row is what a phone heard in one second:
a shopper registered through the public API with ``location_analytics``
consent posts it with the reference client
(``omnizone/contract/phone_client.py``) to ``POST /api/v1/me/beacons`` of the
server's FastAPI app (in process, through ``TestClient``: the real routing,
authentication, validation, rate limit and use case), ingest places the
shopper with the store's filter, and a placement subscription records the
zone the server placed each shopper in for that window. A row the server
does not place (outside, or not decided) counts as wrong.

Two ways to send the rows:

- ``rows`` (the default): every test row is its own shopper's only window,
  so each row is placed on its own, as the direct classifiers classify it.
- ``walk``: one shopper per true zone sends that zone's test rows as
  consecutive windows (in the test file's order), as a phone standing there;
  the filter carries its belief from row to row, so this flatters the path
  against the per-row classifiers, and is reported beside them, not instead.

Beside it, from the same training survey and test rows:
``evaluate_fingerprint`` (our model: the learned tables × the trees; the Gaussian radio map with the
store's path-loss map, the peers kNN k=3, random forest 200 and gradient
boosting) and ``server_model`` (the server's own filter, built as the server
builds it and fed each row directly, no API: what the phone path must
reproduce).
"""

import secrets
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from omnizone.contract.phone_client import BEACONS_PATH, PhoneBeaconClient, Post
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.bootstrap import build_server
from omnizone.server.domain.localize.learned import align_readings
from omnizone.server.domain.localize.survey import Survey, load_survey
from omnizone.server.service.locators import ZonePlacement, grid_localizer
from omnizone.server.service.radio_setup import radio_setup
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan, load_store
from omnizone.suite.evaluation.fingerprint import (
    REQUIRED_MARGIN,
    TEST_SUFFIX,
    TRAIN_SUFFIX,
    SuiteError,
    classifier_features,
    evaluate_fingerprint,
    suite_pairs,
)

SendMode = Literal["rows", "walk"]
WINDOW_MS = 1000
#: The first window starts this far before the server's clock (windows more
#: than 10 minutes behind it are stale, docs/mobile-sdk.md).
LEAD_WINDOWS = 5
MAX_WALK_WINDOWS = 500


def evaluate_through_phone(
    store_path: str | Path, test_path: str | Path, *, mode: SendMode = "rows"
) -> dict[str, Any]:
    """The test rows through the phone path into a server started from
    ``store_path`` (which names the training survey), beside the direct
    classifiers trained on that survey."""
    plan = load_store(store_path)
    train = radio_setup(plan).survey
    if train is None:
        raise SuiteError(f"{store_path}: names no localization.survey to learn from")
    test = load_survey(test_path, plan)
    direct = evaluate_fingerprint(train, test, plan=plan)
    sequences = _sequences(test, mode)
    phone = send_through_phone(Path(store_path), plan, test, sequences)
    truth = list(test.zones)
    phone_zones = phone.pop("zones")
    model_zones = server_model_zones(plan, test, sequences)
    best = direct["best_peer"]
    accuracy = _accuracy(truth, phone_zones)
    placed = [(t, z) for t, z in zip(truth, phone_zones, strict=True) if z is not None]
    margin = round(accuracy - direct["peers"][best]["zone_accuracy"], 4)
    return {
        "store": plan.id,
        "train": plan.localization.survey,
        "test": str(test_path),
        "mode": mode,
        "n_train": len(train),
        "n_test": len(test),
        "zones": len(plan.zones),
        "through_phone": {
            "zone_accuracy": accuracy,
            "placed": len(placed),
            "unplaced": len(truth) - len(placed),
            "accuracy_of_placed": _accuracy([t for t, _ in placed], [z for _, z in placed]),
            **phone,
        },
        "server_model": {
            "zone_accuracy": _accuracy(truth, model_zones),
            "same_zone_as_through_phone": sum(
                a == b for a, b in zip(model_zones, phone_zones, strict=True)
            ),
            "what": "the server's filter built from the store file, fed the rows directly",
        },
        "direct": {
            "zone_accuracy": direct["zone_accuracy"],
            "method": direct["method"],
            "model": direct["model"],
            "radio_map": direct["radio_map"],
        },
        "peers": {k: v["zone_accuracy"] for k, v in direct["peers"].items()},
        **_walk_peer(train, test, sequences, accuracy, mode),
        "best_peer": best,
        "best_peer_accuracy": direct["peers"][best]["zone_accuracy"],
        "margin_over_best_peer": margin,
        "direct_margin_over_best_peer": direct["margin_over_best_peer"],
        "required_margin": REQUIRED_MARGIN,
        "ahead_of_best_peer": margin >= REQUIRED_MARGIN,
    }


def evaluate_through_phone_suite(
    folder: str | Path,
    *,
    mode: SendMode = "rows",
    on_pair: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every ``<name>-train.csv`` / ``<name>-test.csv`` pair of ``folder`` that
    has a store file ``<name>.yaml`` naming its train half; the others are
    listed as skipped (no store to send their readings to)."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name, train, test in suite_pairs(folder):
        store = Path(folder) / f"{name}.yaml"
        if not store.is_file():
            skipped.append(name)
            continue
        named = load_store(store).localization.survey
        if named is None or Path(named).resolve() != train.resolve():
            raise SuiteError(f"{store}: localization.survey is not {train.name}")
        if on_pair is not None:
            on_pair(name)
        rows.append({"name": name, **evaluate_through_phone(store, test, mode=mode)})
    if not rows:
        raise SuiteError(
            f"{folder}: no pair has a store file <name>.yaml "
            f"(<name>{TRAIN_SUFFIX} / <name>{TEST_SUFFIX}; `sim datasets convert` writes them)"
        )
    behind = [row["name"] for row in rows if not row["ahead_of_best_peer"]]
    return {
        "folder": str(folder),
        "mode": mode,
        "required_margin": REQUIRED_MARGIN,
        "pairs": rows,
        "skipped_no_store": skipped,
        "behind": behind,
        "ahead_everywhere": not behind,
    }


def _sequences(test: Survey, mode: SendMode) -> list[list[int]]:
    """Which rows each shopper sends, as consecutive windows."""
    if mode == "rows":
        return [[i] for i in range(len(test))]
    by_zone: dict[str, list[int]] = defaultdict(list)
    for i, zone in enumerate(test.zones):
        by_zone[zone].append(i)
    sequences = [by_zone[zone] for zone in sorted(by_zone)]
    longest = max(len(s) for s in sequences)
    if longest > MAX_WALK_WINDOWS:
        raise SuiteError(f"walk: a zone has {longest} test rows, more than {MAX_WALK_WINDOWS}")
    return sequences


def heard_by_row(plan: StorePlan, test: Survey) -> list[dict[str, tuple[float, int]]]:
    """Each row as one window of the contract: beacon key -> (RSSI, 1 sample)."""
    key = {b.id: b.device for b in plan.beacons}
    key.update({b.device: b.device for b in plan.beacons})
    columns = [(col, key[a]) for col, a in enumerate(test.anchors) if a in key]
    return [
        {beacon: (round(float(row[col]), 2), 1) for col, beacon in columns if np.isfinite(row[col])}
        for row in test.rssi
    ]


def send_through_phone(
    store_file: Path, plan: StorePlan, test: Survey, sequences: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """Start a server from ``store_file``, register one consented shopper per
    sequence through the API, post each sequence's rows as consecutive
    windows with the reference client, and read back the zone the server
    placed each row's shopper in for that row's window (None: not placed)."""
    from fastapi.testclient import TestClient

    heard = heard_by_row(plan, test)
    with tempfile.TemporaryDirectory(prefix="omnizone-phone-fp-") as tmp:
        folder = Path(tmp)
        settings = ServerSettings(
            database_url=f"sqlite:///{folder / 'server.db'}",
            store_files=[store_file],
            localizer="grid",
            api_keys={secrets.token_urlsafe(32): ["read"]},
            campaign_files=[],
            vapid_key_file=folder / "vapid.pem",
            # one process registers every phone from one address, as the benches do
            open_route_rate_per_minute=0.0,
        )
        parts = build_server(settings)
        try:
            placed: dict[tuple[str, int], str | None] = {}

            def record(_store: str, placement: ZonePlacement) -> None:
                placed[(placement.device, placement.at_ms)] = placement.zone

            parts.ingest.subscribe_to_placements(record)
            api = TestClient(parts.app)
            shoppers = [_consented_shopper(api, plan.id) for _ in sequences]
            clients = [
                PhoneBeaconClient(plan.id, _post(api, token), batch_windows=2)
                for _, token in shoppers
            ]
            longest = max(len(s) for s in sequences)
            first = (wall_clock_ms() // WINDOW_MS - longest - LEAD_WINDOWS) * WINDOW_MS
            for t in range(longest):  # every phone's window t before anyone's t + 1
                for client, rows in zip(clients, sequences, strict=True):
                    if t < len(rows):
                        client.window(first + t * WINDOW_MS, heard[rows[t]])
                        if t == len(rows) - 1:
                            client.cut()
                        client.flush()
            parts.ingest.finish(plan.id)
            stats = api.get(
                f"/api/v1/stores/{plan.id}/phones/stats",
                headers={"X-API-Key": next(iter(settings.api_keys))},
            ).json()
            zones: list[str | None] = [None] * len(test)
            for (shopper, _), rows in zip(shoppers, sequences, strict=True):
                for t, row in enumerate(rows):
                    zones[row] = placed.get((shopper, first + (t + 1) * WINDOW_MS))
            refused = sum(c.counters.refused + c.counters.retried for c in clients)
        finally:
            parts.close()
    return {
        "zones": zones,
        "shoppers": len(shoppers),
        "batches_posted": sum(c.counters.sent for c in clients),
        "batches_refused_or_retried": refused,
        "server": {
            key: stats[key]
            for key in ("batches", "windows", "windows_stale", "windows_late", "beacon_readings")
        }
        | {"unknown_beacons": stats["unknown_beacons"]},
    }


def _consented_shopper(api: Any, store: str) -> tuple[str, str]:
    """Register an app install and grant location consent, as the app does."""
    registered = api.post("/api/v1/shoppers", json={"store": store})
    if registered.status_code != 201:
        raise RuntimeError(f"registering a shopper: {registered.status_code} {registered.text}")
    body = registered.json()
    consent = api.put(
        "/api/v1/me/consent",
        json={"location_analytics": True, "personalized_offers": False},
        headers={"Authorization": f"Bearer {body['token']}"},
    )
    if consent.status_code != 200:
        raise RuntimeError(f"granting consent: {consent.status_code} {consent.text}")
    return str(body["shopper_id"]), str(body["token"])


def _post(api: Any, token: str) -> Post:
    """The reference client's transport, into the in-process app."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(body: bytes) -> tuple[int, bytes]:
        response = api.post(BEACONS_PATH, content=body, headers=headers)
        return int(response.status_code), bytes(response.content)

    return post


def server_model_zones(
    plan: StorePlan, test: Survey, sequences: Sequence[Sequence[int]]
) -> list[str | None]:
    """The server's own filter (``grid_localizer`` with the store's radio
    setup, as ``make_locators`` builds it) fed the same sequences directly,
    one device per sequence, window t of every sequence together, its
    beacons reported by the phone: the zone it reports for each row, with no
    API, service or ingest in between."""
    model = grid_localizer(plan, WINDOW_MS, radio=radio_setup(plan))
    anchors = model.anchors
    beacons = np.array([a in {b.id for b in plan.beacons} for a in anchors], dtype=bool)
    aligned, _ = align_readings(test, anchors)
    present = np.zeros(len(anchors), dtype=bool)
    zones: list[str | None] = [None] * len(test)
    for t in range(max(len(rows) for rows in sequences)):
        sending = [(f"phone-{k}", rows[t]) for k, rows in enumerate(sequences) if t < len(rows)]
        devices = [device for device, _ in sending]
        rows_now = [row for _, row in sending]
        listened = np.tile(beacons, (len(devices), 1))
        decisions = model.update(
            (t + 1) * WINDOW_MS, devices, aligned[rows_now], present, listened=listened
        )
        zone = {d.device: d.zone for d in decisions}
        for device, row in sending:
            zones[row] = zone.get(device)
    return zones


def _walk_peer(
    train: Survey, test: Survey, sequences: Sequence[Sequence[int]], ours: float, mode: SendMode
) -> dict[str, Any]:
    if mode != "walk":
        return {}
    forest = walk_forest(train, test, sequences)
    margin = round(ours - forest["zone_accuracy"], 4)
    return {
        "walk_forest": forest,
        "margin_over_walk_forest": margin,
        "ahead_of_walk_forest": margin >= REQUIRED_MARGIN,
    }


def walk_forest(train: Survey, test: Survey, sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The walk's advantage given to a peer: the random forest (200 trees, as
    in ``eval fingerprint``) with its class probabilities averaged over the
    phone's windows so far, so it too places a row knowing the rows before."""
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

    forest = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1)
    forest.fit(classifier_features(train.rssi), list(train.zones))
    aligned, _ = align_readings(test, train.anchors)
    proba = forest.predict_proba(classifier_features(aligned))
    classes = np.array([str(c) for c in forest.classes_], dtype=object)
    guesses: list[str | None] = [None] * len(test)
    for rows in sequences:
        running = np.cumsum(proba[list(rows)], axis=0)
        for row, best in zip(rows, running.argmax(axis=1).tolist(), strict=True):
            guesses[row] = str(classes[best])
    return {
        "zone_accuracy": _accuracy(list(test.zones), guesses),
        "what": "random forest 200, probabilities averaged over the walk so far",
    }


def _accuracy(truth: Sequence[str], guesses: Sequence[str | None]) -> float:
    right = sum(t == g for t, g in zip(truth, guesses, strict=True))
    return round(right / len(truth), 4) if truth else 0.0
