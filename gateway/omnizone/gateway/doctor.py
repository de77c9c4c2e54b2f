"""`omnizone gateway doctor`: what a technician needs to know after mounting a
gateway: is each part there and working, and if not, what to do about it.

Each check is a small function returning a Finding; none of them changes
anything or publishes data (the broker check only connects and subscribes to
the gateway's own config topic).
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from omnizone.contract import Kind, topic_for
from omnizone.gateway.settings import (
    GatewayConfigError,
    GatewaySettings,
    check_password,
    load_gateway_settings,
    plaintext_warning,
)

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


Probe = Callable[[GatewaySettings], Iterable[Finding]]


def diagnose(
    config_path: Path | None,
    *,
    extra_probes: Iterable[Probe] = (),
    bluetooth_root: Path = Path("/sys/class/bluetooth"),
    broker_timeout_s: float = 5.0,
) -> list[Finding]:
    try:
        settings = load_gateway_settings(config_path)
    except GatewayConfigError as error:
        return [
            Finding(
                "config",
                "fail",
                str(error),
                "fix the file (see config/gateway.example.yaml), then run doctor again",
            )
        ]
    findings = [Finding("config", "ok", f"{config_path or 'environment'}: {settings.gateway}")]
    findings += check_secrets(settings)
    findings += check_outbox(settings)
    findings += check_clock()
    if settings.ble.enabled and not settings.ble.feed:
        findings += check_bluetooth(bluetooth_root)
    findings += check_rfid_readers(settings)
    findings += check_nfc_readers(settings)
    for probe in extra_probes:
        findings += probe(settings)
    findings += check_broker(settings, broker_timeout_s)
    return findings


# -- storage and clock ----------------------------------------------------------


def check_outbox(settings: GatewaySettings) -> list[Finding]:
    folder = settings.outbox_path.parent
    if not folder.exists():
        return [
            Finding(
                "outbox",
                "fail",
                f"{folder} does not exist",
                f"sudo install -d -o omnizone -g omnizone {folder}",
            )
        ]
    if not os.access(folder, os.W_OK):
        return [
            Finding(
                "outbox",
                "fail",
                f"{folder} is not writable by this user",
                f"sudo chown omnizone: {folder} (or run as the user the service runs as)",
            )
        ]
    free_mb = shutil.disk_usage(folder).free / 1e6
    if free_mb < 200:
        return [
            Finding(
                "outbox",
                "warn",
                f"only {free_mb:.0f} MB free in {folder}",
                "free disk space: a long network outage is buffered here",
            )
        ]
    return [Finding("outbox", "ok", f"{settings.outbox_path} writable, {free_mb:.0f} MB free")]


def check_clock() -> list[Finding]:
    now = time.time()
    if now < 1_704_067_200:  # 2024-01-01
        return [
            Finding(
                "clock",
                "fail",
                time.strftime("system time is %Y-%m-%d %H:%M", time.gmtime(now)),
                "the Pi has no real-time clock: enable NTP (sudo timedatectl set-ntp true)",
            )
        ]
    synced = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if synced == "no":
        return [
            Finding(
                "clock",
                "warn",
                "time is not NTP-synchronised",
                "sudo timedatectl set-ntp true; event times come from this clock",
            )
        ]
    return [Finding("clock", "ok", "system time is plausible" + (" (NTP)" if synced else ""))]


# -- Bluetooth -------------------------------------------------------------------


def check_bluetooth(root: Path) -> list[Finding]:
    adapters = sorted(p.name for p in root.glob("hci*")) if root.exists() else []
    if not adapters:
        return [
            Finding(
                "bluetooth",
                "fail",
                "no Bluetooth adapter found",
                "plug in a Bluetooth adapter (or enable the built-in one: "
                "dtoverlay must not disable it), then: sudo systemctl enable --now bluetooth",
            )
        ]
    findings = []
    blocked = [a for a in adapters if _rfkill_blocked(root / a)]
    if blocked:
        findings.append(
            Finding(
                "bluetooth",
                "fail",
                f"{', '.join(blocked)} blocked by rfkill",
                "sudo rfkill unblock bluetooth",
            )
        )
    else:
        findings.append(Finding("bluetooth", "ok", f"adapter(s): {', '.join(adapters)}"))
    version = _run(["bluetoothctl", "--version"])
    match = re.search(r"(\d+)\.(\d+)", version or "")
    if match is None:
        findings.append(
            Finding(
                "bluez",
                "fail",
                "bluetoothctl not found: BlueZ is not installed",
                "sudo apt install bluez && sudo systemctl enable --now bluetooth",
            )
        )
    elif (int(match[1]), int(match[2])) < (5, 56):
        findings.append(
            Finding(
                "bluez",
                "warn",
                f"BlueZ {match[0]}: passive scanning needs 5.56+ (active scanning will be used)",
                "upgrade BlueZ, or accept active scanning",
            )
        )
    else:
        findings.append(
            Finding(
                "bluez",
                "ok",
                f"BlueZ {match[0]}; passive scanning also needs bluetoothd --experimental",
            )
        )
    return findings


def _rfkill_blocked(adapter: Path) -> bool:
    for state in adapter.glob("rfkill*/soft"):
        try:
            if state.read_text().strip() == "1":
                return True
        except OSError:
            continue
    return False


# -- readers ----------------------------------------------------------------------


def check_rfid_readers(settings: GatewaySettings) -> list[Finding]:
    from omnizone.gateway.rfid.reader import probe_reader

    findings = []
    for reader in settings.rfid:
        ok, message = probe_reader(reader)
        findings.append(
            Finding(
                f"rfid {reader.id}",
                "ok" if ok else "fail",
                message,
                "" if ok else "see docs/rfid.md (wiring, udev rule, group dialout)",
            )
        )
    return findings


def check_nfc_readers(settings: GatewaySettings) -> list[Finding]:
    from omnizone.gateway.nfc.reader import open_frontend

    findings = []
    for tap in settings.nfc:
        try:
            frontend = open_frontend(tap.device)
        except (OSError, ValueError, LookupError) as error:
            findings.append(
                Finding(
                    f"nfc {tap.tap_point}",
                    "fail",
                    f"cannot open the reader on {tap.device!r}: {error}",
                    "plug the reader in; for USB readers install the udev rule "
                    "and add the user to group plugdev (see docs/nfc.md)",
                )
            )
            continue
        frontend.close()
        findings.append(Finding(f"nfc {tap.tap_point}", "ok", f"reader on {tap.device!r} opens"))
    return findings


# -- the broker --------------------------------------------------------------------

_CONNACK_FIXES = {
    4: "the username or password is wrong: compare with the broker's password file",
    5: "the broker refuses this gateway: is it provisioned (password file + ACL)?",
    134: "the username or password is wrong: compare with the broker's password file",
    135: "the broker refuses this gateway: is it provisioned (password file + ACL)?",
}


def check_secrets(settings: GatewaySettings) -> list[Finding]:
    """The password is not the example one; the link uses TLS (a loud warning if not)."""
    found: list[Finding] = []
    try:
        check_password(settings)
    except GatewayConfigError as error:
        found.append(
            Finding("password", "fail", str(error), "set the password of this gateway's account")
        )
    warning = plaintext_warning(settings)
    if settings.tls_ca and (problem := ca_file_problem(settings.tls_ca)) is not None:
        found.append(Finding("tls", "fail", problem, ca_file_fix(settings.tls_ca)))
    elif warning is None:
        found.append(
            Finding("tls", "ok", f"TLS, broker certificate checked against {settings.tls_ca}")
        )
    else:
        found.append(
            Finding(
                "tls",
                "warn",
                f"NO TLS: {warning}",
                "set tls_ca: /etc/omnizone/ca.crt and broker_port: 8883",
            )
        )
    return found


def ca_file_problem(path: str) -> str | None:
    """Why the ``tls_ca`` file cannot be used, naming it; None when it loads."""
    ca = Path(path)
    try:
        if not ca.exists():
            return f"the CA file {path} (tls_ca) does not exist"
        if ca.is_dir():
            return f"tls_ca {path} is a folder, not a CA certificate file"
        ssl.create_default_context(cafile=path)
    except PermissionError:
        return f"the CA file {path} (tls_ca) cannot be read by this user (permission denied)"
    except ssl.SSLError as error:
        return f"the CA file {path} (tls_ca) holds no usable PEM certificate ({error.reason})"
    except OSError as error:
        return f"cannot read the CA file {path} (tls_ca): {error.strerror}"
    return None


def ca_file_fix(path: str) -> str:
    return (
        f"copy the CA certificate that signed the broker's certificate (PEM) to {path}, "
        f"readable by the service user: sudo install -m 0644 ca.crt {path} "
        "(docs/deploy-raspberry-pi.md)"
    )


def is_mdns_name(host: str) -> bool:
    """``broker.local``: a multicast-DNS name (RFC 6762), not one DNS servers know."""
    return host.rstrip(".").lower().endswith(".local")


def mdns_advice(host: str, nsswitch: Path = Path("/etc/nsswitch.conf")) -> str:
    """What to do when a ``.local`` broker name does not resolve: such names are
    answered by mDNS (Avahi + nss-mdns), never by the servers in /etc/resolv.conf."""
    try:
        hosts = [
            line
            for line in nsswitch.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("hosts:")
        ]
    except OSError:
        hosts = []
    resolving = bool(hosts) and "mdns" in hosts[0]
    state = (
        "This Pi asks mDNS (the hosts: line of /etc/nsswitch.conf has mdns): is the "
        "broker's host announcing the name (avahi-daemon running there) and on the same "
        "network segment?"
        if resolving
        else "This Pi does not ask mDNS: the hosts: line of /etc/nsswitch.conf has no mdns."
    )
    return (
        f"{host} is a .local name: it resolves through mDNS (multicast DNS), not through the "
        f"DNS servers in /etc/resolv.conf. {state} Install and start Avahi with the NSS "
        "module: sudo apt install avahi-daemon libnss-mdns (it adds "
        "'mdns4_minimal [NOTFOUND=return]' before 'dns' on the hosts: line), then check with "
        f"avahi-resolve -n {host}; or set broker_host to the broker's IP address or DNS name"
    )


def check_broker(settings: GatewaySettings, timeout_s: float = 5.0) -> list[Finding]:
    host, port = settings.broker_host, settings.broker_port
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]
    except socket.gaierror as error:
        fix = (
            mdns_advice(host)
            if is_mdns_name(host)
            else "check broker_host and the Pi's DNS (/etc/resolv.conf)"
        )
        return [Finding("broker", "fail", f"cannot resolve {host}: {error.strerror}", fix)]
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as error:
        return [
            Finding(
                "broker",
                "fail",
                f"cannot reach {host}:{port} ({address[0]}): {error}",
                "is the broker running and the port open in the firewall? "
                "(8883 with TLS, 1883 without)",
            )
        ]
    return [_mqtt_login(settings, timeout_s)]


def _mqtt_login(settings: GatewaySettings, timeout_s: float) -> Finding:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    outcome: dict[str, Any] = {}
    done = threading.Event()
    config_topic = topic_for(settings.store, settings.gateway, Kind.CONFIG)

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome["connack"] = reason
        if reason.is_failure:
            done.set()
        else:
            client.subscribe(config_topic, qos=1)

    def on_subscribe(_c: mqtt.Client, _u: Any, _m: int, reasons: Any, _p: Any) -> None:
        outcome["suback"] = reasons
        done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"omnizone-doctor-{settings.gateway}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(settings.username or settings.gateway, settings.password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    where = f"{settings.broker_host}:{settings.broker_port}"
    if settings.tls_ca and (problem := ca_file_problem(settings.tls_ca)) is not None:
        return Finding("broker", "fail", f"cannot use TLS to {where}: {problem}",
                       ca_file_fix(settings.tls_ca))  # fmt: skip
    try:
        if settings.tls_ca:
            client.tls_set(ca_certs=settings.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.connect(settings.broker_host, settings.broker_port, keepalive=10)
    except ssl.SSLError as error:
        return Finding(
            "broker",
            "fail",
            f"TLS handshake with {where} failed: {error.reason}",
            "check tls_ca is the CA that signed the broker's certificate, and the clock",
        )
    except (OSError, ValueError) as error:
        named = getattr(error, "filename", None)
        strerror = getattr(error, "strerror", None)
        what = f"{strerror}: {named}" if named and strerror else str(error)
        return Finding("broker", "fail", f"connecting to {where}: {what}", "check broker_port/TLS")
    client.loop_start()
    try:
        answered = done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    connack = outcome.get("connack")
    if not answered or connack is None:
        return Finding(
            "broker",
            "fail",
            f"{where} accepted TCP but never answered MQTT",
            "is this port an MQTT listener? with TLS, set tls_ca",
        )
    if connack.is_failure:
        fix = _CONNACK_FIXES.get(connack.value, "see the broker's log")
        return Finding("broker", "fail", f"{where} refused the login: {connack}", fix)
    suback = outcome.get("suback") or []
    if any(r.is_failure for r in suback):
        return Finding(
            "broker",
            "fail",
            f"logged in, but may not read {config_topic}",
            "the broker's ACL lacks this gateway's lines (see docs/broker.md)",
        )
    return Finding(
        "broker", "ok", f"logged in to {where} as {settings.username or settings.gateway}"
    )


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
