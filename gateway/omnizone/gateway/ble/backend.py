"""Which bleak backend the BLE scanner runs on is chosen by whoever assembles
the gateway, not by the gateway: ``run_gateway`` takes a provider.

A provider is called with the BLE settings and opens the backend for the
run: an async context manager that yields a ``BaseBleakScanner`` subclass to
pass as ``BleakScanner(backend=…)``, or None for bleak's own platform backend
(BlueZ on a Pi). On leaving it closes whatever it opened.

The gateway ships one provider, ``system_backend``: the Bluetooth adapter. It
refuses ``ble.feed``, because the emulated adapter that reads the feed belongs
to the simulator, and a gateway install holds no path into the simulator. The
suite's ``omnizone gateway run`` passes a provider that serves ``ble.feed``
with the simulator's adapter (``omnizone.sim.devices.ble_backend.udp_feed``).
See docs/ble.md.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

from omnizone.gateway.settings import BleSettings, GatewayConfigError

if TYPE_CHECKING:  # bleak costs a quarter of a second to import: not for `--help`
    from bleak.backends.scanner import BaseBleakScanner

BleBackend: TypeAlias = "type[BaseBleakScanner] | None"
BleBackendProvider: TypeAlias = Callable[[BleSettings], AbstractAsyncContextManager[BleBackend]]


class BleFeedUnavailable(GatewayConfigError):
    """``ble.feed`` is set, but the gateway was assembled without the simulator."""


def feed_needs_simulator(feed: str) -> str:
    return (
        f"ble.feed ({feed}) takes adverts from the simulator's emulated adapter, "
        "and this gateway was assembled without the simulator. Remove ble.feed to "
        "scan with the Bluetooth adapter, or start the gateway with the full "
        "install's `omnizone gateway run` (QA and tests), which brings the simulator."
    )


@asynccontextmanager
async def system_backend(ble: BleSettings) -> AsyncIterator[BleBackend]:
    """The system's Bluetooth adapter through bleak's own backend."""
    if ble.feed:
        raise BleFeedUnavailable(feed_needs_simulator(ble.feed))
    yield None
