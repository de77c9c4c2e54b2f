"""Pure parts of record and replay: rotation, part names and order, the replay
plan (pace, order, times shifted through the contract), and the docs' example."""

import gzip
import re
from pathlib import Path

import pytest

from omnizone.contract.messages import parse_message
from omnizone.contract.topics import Kind, topic_for
from omnizone.sim.recording import (
    RecordedMessage,
    RecordingError,
    RecordingHeader,
    RecordingWriter,
    iter_messages,
    part_path,
    read_recording,
    recording_files,
    write_recording,
)
from omnizone.sim.recording.record import HOUR_MS, must_rotate, rates_per_second
from omnizone.sim.recording.replay import ReplayError, plan_replay, shift_payload
from omnizone.suite.bench.record_replay import synthetic_traffic

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_748_800_000  # 2025-12-03T08:00:00Z, on an hour boundary


def test_parts_rotate_on_size_and_on_each_utc_hour() -> None:
    assert not must_rotate(100, 1000, T0, T0 + HOUR_MS - 1)
    assert must_rotate(1000, 1000, T0, T0 + 1)
    assert must_rotate(0, 1000, T0 + HOUR_MS - 1, T0 + HOUR_MS)


def test_rotated_parts_are_named_beside_the_first() -> None:
    assert part_path("out/rivoli.ozrec", 0) == Path("out/rivoli.ozrec")
    assert part_path("out/rivoli.ozrec", 1) == Path("out/rivoli.0001.ozrec")
    assert part_path("out/rivoli", 12) == Path("out/rivoli.0012")


def test_rates_are_per_gateway_per_second() -> None:
    from collections import Counter

    rates = rates_per_second(Counter(a=2), Counter(a=6, b=1), 2.0)
    assert rates == {"a": 2.0, "b": 0.5}


def _message(gateway: str, rx_ms: int) -> RecordedMessage:
    return RecordedMessage(rx_ms, topic_for("paris-rivoli", gateway, Kind.STATUS), b"{}")


def test_a_folder_of_parts_replays_in_header_order_whatever_the_names(tmp_path: Path) -> None:
    for part, name in [(2, "b.ozrec"), (0, "c.ozrec"), (1, "a.ozrec")]:
        header = RecordingHeader(store="paris-rivoli", started_ms=T0 + part * HOUR_MS, part=part)
        write_recording(tmp_path / name, header, [_message("gw-shoes", T0 + part * HOUR_MS)])
    assert [p.name for p in recording_files([tmp_path])] == ["c.ozrec", "a.ozrec", "b.ozrec"]
    (tmp_path / "notes.txt").write_text("not a recording")
    with pytest.raises(RecordingError, match=r"notes\.txt"):
        recording_files([tmp_path])


def test_the_plan_keeps_order_and_scales_the_recorded_pace() -> None:
    messages = [_message("gw-a", T0), _message("gw-b", T0 + 500), _message("gw-a", T0 + 3000)]
    assert [p.at_s for p in plan_replay(messages, speed=2)] == [0.0, 0.25, 1.5]
    assert [p.at_s for p in plan_replay(messages, speed=0)] == [0.0, 0.0, 0.0]
    assert [p.gateway for p in plan_replay(messages, speed=1)] == ["gw-a", "gw-b", "gw-a"]
    with pytest.raises(ReplayError, match="speed"):
        plan_replay(messages, speed=-1)


def test_shifting_moves_every_time_and_nothing_else() -> None:
    original = next(iter(synthetic_traffic(gateways=["gw-01"], seconds=1, start_ms=T0)))
    offset = 86_400_000
    shifted = parse_message(original.topic, shift_payload(original.topic, original.payload, offset))
    before = parse_message(original.topic, original.payload)
    assert shifted.sent_ms == before.sent_ms + offset
    for old, new in zip(before.items, shifted.items, strict=True):  # type: ignore[union-attr]
        assert new.window_start_ms == old.window_start_ms + offset
        assert new.window_ms == old.window_ms  # a duration, not a time
        assert (new.device, new.rssi_mean, new.count) == (old.device, old.rssi_mean, old.count)
    assert (shifted.seq, shifted.gateway) == (before.seq, before.gateway)


def test_a_payload_the_contract_refuses_cannot_be_shifted() -> None:
    bad = RecordedMessage(T0, topic_for("paris-rivoli", "gw-a", Kind.BLE), b"not json")
    with pytest.raises(ReplayError, match="message 1 cannot be shifted"):
        plan_replay([bad], speed=1, shift_ms=1000)
    assert plan_replay([bad], speed=1)[0].payload == b"not json"  # as recorded


def test_the_format_example_in_docs_parses(tmp_path: Path) -> None:
    text = (REPO / "docs" / "recording.md").read_text(encoding="utf-8")
    example = re.search(r"```jsonl\n(.*?)```", text, re.S)
    assert example is not None, "docs/recording.md has a ```jsonl example"
    path = tmp_path / "example.ozrec"
    path.write_bytes(gzip.compress(example.group(1).encode()))
    recording = read_recording(path)
    assert recording.header.store == "paris-rivoli"
    assert len(recording.messages) == 2
    for message in recording.messages:
        if message.topic.endswith("/ble"):
            parse_message(message.topic, message.payload)


def _cli(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from omnizone.suite.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "500"})
    return result.exit_code, " ".join(result.output.split())


def test_bad_options_and_files_exit_2_with_a_message_naming_them(tmp_path: Path) -> None:
    store = str(REPO / "config" / "stores" / "rivoli.yaml")
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("gateways: {gw-entrance: pw}\n")
    code, text = _cli("sim", "record", "--store", store, "--out", str(tmp_path / "r.ozrec"))
    assert code == 2 and "--accounts FILE or --password-file" in text
    code, text = _cli(
        "sim", "record", "--store", store, "--out", "r.ozrec", "--accounts", str(accounts)
    )
    assert code == 2 and "no 'recorders:" in text and "paris-rivoli" in text
    broken = tmp_path / "broken.ozrec"
    broken.write_bytes(b"plain text, not gzip")
    code, text = _cli("sim", "replay", str(broken), "--accounts", str(accounts))
    assert code == 2 and "broken.ozrec" in text and "not gzip" in text
    missing = tmp_path / "gw.ozrec"
    header = RecordingHeader(store="paris-rivoli", started_ms=T0)
    write_recording(missing, header, [_message("gw-shoes", T0)])
    code, text = _cli("sim", "replay", str(missing), "--accounts", str(accounts), "--fast")
    assert code == 2 and "no password for gateway(s) gw-shoes" in text


def test_streaming_reads_what_the_whole_file_reader_reads_also_after_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crashed.ozrec"
    traffic = list(synthetic_traffic(gateways=["gw-01", "gw-02"], seconds=30, start_ms=T0))
    now = [T0]
    writer = RecordingWriter(
        path, RecordingHeader(store="bench-store", started_ms=T0), clock=lambda: now[0]
    )
    for message in traffic:
        now[0] = message.rx_ms
        writer.add(message)  # a member a second
    writer.flush()
    complete = path.stat().st_size
    with path.open("ab") as handle:  # a member cut off by a crash
        handle.write(gzip.compress(traffic[0].to_line())[:-9])
    whole = read_recording(path)
    assert whole.truncated_bytes == path.stat().st_size - complete
    assert whole.messages == traffic
    for chunk in (64, 1000, 1 << 20):  # members across chunk edges, several per chunk
        assert list(iter_messages(path, chunk_bytes=chunk)) == traffic
