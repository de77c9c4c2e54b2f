"""Gateway settings: a YAML file (config/gateway.example.yaml) overridden by
OMNIZONE_GATEWAY_* environment variables."""

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnizone.contract.base import StrictModel
from omnizone.contract.messages import DeviceKey
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.gateway.nfc.settings import NfcReaderSettings
from omnizone.gateway.rfid.settings import RfidReaderSettings


class GatewayConfigError(ValueError):
    pass


class BleSettings(StrictModel):
    enabled: bool = Field(True, description="scan for BLE adverts")
    scanning_mode: Literal["auto", "passive", "active"] = Field(
        "auto", description="auto: passive where BlueZ supports it, else active"
    )
    watchdog_s: float = Field(30.0, ge=5, le=3600, description="silence before a scan restart")
    adapter: str | None = Field(None, description="e.g. hci1; default: the system's adapter")
    advertise_beacon: bool = Field(
        True,
        description="advertise this gateway's own beacon so the others hear it "
        "(self-calibration; through BlueZ over D-Bus; the simulator emulates it)",
    )
    beacon: DeviceKey | None = Field(
        None,
        description="the Eddystone-UID to advertise; default: gateway_beacon_key(store, "
        "gateway); set it only with the store file's gateways[].beacon to the same key",
    )
    feed: str | None = Field(
        None,
        description="udp://host:port: take raw adverts from the simulator's emulated "
        "adapter instead of a Bluetooth adapter (QA and tests only: needs the suite's "
        "`omnizone gateway run`, which brings the simulator)",
    )


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OMNIZONE_GATEWAY_", env_nested_delimiter="__", extra="forbid"
    )

    store: str = Field(pattern=IDENTIFIER_PATTERN, description="store id, as in the store file")
    gateway: str = Field(pattern=IDENTIFIER_PATTERN, description="this gateway's id")
    broker_host: str = Field("127.0.0.1", description="MQTT broker host")
    broker_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 with TLS)")
    username: str | None = Field(None, description="MQTT username; default: the gateway id")
    password: str = Field(description="MQTT password of this gateway")
    tls_ca: str | None = Field(None, description="CA file: set it to use TLS")
    window_ms: int = Field(1000, ge=100, le=60_000, description="BLE aggregation window")
    outbox_path: Path = Field(
        Path("/var/lib/omnizone/outbox.db"), description="durable outbox (SQLite)"
    )
    outbox_max_messages: int = Field(200_000, ge=100, description="oldest dropped beyond this")
    health_interval_s: float = Field(30.0, gt=0, description="health message period")
    ble: BleSettings = Field(default_factory=BleSettings, description="BLE scanning")
    nfc: list[NfcReaderSettings] = Field(default_factory=list, description="NFC tap points")
    rfid: list[RfidReaderSettings] = Field(
        default_factory=list, description="UHF readers in fitting rooms"
    )


def load_gateway_settings(path: str | Path | None, **overrides: Any) -> GatewaySettings:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise GatewayConfigError(f"{path}: cannot read: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise GatewayConfigError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise GatewayConfigError(f"{path}: expected a mapping of settings")
        # The environment outranks the file (a password from a secret store,
        # say): leave out file keys that an OMNIZONE_GATEWAY_* variable sets.
        prefix = GatewaySettings.model_config.get("env_prefix", "")
        data.update(
            {k: v for k, v in loaded.items() if f"{prefix}{str(k).upper()}" not in os.environ}
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return GatewaySettings(**data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise GatewayConfigError(f"{path or '<environment>'}: {problems}") from None


PLAINTEXT_WARNING = (
    "the gateway talks to the broker at {host}:{port} WITHOUT TLS: its password and "
    "every event cross the network in clear text. Set tls_ca (and broker_port 8883) "
    "to the CA of the broker's certificate; docs/broker.md"
)


def plaintext_warning(settings: GatewaySettings) -> str | None:
    """What to say when the gateway would connect without TLS (None: it uses TLS)."""
    if settings.tls_ca:
        return None
    return PLAINTEXT_WARNING.format(host=settings.broker_host, port=settings.broker_port)


def check_password(settings: GatewaySettings) -> None:
    """Refuse the example password of config/gateway.example.yaml (``change-me``…)."""
    from omnizone.broker.secrets import PlaceholderSecret, refuse_placeholder

    try:
        refuse_placeholder(settings.password, "password (OMNIZONE_GATEWAY_PASSWORD)")
    except PlaceholderSecret as error:
        raise GatewayConfigError(
            f"{error}; a gateway's password is the one its broker account was given "
            "(docs/broker.md, provisioning)"
        ) from None
