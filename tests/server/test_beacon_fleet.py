"""Fixed beacons heard by gateways, through ingest: never a shopper, never a
stored sighting; the beacon fleet keeps last heard, signal and TLM, and the
API and /metrics show them with their alerts (silent, low battery, weak
signal) on the store's own clock."""

from fastapi.testclient import TestClient

from omnizone.contract import BeaconTelemetry, BleMessage, BleSighting, dump_message, topic_for
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.domain.beacons import BeaconRules, beacon_alerts, signal_drop_db
from omnizone.server.entrypoints.api import create_app
from omnizone.server.entrypoints.beacon_fleet_api import BeaconFleetCollector, beacon_fleet_router
from omnizone.server.service.beacon_fleet import BeaconFleet
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.queries import StoreQueries
from omnizone.store import StorePlan

from .conftest import DEVICE_A, STORE, T0

READ = {"X-API-Key": "read-key-123456"}
WALL = "bcn-outerwear-wall"
CHECKOUT = "bcn-checkout"


def _message(
    gateway: str, seq: int, at_ms: int, heard: dict[str, float], tlm: dict[str, BeaconTelemetry]
) -> tuple[str, bytes]:
    items = [
        BleSighting(
            device=device,
            window_start_ms=at_ms - 1000,
            window_ms=1000,
            count=1,
            rssi_mean=rssi,
            rssi_max=rssi,
            telemetry=tlm.get(device),
        )
        for device, rssi in heard.items()
    ]
    message = BleMessage(store=STORE, gateway=gateway, seq=seq, sent_ms=at_ms, items=items)
    return topic_for(STORE, gateway, "ble"), dump_message(message)


def _feed(
    plan: StorePlan,
    service: IngestService,
    seconds: range,
    *,
    wall_battery: int,
    checkout_until_s: int,
    wall_quieter_after_s: int | None = None,
) -> None:
    """gw-outerwear and gw-entrance hear the wall beacon, gw-checkout the
    checkout one (until it dies); a shopper is heard all along."""
    wall = plan.beacons[0].device
    checkout = plan.beacons[1].device
    for s in seconds:
        at = T0 + s * 1000
        quieter = 10.0 if wall_quieter_after_s is not None and s >= wall_quieter_after_s else 0.0
        tlm = (
            {
                wall: BeaconTelemetry(
                    battery_mv=wall_battery,
                    temperature_c=19.5,
                    adv_count=s,
                    uptime_s=s,
                    heard_ms=at,
                )
            }
            if s % 10 == 0
            else {}
        )
        service.handle(
            *_message("gw-outerwear", s, at, {wall: -60.0 - quieter, DEVICE_A: -70.0}, tlm), at
        )
        service.handle(*_message("gw-entrance", s, at, {wall: -75.0 - quieter}, {}), at)
        heard = {checkout: -58.0} if s < checkout_until_s else {DEVICE_A: -80.0}
        service.handle(*_message("gw-checkout", s, at, heard, {}), at)


def _app(
    plan: StorePlan, repo: SqlRepository, fleet: BeaconFleet, service: IngestService
) -> TestClient:
    queries = StoreQueries({plan.id: plan}, repo, service.event_time)
    app = create_app(
        queries,
        {"read-key-123456": ["read"]},
        routers=[lambda require: beacon_fleet_router(fleet, require)],
        collectors=[BeaconFleetCollector(fleet)],
    )
    return TestClient(app)


