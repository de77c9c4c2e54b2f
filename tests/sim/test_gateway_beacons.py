"""The simulator's gateways advertise their own beacons, and the other
gateways hear them through their hidden true radio, like a phone's advert."""

import math
from collections import defaultdict

import numpy as np
import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from omnizone.gateway.ble.decode import decode_advertisement
from omnizone.paths import shipped_config
from omnizone.sim.engine import Simulation
from omnizone.sim.scenario import ScenarioError, load_scenario
from omnizone.store import load_store


class Ears:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int]] = []

    def on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        beacon = decode_advertisement(advertisement.manufacturer_data, advertisement.service_data)
        if beacon is None:
            return  # a fixed beacon's TLM frame (test_fixed_beacons.py)
        self.heard.append((beacon.device, advertisement.rssi))

    def tick(self) -> None:
        pass


def test_each_gateway_hears_the_others_beacons_through_its_own_hidden_radio() -> None:
    scenario = load_scenario(shipped_config("scenarios/selfcal.yaml"), duration_s=60).model_copy(
        update={
            "shoppers": load_scenario(shipped_config("scenarios/quick.yaml")).shoppers.model_copy(
                update={"arrivals_per_minute": 0.0, "initial_shoppers": 0}
            )
        }
    )
    store = load_store(scenario.store_file)
    ears = {g.id: Ears() for g in store.gateways}
    simulation = Simulation(scenario, store, ears)
    simulation.run()
    beacons = store.gateway_beacons
    assert simulation.counters.gateway_beacons_heard > 60 * 10 * 5
    for gateway in store.gateways:
        heard = [h for h in ears[gateway.id].heard if h[0] in beacons]  # not fixed beacons
        senders = {beacons[key] for key, _ in heard}
        assert gateway.id not in senders  # an adapter does not hear itself
        assert len(senders) >= 7
        # The mean RSSI of each pair is the receiver's hidden radio at that distance.
        true = scenario.radio.gateways[gateway.id]
        by_sender: dict[str, list[int]] = defaultdict(list)
        for key, rssi in heard:
            by_sender[beacons[key]].append(rssi)
        position = {g.id: g.position for g in store.gateways}
        for sender, values in by_sender.items():
            if len(values) < 40:
                continue  # far pairs lose packets and the weak ones to sensitivity
            d = math.dist(position[sender], gateway.position)
            expected = true.power_1m_dbm - 10 * true.exponent * math.log10(d)
            assert float(np.mean(values)) == pytest.approx(expected, abs=2.0), (gateway.id, sender)


def test_gateway_beacons_leave_the_shoppers_world_unchanged() -> None:
    base = load_scenario(shipped_config("scenarios/quick.yaml"), duration_s=60)
    store = load_store(base.store_file)
    heard = []
    for interval in (0, 1000):
        scenario = base.model_copy(
            update={"radio": base.radio.model_copy(update={"gateway_beacon_interval_ms": interval})}
        )
        ears = {g.id: Ears() for g in store.gateways}
        Simulation(scenario, store, ears).run()
        heard.append(
            {g: [h for h in e.heard if h[0] not in store.gateway_beacons] for g, e in ears.items()}
        )
    assert heard[0] == heard[1] and any(heard[0].values())


def test_hidden_radio_for_a_gateway_the_store_lacks_is_refused() -> None:
    scenario = load_scenario(shipped_config("scenarios/selfcal.yaml"), duration_s=10)
    radio = scenario.radio.model_copy(
        update={
            "gateways": {
                **scenario.radio.gateways,
                "gw-nowhere": scenario.radio.gateways["gw-shoes"],
            }
        }
    )
    store = load_store(scenario.store_file)
    with pytest.raises(ScenarioError, match=r"radio\.gateways\.gw-nowhere"):
        Simulation(
            scenario.model_copy(update={"radio": radio}),
            store,
            {g.id: Ears() for g in store.gateways},
        )
