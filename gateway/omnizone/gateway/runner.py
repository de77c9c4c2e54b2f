"""Running a gateway: the readers the settings name, feeding one node, whose
outbox one MQTT link drains. SIGTERM/SIGINT stop it cleanly (readers first,
then a last window, then flush and the offline status).

The BLE backend is passed in (``ble_backend``, see ble/backend.py), so the
gateway never reaches into the simulator for the emulated adapter."""

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from omnizone.contract.ids import gateway_beacon_key
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.gateway import __version__
from omnizone.gateway.ble.backend import BleBackend, BleBackendProvider, system_backend
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.gateway.settings import GatewaySettings, check_password, plaintext_warning

if TYPE_CHECKING:  # dbus-fast comes with bleak on Linux; imported when advertising
    from omnizone.gateway.ble.advertise import BeaconAdvertiser

log = logging.getLogger(__name__)

TICK_S = 0.1


async def run_gateway(
    settings: GatewaySettings,
    stop: asyncio.Event | None = None,
    *,
    ble_backend: BleBackendProvider = system_backend,
) -> None:
    """Run until `stop` is set or a signal arrives. `ble_backend` opens the
    scanner's bleak backend for the run; the default refuses ``ble.feed``."""
    check_password(settings)  # an example password: refused before anything starts
    async with contextlib.AsyncExitStack() as backends:
        # Opened first: a backend that refuses (ble.feed without the simulator)
        # stops the gateway before it logs in to the broker.
        backend: BleBackend = None
        if settings.ble.enabled:
            backend = await backends.enter_async_context(ble_backend(settings.ble))
        await _run(settings, stop or asyncio.Event(), backend)


async def _run(settings: GatewaySettings, stop: asyncio.Event, backend: BleBackend) -> None:
    from omnizone.gateway.ble.scanner import BleScannerService
    from omnizone.gateway.nfc.reader import NfcReader
    from omnizone.gateway.rfid.reader import RfidReader

    outbox = Outbox(settings.outbox_path, settings.outbox_max_messages)
    if (warning := plaintext_warning(settings)) is not None:
        log.warning("NO TLS: %s", warning)
    link = MqttLink(
        BrokerAddress(
            settings.broker_host,
            settings.broker_port,
            settings.username or settings.gateway,
            settings.password,
            settings.tls_ca,
        ),
        settings.store,
        settings.gateway,
        outbox,
        wall_clock_ms,
        __version__,
    )
    node = GatewayNode(
        settings.store,
        settings.gateway,
        outbox,
        window_ms=settings.window_ms,
        health_interval_ms=round(settings.health_interval_s * 1000),
        on_enqueued=link.notify,
    )
    link.on_config(node.apply_config_message)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    link.start()
    scanner: BleScannerService | None = None
    advertiser: BeaconAdvertiser | None = None
    readers: list[NfcReader | RfidReader] = [
        *(NfcReader(node, s) for s in settings.nfc),
        *(RfidReader(s, node) for s in settings.rfid),
    ]
    try:
        if settings.ble.enabled:
            scanner = BleScannerService(
                node,
                scanning_mode=settings.ble.scanning_mode,
                watchdog_s=settings.ble.watchdog_s,
                adapter=settings.ble.adapter,
                backend=backend,
            )
            await scanner.start()
        advertiser = await _advertise(settings)
        for reader in readers:
            reader.start()
        log.info("gateway %s/%s running", settings.store, settings.gateway)
        while not stop.is_set():
            node.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_S)
    finally:
        for reader in readers:
            with contextlib.suppress(Exception):
                reader.stop()
        if scanner is not None:
            with contextlib.suppress(Exception):
                await scanner.stop()
        if advertiser is not None:
            with contextlib.suppress(Exception):
                await advertiser.stop()
        node.tick()
        link.stop()
        outbox.close()


async def _advertise(settings: GatewaySettings) -> "BeaconAdvertiser | None":
    """Advertise the gateway's own beacon (self-calibration) where it can: a
    Pi's BlueZ. Not with ``ble.feed`` (the simulator emulates it), and a
    failure is logged, not fatal: scanning goes on, and the server still fits
    this gateway from what it hears, though the others never hear it."""
    ble = settings.ble
    if not (ble.enabled and ble.advertise_beacon) or ble.feed:
        return None
    key = ble.beacon or gateway_beacon_key(settings.store, settings.gateway)
    try:
        from omnizone.gateway.ble.advertise import BeaconAdvertiser

        advertiser = BeaconAdvertiser(key, ble.adapter)
        await advertiser.start()
    except Exception as error:  # no BlueZ, no D-Bus, an adapter that cannot advertise
        log.warning(
            "not advertising the gateway beacon %s (self-calibration will not hear this "
            "gateway): %s: %s",
            key,
            type(error).__name__,
            error,
        )
        return None
    return advertiser