def test_fixed_beacons_go_to_the_fleet_never_to_shoppers_and_the_api_shows_alerts(
    plan: StorePlan, repo: SqlRepository
) -> None:
    fleet = BeaconFleet({plan.id: plan})
    placed: list[str] = []

    def placement(_store: str, p: ZonePlacement) -> None:
        placed.append(p.device)

    service = IngestService(
        {plan.id: plan},
        repo,
        placement_listeners=[placement],
        gateway_hearing_listeners=[fleet.observe],
    )
    fleet.set_clock(service.heard_span)
    # 15 minutes: the checkout beacon dies after 2, the wall beacon's cell is low.
    _feed(plan, service, range(1, 901), wall_battery=2410, checkout_until_s=120)
    service.finish(plan.id)
    beacon_keys = {b.device for b in plan.beacons}
    assert service.counters.fixed_beacons == 900 * 2 + 119
    assert beacon_keys.isdisjoint(placed) and DEVICE_A in placed
    for key in beacon_keys:  # nothing about a beacon is written as a sighting
        assert not repo.device_history(key)["sightings"]

    client = _app(plan, repo, fleet, service)
    url = f"/api/v1/stores/{STORE}/beacons"
    assert client.get(url).status_code == 401
    assert client.get("/api/v1/stores/nowhere/beacons", headers=READ).status_code == 404
    body = client.get(url, headers=READ).json()
    assert body["clock_ms"] == T0 + 900_000
    rows = {r["beacon"]: r for r in body["beacons"]}
    wall, checkout = rows[WALL], rows[CHECKOUT]
    assert wall["last_heard_ms"] == T0 + 900_000 and wall["silent_s"] == 0.0
    assert wall["gateways_hearing"] == 2 and wall["strongest_gateway"] == "gw-outerwear"
    assert wall["rssi_dbm"] == -60.0
    assert (wall["battery_mv"], wall["temperature_c"], wall["adv_count"]) == (2410, 19.5, 900)
    assert wall["alerts"] == ["low-battery"]
    assert checkout["last_heard_ms"] == T0 + 119_000
    assert checkout["silent_s"] == 781.0 and checkout["alerts"] == ["silent"]
    assert checkout["battery_mv"] is None  # it sent no TLM
    assert "bc:" not in str(body).lower()  # ids, never addresses
    kinds = {(a["beacon"], a["kind"]) for a in body["alerts"]}
    unheard = {b.id for b in plan.beacons} - {WALL, CHECKOUT}  # the store's other beacons
    assert kinds == {(WALL, "low-battery"), (CHECKOUT, "silent")} | {(b, "silent") for b in unheard}

    metrics = client.get("/metrics", headers=READ).text
    assert (
        'omnizone_beacon_battery_mv{beacon="bcn-outerwear-wall",store="paris-rivoli"} 2410.0'
        in (metrics)
    )
    assert (
        'omnizone_beacon_alert{beacon="bcn-checkout",kind="silent",store="paris-rivoli"} 1.0'
        in metrics
    )
    assert 'omnizone_beacon_silent_seconds{beacon="bcn-checkout",store="paris-rivoli"} 781.0' in (
        metrics
    )


def test_a_beacon_heard_quieter_by_its_gateways_is_flagged_weak(
    plan: StorePlan, repo: SqlRepository
) -> None:
    fleet = BeaconFleet({plan.id: plan})
    service = IngestService({plan.id: plan}, repo, gateway_hearing_listeners=[fleet.observe])
    fleet.set_clock(service.heard_span)
    _feed(plan, service, range(1, 301), wall_battery=2900, checkout_until_s=10**6)
    before = {r.beacon: r for r in fleet.view(plan.id).beacons}
    assert before[WALL].alerts == () and before[CHECKOUT].alerts == ()
    _feed(
        plan,
        service,
        range(301, 661),
        wall_battery=2900,
        checkout_until_s=10**6,
        wall_quieter_after_s=301,
    )
    after = {r.beacon: r for r in fleet.view(plan.id).beacons}
    assert after[WALL].alerts == ("weak-signal",)
    assert after[WALL].drop_db == 10.0
    assert after[CHECKOUT].alerts == ()


def test_a_beacon_never_heard_is_silent_once_the_store_has_run_long_enough(
    plan: StorePlan, repo: SqlRepository
) -> None:
    fleet = BeaconFleet({plan.id: plan}, rules=BeaconRules(silent_after_ms=60_000))
    service = IngestService({plan.id: plan}, repo, gateway_hearing_listeners=[fleet.observe])
    fleet.set_clock(service.heard_span)
    wall = plan.beacons[0].device
    for s in range(1, 91):
        service.handle(*_message("gw-outerwear", s, T0 + s * 1000, {wall: -60.0}, {}), T0)
    rows = {r.beacon: r for r in fleet.view(plan.id).beacons}
    assert rows[CHECKOUT].last_heard_ms is None and rows[CHECKOUT].alerts == ("silent",)
    assert rows[WALL].alerts == ()
    # A saved layout keeps the history of beacons that kept their id and key.
    fleet.replace_plan(plan)
    assert {r.beacon: r.last_heard_ms for r in fleet.view(plan.id).beacons}[WALL] == T0 + 90_000


def test_the_alert_rules_in_words() -> None:
    rules = BeaconRules()
    assert (
        beacon_alerts(
            "b", now_ms=T0, last_heard_ms=T0, watched_since_ms=T0, battery_mv=None, drop_db=None
        )
        == []
    )
    [silent] = beacon_alerts(
        "b",
        now_ms=T0 + rules.silent_after_ms,
        last_heard_ms=T0,
        watched_since_ms=T0,
        battery_mv=2600,
        drop_db=2.0,
    )
    assert silent.kind == "silent" and "silent for 10 min" in silent.message
    [low, weak] = beacon_alerts(
        "b", now_ms=T0, last_heard_ms=T0, watched_since_ms=T0, battery_mv=2499, drop_db=6.5
    )
    assert (low.kind, weak.kind) == ("low-battery", "weak-signal")
    assert "2499 mV" in low.message and "6.5 dB quieter" in weak.message
    # The drop needs enough readings on both sides, per gateway.
    heard = {"g1": [(t, -60.0) for t in range(10)] + [(t, -70.0) for t in range(10, 14)]}
    assert signal_drop_db(heard, 10, 5) is None
    heard["g1"].append((14, -70.0))
    assert signal_drop_db(heard, 10, 5) == 10.0
