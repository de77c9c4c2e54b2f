"""`omnizone gateway doctor` against a real broker and a fake sysfs tree."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from omnizone.broker import BrokerAccounts, RunningBroker, find_mosquitto, start_broker
from omnizone.broker.secrets import PLACEHOLDERS
from omnizone.gateway.doctor import check_bluetooth, check_outbox, diagnose
from omnizone.gateway.settings import load_gateway_settings


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    if find_mosquitto() is None:
        pytest.skip("needs the mosquitto binary")
    accounts = BrokerAccounts("omnizone-server", "srv", {"gw-entrance": ("paris-rivoli", "right")})
    with start_broker(accounts, run_dir=tmp_path_factory.mktemp("broker")) as running:
        yield running


def _config(tmp_path: Path, broker: RunningBroker, password: str, port: int | None = None) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "store: paris-rivoli\ngateway: gw-entrance\n"
        f"broker_host: 127.0.0.1\nbroker_port: {port or broker.port}\npassword: {password}\n"
        f"outbox_path: {tmp_path / 'outbox.db'}\n"
    )
    return path


def _by_check(findings: list) -> dict:  # type: ignore[type-arg]
    return {f.check: f for f in findings}


def test_right_credentials_log_in(tmp_path: Path, broker: RunningBroker) -> None:
    found = _by_check(diagnose(_config(tmp_path, broker, "right")))
    assert found["config"].verdict == "ok"
    assert found["outbox"].verdict == "ok"
    assert found["broker"].verdict == "ok", found["broker"]


def test_a_wrong_password_says_so(tmp_path: Path, broker: RunningBroker) -> None:
    found = _by_check(diagnose(_config(tmp_path, broker, "wrong")))
    assert found["broker"].verdict == "fail"
    assert "password" in found["broker"].fix


def test_an_unreachable_broker_says_where(tmp_path: Path, broker: RunningBroker) -> None:
    from omnizone.broker import free_port

    found = _by_check(diagnose(_config(tmp_path, broker, "right", port=free_port())))
    assert found["broker"].verdict == "fail"
    assert "cannot reach 127.0.0.1" in found["broker"].detail


def test_a_broken_config_file_is_the_only_finding(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("store: paris-rivoli\ngateway: gw-entrance\n")
    (finding,) = diagnose(path)
    assert (
        finding.verdict == "fail" and "password" in finding.detail and str(path) in finding.detail
    )


def test_bluetooth_adapter_missing_blocked_or_present(tmp_path: Path) -> None:
    missing = check_bluetooth(tmp_path / "none")
    assert missing[0].verdict == "fail" and "adapter" in missing[0].fix
    sysfs = tmp_path / "bluetooth"
    (sysfs / "hci0" / "rfkill3").mkdir(parents=True)
    (sysfs / "hci0" / "rfkill3" / "soft").write_text("1\n")
    blocked = check_bluetooth(sysfs)
    assert blocked[0].verdict == "fail" and "rfkill unblock" in blocked[0].fix
    (sysfs / "hci0" / "rfkill3" / "soft").write_text("0\n")
    assert check_bluetooth(sysfs)[0].verdict == "ok"


def test_a_missing_outbox_folder_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"store: s\ngateway: g\npassword: p\noutbox_path: {tmp_path / 'nope' / 'outbox.db'}\n"
    )
    (finding,) = check_outbox(load_gateway_settings(path))
    assert finding.verdict == "fail" and "install -d" in finding.fix


def test_the_command_exits_non_zero_and_prints_json(tmp_path: Path, broker: RunningBroker) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnizone.suite",
            "gateway",
            "doctor",
            "--json",
            "-c",
            str(_config(tmp_path, broker, "wrong")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert {c["check"] for c in report["checks"]} >= {"config", "outbox", "bluetooth", "broker"}


def test_rfid_readers_are_probed_over_their_serial_port(tmp_path: Path) -> None:
    from omnizone.gateway.doctor import check_rfid_readers
    from omnizone.sim.devices.uhf_reader import EmulatedUhfReader

    with EmulatedUhfReader() as reader:
        path = tmp_path / "gateway.yaml"
        path.write_text(
            "store: s\ngateway: g\npassword: p\n"
            f"rfid:\n  - {{id: fitting-1, port: {reader.port}}}\n"
            f"  - {{id: fitting-2, port: {tmp_path / 'ttyUSB9'}}}\n"
        )
        found = {f.check: f for f in check_rfid_readers(load_gateway_settings(path))}
    assert found["rfid fitting-1"].verdict == "ok", found["rfid fitting-1"]
    assert found["rfid fitting-2"].verdict == "fail"
    assert "dialout" in found["rfid fitting-2"].detail


def test_nfc_readers_are_opened(tmp_path: Path) -> None:
    from omnizone.gateway.doctor import check_nfc_readers
    from omnizone.sim.devices.nfc_tag import NfcTagEmulator

    with NfcTagEmulator() as card:
        path = tmp_path / "gateway.yaml"
        path.write_text(
            "store: s\ngateway: g\npassword: p\n"
            f"nfc:\n  - {{tap_point: kiosk-1, device: '{card.device}'}}\n"
            "  - {tap_point: kiosk-2, device: 'usb:ffff:ffff'}\n"
        )
        found = {f.check: f for f in check_nfc_readers(load_gateway_settings(path))}
    assert found["nfc kiosk-1"].verdict == "ok", found["nfc kiosk-1"]
    assert found["nfc kiosk-2"].verdict == "fail"
    assert "plugdev" in found["nfc kiosk-2"].fix


# -- issue 16: the file a TLS failure is about, example passwords, .local names ----------


def _tls_config(tmp_path: Path, ca: Path, host: str = "127.0.0.1", port: int = 8883) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"store: paris-rivoli\ngateway: gw-entrance\nbroker_host: {host}\n"
        f"broker_port: {port}\npassword: a-real-password-123\ntls_ca: {ca}\n"
        f"outbox_path: {tmp_path / 'outbox.db'}\nble:\n  enabled: false\n"
    )
    return path


def test_a_missing_ca_file_is_named_not_errno_2(tmp_path: Path, broker: RunningBroker) -> None:
    missing = tmp_path / "etc" / "ca.crt"
    found = _by_check(diagnose(_tls_config(tmp_path, missing, port=broker.port)))
    assert found["tls"].verdict == "fail"
    assert found["tls"].detail == f"the CA file {missing} (tls_ca) does not exist"
    assert str(missing) in found["tls"].fix and "install" in found["tls"].fix
    # the broker check says the same instead of paho's bare "[Errno 2] No such file …"
    assert found["broker"].verdict == "fail" and str(missing) in found["broker"].detail
    assert "Errno" not in found["broker"].detail and "Errno" not in found["tls"].detail


def test_a_ca_file_that_is_no_certificate_or_a_folder_is_named(tmp_path: Path) -> None:
    from omnizone.gateway.doctor import ca_file_problem

    empty = tmp_path / "ca.crt"
    empty.write_text("not a certificate\n")
    problem = ca_file_problem(str(empty))
    assert problem is not None and str(empty) in problem and "PEM" in problem
    assert (
        ca_file_problem(str(tmp_path))
        == f"tls_ca {tmp_path} is a folder, not a CA certificate file"
    )


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDERS))
def test_every_example_password_is_refused(tmp_path: Path, placeholder: str) -> None:
    """The project's one list of example secrets (omnizone.broker.secrets)."""
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "store: paris-rivoli\ngateway: gw-entrance\nbroker_port: 9\n"
        f"password: {json.dumps(placeholder)}\noutbox_path: {tmp_path / 'outbox.db'}\n"
        "ble:\n  enabled: false\n"
    )
    found = _by_check(diagnose(path, broker_timeout_s=0.5))
    assert found["password"].verdict == "fail", placeholder
    assert "example value" in found["password"].detail


