"""The gateway's own beacon: its adapter advertises a fixed Eddystone-UID
(``gateway_beacon_key``) so the other gateways hear it and the server can fit
the radio with no survey (docs/localization.md, "Self-calibration").

bleak scans but cannot advertise; on a Pi this registers a broadcast
advertisement with BlueZ's ``org.bluez.LEAdvertisingManager1`` over the system
D-Bus, through ``dbus-fast`` (which bleak already brings). Advertising and
scanning share the adapter; BlueZ interleaves them. Untested here against a
real BlueZ (the tests check the advertisement's content only): see
docs/ble.md for what to check on a Pi.
"""

import logging
from typing import Annotated

from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature, DBusStr
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_property, method

from omnizone.contract.ids import eddystone_uid_parts

log = logging.getLogger(__name__)

EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
PATH = "/org/omnizone/beacon0"
#: Eddystone's "calibrated power at 0 m" byte; the server fits the receivers
#: and does not read it.
TX_POWER_0M = -20


def eddystone_uid_frame(key: str, tx_power_0m: int = TX_POWER_0M) -> bytes:
    """The Eddystone-UID service data of ``key`` (frame type 0x00)."""
    namespace, instance = eddystone_uid_parts(key)
    return bytes([0x00, tx_power_0m & 0xFF]) + namespace + instance + b"\x00\x00"


class BeaconAdvertisement(ServiceInterface):
    """``org.bluez.LEAdvertisement1``: a non-connectable broadcast of the frame."""

    def __init__(self, key: str) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self.frame = eddystone_uid_frame(key)

    @method()
    def Release(self) -> None:
        log.info("BlueZ released the gateway beacon advertisement")

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> Annotated[list[str], DBusSignature("as")]:
        return [EDDYSTONE_UUID]

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> Annotated[dict[str, Variant], DBusSignature("a{sv}")]:
        return {EDDYSTONE_UUID: Variant("ay", self.frame)}


class BeaconAdvertiser:
    """Registers the advertisement for the run; ``stop`` takes it back."""

    def __init__(self, key: str, adapter: str | None = None) -> None:
        self.key = key
        self._adapter = f"/org/bluez/{adapter or 'hci0'}"
        self._bus: MessageBus | None = None

    async def start(self) -> None:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        self._bus = bus
        bus.export(PATH, BeaconAdvertisement(self.key))
        manager = await self._manager(bus)
        await manager.call_register_advertisement(PATH, {})
        log.info("advertising the gateway beacon %s on %s", self.key, self._adapter)

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        try:
            manager = await self._manager(bus)
            await manager.call_unregister_advertisement(PATH)
        finally:
            bus.disconnect()

    async def _manager(self, bus: MessageBus):  # type: ignore[no-untyped-def]
        introspection = await bus.introspect("org.bluez", self._adapter)
        proxy = bus.get_proxy_object("org.bluez", self._adapter, introspection)
        return proxy.get_interface("org.bluez.LEAdvertisingManager1")
