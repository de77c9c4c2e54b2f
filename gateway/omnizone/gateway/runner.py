"""Running a gateway on real hardware: bleak scanner feeding the node."""

import asyncio
import contextlib
import logging
import signal

from omnizone.gateway import __version__
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.node import GatewayNode, wall_clock_ms
from omnizone.gateway.outbox import Outbox
from omnizone.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    from bleak import BleakScanner

    outbox = Outbox(settings.outbox_path, settings.outbox_max_messages)
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    link.start()
    # Active scanning works on every BlueZ; passive scanning (issue #3) needs
    # or-patterns and a recent kernel.
    scanner = BleakScanner(detection_callback=node.on_advertisement)
    try:
        await scanner.start()
        node.readers["ble"] = "scanning"
        while not stop.is_set():
            node.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
    finally:
        with contextlib.suppress(Exception):
            await scanner.stop()
        node.tick()
        link.stop()
        outbox.close()