def test_a_local_broker_name_gets_mdns_advice_not_resolv_conf(tmp_path: Path) -> None:
    from omnizone.gateway.doctor import check_broker

    host = "omnizone-no-such-broker.local"
    settings = load_gateway_settings(_tls_config(tmp_path, Path(certifi.where()), host=host))
    (finding,) = check_broker(settings, timeout_s=1)
    assert finding.verdict == "fail" and f"cannot resolve {host}" in finding.detail
    assert "mDNS" in finding.fix and "avahi-daemon libnss-mdns" in finding.fix
    assert "not through the DNS servers in /etc/resolv.conf" in finding.fix
    other = load_gateway_settings(
        _tls_config(tmp_path, Path(certifi.where()), host="no-such.invalid")
    )
    (plain,) = check_broker(other, timeout_s=1)
    assert "mDNS" not in plain.fix and "/etc/resolv.conf" in plain.fix


def test_mdns_advice_says_whether_this_pi_asks_mdns(tmp_path: Path) -> None:
    from omnizone.gateway.doctor import is_mdns_name, mdns_advice

    assert is_mdns_name("broker.LOCAL.") and not is_mdns_name("broker.localdomain")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files\nhosts:          files dns\n")
    assert "has no mdns" in mdns_advice("broker.local", nsswitch)
    nsswitch.write_text("hosts: files mdns4_minimal [NOTFOUND=return] dns\n")
    advice = mdns_advice("broker.local", nsswitch)
    assert "has no mdns" not in advice and "avahi-daemon running there" in advice
