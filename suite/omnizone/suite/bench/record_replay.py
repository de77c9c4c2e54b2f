"""``omnizone bench record-replay``: can the recorder keep up with a store, and
does an hour of a store replay quickly with every message delivered once?

(a) ``sim record`` runs as its own process, subscribed to a Mosquitto into
which 50 gateways each publish one BLE message a second; its CPU time (from
``/proc/<pid>/stat`` once it is subscribed, and ``os.wait4`` when it exits)
over the wall time gives its share of one core, start-up left out.
(b) One hour of a 10-gateway store, synthesized with the wire contract, is
replayed at ``--speed 60`` through Mosquitto into a subscriber that checks
each gateway's sequence numbers: lost, duplicated and reordered messages.
"""

import itertools
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.broker import BrokerAccounts, RunningBroker, start_broker
from omnizone.broker.files import write_private
from omnizone.contract.messages import BleMessage, BleSighting, dump_message, parse_message
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.contract.topics import Kind, subscription_filter, topic_for
from omnizone.sim.recording import (
    RecordedMessage,
    RecordingHeader,
    part_path,
    read_recording,
    write_recording,
)
from omnizone.sim.recording.replay import BrokerLogin, replay

BENCH_STORE = "bench-store"
_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"


def gateway_ids(count: int) -> list[str]:
    return [f"gw-{n:02d}" for n in range(1, count + 1)]


def ble_payload(
    store: str, gateway: str, seq: int, sent_ms: int, devices: list[str], rng: random.Random
) -> bytes:
    """One gateway's window of BLE sightings, as the real gateway sends it."""
    items = []
    for device in devices:
        mean = rng.uniform(-95, -55)
        items.append(
            BleSighting(
                device=device,
                window_start_ms=sent_ms - 1000,
                window_ms=1000,
                count=rng.randint(1, 10),
                rssi_mean=round(mean, 1),
                rssi_max=round(min(mean + rng.uniform(0, 6), 20), 1),
                tx_power=-59,
            )
        )
    message = BleMessage(
        store=store, gateway=gateway, epoch=7, seq=seq, sent_ms=sent_ms, items=items
    )
    return dump_message(message)


def synthetic_traffic(
    *, gateways: list[str], seconds: int, start_ms: int, devices: int = 40, seed: int = 13
) -> Iterator[RecordedMessage]:
    """Each gateway sends one message a second hearing a few of ``devices``
    shoppers' phones; receive times jitter by a few milliseconds."""
    rng = random.Random(seed)
    phones = [f"ibeacon:{_UUID}:1:{minor}" for minor in range(devices)]
    for second in range(seconds):
        for seq_offset, gateway in enumerate(gateways):
            sent_ms = start_ms + second * 1000 + seq_offset * 7
            heard = rng.sample(phones, rng.randint(1, min(12, devices)))
            yield RecordedMessage(
                rx_ms=sent_ms + rng.randint(1, 5),
                topic=topic_for(BENCH_STORE, gateway, Kind.BLE),
                payload=ble_payload(BENCH_STORE, gateway, second, sent_ms, heard, rng),
            )


@dataclass
class _Delivery:
    """What a subscriber saw per gateway: lost, duplicated, reordered."""

    seqs: dict[str, list[int]]

    def check(self, expected: dict[str, int]) -> dict[str, int]:
        lost = duplicated = reordered = 0
        for gateway, count in expected.items():
            seen = self.seqs.get(gateway, [])
            unique = set(seen)
            lost += len(set(range(count)) - unique)
            duplicated += len(seen) - len(unique)
            reordered += sum(1 for a, b in itertools.pairwise(seen) if b < a)
        delivered = sum(len(s) for s in self.seqs.values())
        return {
            "delivered": delivered,
            "lost": lost,
            "duplicated": duplicated,
            "reordered": reordered,
        }


