"""``omnizone bench gateway``: how fast the BLE path is and what it costs on a gateway.

Three figures (issue #3, targets in docs/benchmarks.md):

- ``adverts_per_s``: decode + aggregate on one core, a tight loop through
  ``GatewayNode.on_advertisement`` over prebuilt advertisements;
- ``cpu_percent_at_2000_adverts_s``: the whole pipeline (BleakScanner on the
  emulated adapter, raw bytes parsed per advert, node, windows, real outbox)
  paced at ``rate`` adverts/s, as process CPU time over wall time (100 = one core);
- ``rss_mb``: resident memory after the paced run.

The measurements run in a fresh ``python -m omnizone.suite.bench.gateway`` process so
that memory reflects a gateway process (no numpy, FastAPI or SQLAlchemy loaded),
not the CLI that asked.
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HEAVY_MODULES = ("numpy", "fastapi", "sqlalchemy", "uvicorn")


def advert_mix(devices: int, seed: int = 3) -> list[tuple[str, bytes, int]]:
    """(address, raw payload, rssi) as a store hears them: half of the adverts name
    no beacon (Apple Continuity, Google Fast Pair, Microsoft Swift Pair) and must be
    dropped; the rest are shopper-app Eddystone-EID (rotating id) and fixed iBeacons."""
    from omnizone.gateway.ble.adstructures import (
        AD_FLAGS,
        AD_MANUFACTURER,
        AD_SERVICE_DATA16,
        AD_UUID16_COMPLETE,
        ad_structure,
        eddystone_eid_payload,
        ibeacon_payload,
    )

    rng = random.Random(seed)
    store_uuid = uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
    flags = ad_structure(AD_FLAGS, b"\x1a")

    def noise() -> bytes:
        kind = rng.randrange(4)
        if kind == 0:  # Continuity "Nearby Info": an iPhone in a pocket
            return flags + ad_structure(AD_MANUFACTURER, b"\x4c\x00\x10\x05" + rng.randbytes(5))
        if kind == 1:  # Continuity proximity pairing: AirPods
            return ad_structure(AD_MANUFACTURER, b"\x4c\x00\x07\x19" + rng.randbytes(25))
        if kind == 2:  # Google Fast Pair (service 0xFE2C), model id
            return (
                flags
                + ad_structure(AD_UUID16_COMPLETE, b"\x2c\xfe")
                + ad_structure(AD_SERVICE_DATA16, b"\x2c\xfe" + rng.randbytes(3))
            )
        return ad_structure(AD_MANUFACTURER, b"\x06\x00\x03\x00\x80" + rng.randbytes(4))

    beacons: list[bytes] = []
    for i in range(devices):
        if i % 10 < 7:  # phones running the shopper app
            beacons.append(eddystone_eid_payload(rng.randbytes(8), -20 + rng.randrange(5)))
        else:  # fixed beacons on shelves
            beacons.append(ibeacon_payload(store_uuid, 1, i, -59))
    adverts: list[tuple[str, bytes, int]] = []
    for i in range(max(4 * devices, 1000)):
        address = ":".join(f"{b:02X}" for b in rng.randbytes(6))
        payload = beacons[i % len(beacons)] if i % 2 else noise()
        adverts.append((address, payload, -95 + rng.randrange(60)))
    return adverts


def measure_throughput(seconds: float = 1.0, devices: int = 300) -> dict[str, Any]:
    """Decode + aggregate, one core, including window closes into a real outbox."""
    from bleak.backends.device import BLEDevice

    from omnizone.gateway.ble.adstructures import parse_ad_structures
    from omnizone.gateway.node import GatewayNode
    from omnizone.gateway.outbox import Outbox

    mix = advert_mix(devices)
    prepared = [
        (BLEDevice(address, None, None), parse_ad_structures(payload, rssi))
        for address, payload, rssi in mix
    ]
    with tempfile.TemporaryDirectory(prefix="omnizone-bench-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db")
        node = GatewayNode("bench", "gw-bench", outbox, window_ms=1000)
        on_advertisement = node.on_advertisement
        done = 0
        gc.collect()
        started = time.perf_counter()
        cpu_started = time.process_time()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for device, advertisement in prepared:
                on_advertisement(device, advertisement)
            done += len(prepared)
            node.tick()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        node.tick()
        kept = node.counters.adverts_kept
        outbox.close()
    return {
        "adverts": done,
        "kept": kept,
        "wall_s": round(wall, 3),
        "adverts_per_s": round(done / cpu) if cpu > 0 else 0,
    }


async def _paced(seconds: float, rate: int, devices: int, outbox_dir: Path) -> dict[str, Any]:
    from omnizone.contract.timefmt import wall_clock_ms
    from omnizone.gateway.ble.scanner import BleScannerService
    from omnizone.gateway.node import GatewayNode
    from omnizone.gateway.outbox import Outbox
    from omnizone.sim.devices.ble_backend import EmulatedAdapter

    mix = advert_mix(devices)
    adapter = EmulatedAdapter("hci0")
    outbox = Outbox(outbox_dir / "outbox.db")
    node = GatewayNode("bench", "gw-bench", outbox, window_ms=1000)
    # Active scanning is the costlier case: every advert reaches Python, none is
    # filtered by BlueZ's or-patterns first.
    service = BleScannerService(node, scanning_mode="active", backend=adapter.backend)
    await service.start()
    step_s = 0.005
    pushed = 0
    i = 0
    gc.collect()
    started = time.perf_counter()
    cpu_started = time.process_time()
    next_tick = started
    end = started + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - started) * rate) - pushed
        for _ in range(due):
            address, payload, rssi = mix[i]
            adapter.push(address, payload, rssi)
            i = i + 1 if i + 1 < len(mix) else 0
        pushed += max(due, 0)
        if now >= next_tick:  # what the runner's loop does every 100 ms
            node.tick()
            next_tick += 0.1
        await asyncio.sleep(step_s)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    scanner_state = node.readers["ble"]
    await service.stop()
    # let the open window end so its sightings reach the outbox too (not measured)
    await asyncio.sleep((node.window_ms - wall_clock_ms() % node.window_ms) / 1000 + 0.01)
    node.tick()
    result = {
        "pushed": pushed,
        "delivered": adapter.counters.delivered,
        "kept": node.counters.adverts_kept,
        "messages": node.counters.messages_enqueued,
        "scanner": scanner_state,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_percent": round(100 * cpu / wall, 2) if wall > 0 else 0.0,
    }
    outbox.close()
    return result


def _rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB from /proc/self/status; 0 where there is no /proc."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return round(values["VmRSS"], 1), round(values["VmHWM"], 1)


def measure_in_process(seconds: float, rate: int, devices: int) -> dict[str, Any]:
    """The paced run, memory, then throughput: what the subprocess does."""
    with tempfile.TemporaryDirectory(prefix="omnizone-bench-") as tmp:
        paced = asyncio.run(_paced(seconds, rate, devices, Path(tmp)))
    rss, peak = _rss_mb()
    heavy = sorted(name for name in HEAVY_MODULES if name in sys.modules)
    throughput = measure_throughput(min(max(seconds, 0.2), 2.0), devices)
    return {
        "adverts_per_s": throughput["adverts_per_s"],
        "cpu_percent_at_2000_adverts_s": paced["cpu_percent"],
        "rss_mb": rss,
        "rss_peak_mb": peak,
        "paced": paced,
        "throughput": throughput,
        "heavy_modules_loaded": heavy,
    }


def run_gateway_bench(
    *, seconds: float = 5.0, rate: int = 2000, devices: int = 300
) -> dict[str, Any]:
    """Run the gateway benchmark in a fresh interpreter; one JSON-able dict."""
    if seconds <= 0 or rate <= 0 or devices <= 0:
        raise ValueError("seconds, rate and devices must be positive")
    command = [
        sys.executable,
        "-m",
        "omnizone.suite.bench.gateway",
        "--seconds",
        str(seconds),
        "--rate",
        str(rate),
        "--devices",
        str(devices),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds * 4 + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway bench process failed ({done.returncode}): {done.stderr}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        **measured,
        "seconds": seconds,
        "rate": rate,
        "devices": devices,
        "scanning_mode": "active",
        "window_ms": 1000,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=300)
    args = parser.parse_args(argv)
    result = measure_in_process(args.seconds, args.rate, args.devices)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
