"""The gateway's own beacon: what it would register with BlueZ decodes, on
the other gateways, to its gateway beacon key."""

import asyncio

from dbus_fast.service import ServiceInterface

from omnizone.contract.ids import gateway_beacon_key
from omnizone.gateway.ble.advertise import (
    EDDYSTONE_UUID,
    BeaconAdvertisement,
    eddystone_uid_frame,
)
from omnizone.gateway.ble.decode import decode_eddystone
from omnizone.gateway.runner import _advertise
from omnizone.gateway.settings import GatewaySettings

KEY = gateway_beacon_key("paris-rivoli", "gw-shoes")


def test_the_advertised_frame_decodes_to_the_gateway_beacon_key() -> None:
    beacon = decode_eddystone(eddystone_uid_frame(KEY))
    assert beacon is not None and beacon.device == KEY


def test_the_bluez_advertisement_is_a_broadcast_of_that_frame() -> None:
    advertisement = BeaconAdvertisement(KEY)
    properties = {p.name: p.signature for p in ServiceInterface._get_properties(advertisement)}
    assert properties == {"Type": "s", "ServiceUUIDs": "as", "ServiceData": "a{sv}"}
    assert advertisement.Type == "broadcast"
    data = advertisement.ServiceData[EDDYSTONE_UUID].value
    assert decode_eddystone(data).device == KEY  # type: ignore[union-attr]


def test_no_advertising_with_the_simulators_feed_or_when_switched_off() -> None:
    base = {"store": "paris-rivoli", "gateway": "gw-shoes", "password": "x" * 20}
    fed = GatewaySettings(**base, ble={"feed": "udp://127.0.0.1:9"})
    off = GatewaySettings(**base, ble={"advertise_beacon": False})
    assert asyncio.run(_advertise(fed)) is None
    assert asyncio.run(_advertise(off)) is None