def _subscriber(broker: RunningBroker, accounts: BrokerAccounts) -> tuple[mqtt.Client, _Delivery]:
    delivery = _Delivery(defaultdict(list))
    ready = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-subscriber",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(*accounts.server_credentials)

    def on_connect(c: mqtt.Client, *_a: Any) -> None:
        c.subscribe(subscription_filter(BENCH_STORE, "+", Kind.BLE.value), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parsed = parse_message(message.topic, bytes(message.payload))
        delivery.seqs[parsed.gateway].append(parsed.seq)

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    if not ready.wait(15):
        raise RuntimeError("the benchmark's subscriber could not subscribe")
    return client, delivery


def bench_replay(folder: Path, *, gateways: int, hours: float, speed: float) -> dict[str, Any]:
    ids = gateway_ids(gateways)
    seconds = int(hours * 3600)
    path = folder / "store-hour.ozrec"
    header = RecordingHeader(store=BENCH_STORE, started_ms=1_764_748_800_000)
    generate_start = time.perf_counter()
    count = write_recording(
        path, header, synthetic_traffic(gateways=ids, seconds=seconds, start_ms=header.started_ms)
    )
    generate_s = time.perf_counter() - generate_start
    accounts = BrokerAccounts(
        "omnizone-server", "bench-server-pw", {gw: (BENCH_STORE, f"pw-{gw}") for gw in ids}
    )
    with start_broker(accounts, run_dir=folder / "broker-replay", prefer="mosquitto") as broker:
        client, delivery = _subscriber(broker, accounts)
        try:
            stats = replay(
                [path],
                BrokerLogin(broker.host, broker.port),
                accounts.all_gateway_credentials(),
                speed=speed,
            )
            end = time.monotonic() + 30
            while sum(map(len, delivery.seqs.values())) < count and time.monotonic() < end:
                time.sleep(0.05)
        finally:
            client.disconnect()
            client.loop_stop()
    return {
        "gateways": gateways,
        "recorded_s": seconds,
        "messages": count,
        "file_mb": round(path.stat().st_size / 1024 / 1024, 2),
        "generate_s": round(generate_s, 1),
        "speed": speed,
        "wall_s": round(stats.wall_s, 1),
        "target_wall_s": 90,
        **delivery.check({gw: seconds for gw in ids}),
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_recorder(folder: Path, *, gateways: int, seconds: float) -> dict[str, Any]:
    ids = gateway_ids(gateways)
    accounts = BrokerAccounts(
        "omnizone-server",
        "bench-server-pw",
        {gw: (BENCH_STORE, f"pw-{gw}") for gw in ids},
        recorders={BENCH_STORE: "bench-recorder-pw"},
    )
    store_file = folder / "bench-store.yaml"
    store_file.write_text(_store_yaml(ids), encoding="utf-8")
    accounts_file = folder / "accounts.yaml"
    write_private(accounts_file, yaml.safe_dump(accounts.clients_file()))
    out = folder / "recorder.ozrec"
    rng = random.Random(5)
    phones = [f"ibeacon:{_UUID}:1:{minor}" for minor in range(40)]
    with start_broker(accounts, run_dir=folder / "broker-record", prefer="mosquitto") as broker:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "omnizone.suite", "sim", "record", "--store", str(store_file),
             "--out", str(out), "--broker-port", str(broker.port), "--accounts",
             str(accounts_file), "--duration", str(seconds + 5), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert recorder.stderr is not None
            for line in recorder.stderr:  # the recorder says when it is subscribed
                if line.startswith("recording store"):
                    break
            time.sleep(0.5)
            cpu_ready = _cpu_s(recorder.pid)
            wall_ready = time.monotonic()
            clients = _gateway_clients(broker, accounts, ids)
            sent = 0
            start = time.monotonic()
            for second in range(int(seconds)):
                now_ms = wall_clock_ms()
                for gateway in ids:
                    heard = rng.sample(phones, rng.randint(1, 12))
                    payload = ble_payload(BENCH_STORE, gateway, second, now_ms, heard, rng)
                    clients[gateway].publish(topic_for(BENCH_STORE, gateway, Kind.BLE), payload, 1)
                    sent += 1
                delay = start + second + 1 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            time.sleep(1.0)  # the last second's messages reach the recorder and its file
            cpu_busy = _cpu_s(recorder.pid) - cpu_ready
            wall = time.monotonic() - wall_ready
            for client in clients.values():
                client.disconnect()
                client.loop_stop()
            _pid, status, usage = os.wait4(recorder.pid, 0)
        finally:
            if recorder.poll() is None:
                recorder.kill()
    cpu_total = usage.ru_utime + usage.ru_stime
    parts = _parts(out)  # a run across an hour boundary rotates
    recorded = sum(len(read_recording(part).messages) for part in parts)
    return {
        "gateways": gateways,
        "rate_per_gateway_per_s": 1,
        "seconds": seconds,
        "sent": sent,
        "recorded": recorded,
        "parts": len(parts),
        "recorder_exit": os.waitstatus_to_exitcode(status),
        "recorder_cpu_share_of_one_core": round(cpu_busy / wall, 4),
        "measured_wall_s": round(wall, 1),
        "recorder_cpu_s_startup": round(cpu_ready, 2),
        "recorder_cpu_s_total": round(cpu_total, 2),
        "target_cpu_share": 0.05,
    }


def _parts(first: Path) -> list[Path]:
    parts: list[Path] = []
    while part_path(first, len(parts)).exists():
        parts.append(part_path(first, len(parts)))
    return parts


def _gateway_clients(
    broker: RunningBroker, accounts: BrokerAccounts, ids: list[str]
) -> dict[str, mqtt.Client]:
    clients = {}
    for gateway in ids:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"omnizone-gw-{BENCH_STORE}-{gateway}",
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(*accounts.gateway_credentials(gateway))
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients[gateway] = client
    return clients


def _store_yaml(ids: list[str]) -> str:
    """A plain store with one zone per gateway, in a row (the recorder needs only its id)."""
    zones = [
        {"id": f"zone-{n}", "name": f"Zone {n}", "kind": "sales",
         "polygon": [[n * 10, 0], [n * 10 + 10, 0], [n * 10 + 10, 10], [n * 10, 10]]}
        for n in range(len(ids))
    ]  # fmt: skip
    gateways = [{"id": gw, "position": [n * 10 + 5, 5]} for n, gw in enumerate(ids)]
    return yaml.safe_dump(
        {
            "store": {
                "id": BENCH_STORE,
                "name": "Benchmark store",
                "floor": {"width_m": len(ids) * 10, "depth_m": 10},
            },
            "zones": zones,
            "gateways": gateways,
        }
    )


def run_record_replay_bench(
    *, gateways: int = 50, record_s: float = 60, replay_gateways: int = 10, hours: float = 1.0,
    speed: float = 60,
) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="omnizone-bench-rr-") as tmp:
        folder = Path(tmp)
        return {
            "record": bench_recorder(folder, gateways=gateways, seconds=record_s),
            "replay": bench_replay(folder, gateways=replay_gateways, hours=hours, speed=speed),
        }
