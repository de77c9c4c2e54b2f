"""The simulator is deterministic by seed and hands the gateway real adverts."""

import io
import json
from pathlib import Path

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from omnizone.gateway.ble.decode import decode_advertisement
from omnizone.paths import shipped_config
from omnizone.sim.engine import Simulation
from omnizone.sim.scenario import ScenarioError, load_scenario
from omnizone.store import load_store


class RecordingGateway:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int, str]] = []

    def on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        beacon = decode_advertisement(advertisement.manufacturer_data, advertisement.service_data)
        if beacon is None:
            assert advertisement.service_data, "only a fixed beacon's TLM frame names no device"
            return
        self.heard.append((beacon.device, advertisement.rssi, device.address))

    def tick(self) -> None:
        pass


def _run(seed: int) -> tuple[dict[str, RecordingGateway], str]:
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"), seed=seed, duration_s=120)
    store = load_store(scenario.store_file)
    gateways = {g.id: RecordingGateway() for g in store.gateways}
    truth = io.StringIO()
    Simulation(scenario, store, gateways, ground_truth=truth).run()
    return gateways, truth.getvalue()


def test_same_seed_same_world_different_seed_different_world() -> None:
    first, truth_1 = _run(seed=11)
    again, truth_2 = _run(seed=11)
    _other, truth_3 = _run(seed=12)
    assert truth_1 == truth_2
    assert {g: r.heard for g, r in first.items()} == {g: r.heard for g, r in again.items()}
    assert truth_1 != truth_3


def test_ground_truth_rows_name_a_zone_of_the_store() -> None:
    _gateways, truth = _run(seed=5)
    store = load_store(shipped_config("stores/rivoli.yaml"))
    zones = {z.id for z in store.zones}
    rows = [json.loads(line) for line in truth.splitlines()]
    assert rows
    assert {r["zone"] for r in rows} <= zones
    assert all(r["device"].startswith("eid:") for r in rows)


def test_scenario_paths_resolve_from_the_checkout() -> None:
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"))
    assert Path(scenario.store_file).exists()


def test_app_phones_advertise_rotating_ids_the_server_can_derive() -> None:
    """The first shoppers carry registered app phones: their adverts carry the
    ephemeral id of the current period (omnizone.contract.eid), which changes
    at each period, and the ground truth names the registered shopper."""
    from omnizone.contract.eid import EidParams, eid_device_key
    from omnizone.sim.shoppers import AppPhone

    scenario = load_scenario(shipped_config("scenarios/quick.yaml"), seed=3, duration_s=120)
    store = load_store(scenario.store_file)
    gateways = {g.id: RecordingGateway() for g in store.gateways}
    # 32 s periods (K = 5) that start with the run, as the 30 s ones of the old scheme did
    aligned = -load_scenario(shipped_config("scenarios/quick.yaml")).start.timestamp() % 32
    phones = [
        AppPhone(f"shopper-{i}", EidParams(bytes([i]) * 16, 5, int(aligned))) for i in range(2)
    ]
    truth = io.StringIO()
    arrived: list[str] = []
    simulation = Simulation(
        scenario,
        store,
        gateways,
        ground_truth=truth,
        app_phones=phones,
        arrivals=[lambda shopper: arrived.append(shopper.id)],
    )
    simulation.run()
    heard = {device for g in gateways.values() for device, _rssi, _address in g.heard}
    start = simulation.start_ms
    for phone in phones:
        keys = {eid_device_key(phone.eid, t) for t in range(start, start + 120_000, 32_000)}
        assert len(keys) == 4 and keys <= heard  # one id per 30 s period, every one heard
    rows = [json.loads(line) for line in truth.getvalue().splitlines()]
    devices = {r["device"] for r in rows}
    assert {"shopper-0", "shopper-1"} <= devices
    assert len(arrived) == simulation.counters.shoppers_arrived


def test_an_app_phone_changes_its_address_with_each_id() -> None:
    """An observer who follows a BLE address across a rotation links the two
    ids; so each new id goes out from a new private address, while two phones
    rotate at moments of their own."""
    from omnizone.contract.eid import EidParams
    from omnizone.sim.shoppers import AppPhone

    scenario = load_scenario(shipped_config("scenarios/quick.yaml"), seed=3, duration_s=300)
    store = load_store(scenario.store_file)
    gateways = {g.id: RecordingGateway() for g in store.gateways}
    phones = [
        AppPhone("shopper-0", EidParams(bytes([1]) * 16, 5, 1_000_003)),
        AppPhone("shopper-1", EidParams(bytes([2]) * 16, 5, 2_000_019)),
    ]
    simulation = Simulation(scenario, store, gateways, app_phones=phones)
    start = simulation.start_ms
    simulation.run()
    heard = [(device, address) for g in gateways.values() for device, _rssi, address in g.heard]
    starts = []
    for phone in phones:
        periods = list(phone.eid.periods(start, start + 300_000))
        starts.append({p.start_ms % 32_000 for p in periods})
        ids = {f"eid:{p.eid.hex()}" for p in periods}
        addresses = {device: {a for d, a in heard if d == device} for device in ids}
        on_air = {device: found for device, found in addresses.items() if found}
        assert len(on_air) >= 4  # a visit of minutes: several 32 s periods
        assert all(len(found) == 1 for found in on_air.values())  # one address per id
        used = [next(iter(found)) for found in on_air.values()]
        assert len(set(used)) == len(used)  # never the same address for two ids
        assert all(int(a[:2], 16) >> 6 == 0b01 for a in used)  # resolvable-private style
    assert starts[0] != starts[1]  # the two phones' boundaries differ


def test_app_phone_addresses_leave_the_world_unchanged() -> None:
    """The new addresses come from a stream of their own: the shoppers walk
    the same paths whether or not they carry the app."""
    from omnizone.contract.eid import EidParams
    from omnizone.sim.shoppers import AppPhone

    def truth(phones: list[AppPhone]) -> list[tuple[int, float, float]]:
        scenario = load_scenario(shipped_config("scenarios/quick.yaml"), seed=4, duration_s=120)
        store = load_store(scenario.store_file)
        out = io.StringIO()
        gateways = {g.id: RecordingGateway() for g in store.gateways}
        Simulation(scenario, store, gateways, ground_truth=out, app_phones=phones).run()
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        return [(r["t_ms"], r["x"], r["y"]) for r in rows]

    assert truth([]) == truth([AppPhone("shopper-0", EidParams(bytes(16), 4, 7))])


def test_a_moved_display_must_name_a_zone_shoppers_choose() -> None:
    """Issue 18: an attraction change for a zone no shopper picks is refused, named."""
    scenario = load_scenario(shipped_config("scenarios/display-moved.yaml"))
    data = scenario.model_dump()
    data["shoppers"]["attraction"] = [{"at_s": 1, "zone": "denimm", "weight": 2.0}]
    bad = type(scenario).model_validate(data)
    with pytest.raises(ScenarioError, match=r"shoppers.attraction.0.zone: 'denimm'"):
        Simulation(bad, load_store(scenario.store_file), {})
