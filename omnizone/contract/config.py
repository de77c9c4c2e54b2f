"""The server's configuration for one gateway, retained on
``omnizone/v1/{store}/{gateway}/config`` and applied without a restart.

Every setting is optional: an absent one keeps the gateway's current value.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from omnizone.contract.base import StrictModel
from omnizone.contract.messages import SCHEMA_VERSION, ContractError, EpochMs, Identifier
from omnizone.contract.topics import Kind, parse_topic


class _Strict(StrictModel):
    model_config = ConfigDict(allow_inf_nan=False)  # JSON has no NaN or infinity


class BleConfig(_Strict):
    scanning_mode: Literal["auto", "passive", "active"] | None = None
    watchdog_s: float | None = Field(None, ge=5, le=3600, description="silence before restart")


class NfcConfig(_Strict):
    debounce_ms: int | None = Field(None, ge=0, le=60_000)


class RfidConfig(_Strict):
    arrive_reads: int | None = Field(None, ge=1, le=1000, description="reads before 'arrived'")
    arrive_within_ms: int | None = Field(None, ge=100, le=60_000)
    depart_after_ms: int | None = Field(None, ge=500, le=3_600_000, description="quiet period")
    power_dbm: int | None = Field(None, ge=0, le=33)


class GatewayConfig(_Strict):
    v: Literal[1] = Field(SCHEMA_VERSION, description="schema version")
    store: Annotated[str, Identifier]
    gateway: Annotated[str, Identifier]
    revision: int = Field(ge=0, description="increases with every change; older ones are ignored")
    issued_ms: EpochMs
    window_ms: int | None = Field(None, ge=100, le=60_000)
    health_interval_s: float | None = Field(None, ge=1, le=3600)
    ble: BleConfig | None = None
    nfc: NfcConfig | None = None
    rfid: RfidConfig | None = None


def parse_config(topic: str, payload: bytes) -> GatewayConfig:
    try:
        address = parse_topic(topic)
    except ValueError as error:
        raise ContractError(topic, str(error)) from None
    if address.kind is not Kind.CONFIG:
        raise ContractError(
            topic, f"a gateway config arrives on .../config, not .../{address.kind}"
        )
    try:
        raw: Any = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise ContractError(topic, f"payload is not JSON: {error}") from None
    try:
        config = GatewayConfig.model_validate(raw, strict=True)
    except ValidationError as error:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<config>'}: {e['msg']}"
            for e in error.errors(include_url=False)[:5]
        )
        raise ContractError(topic, where) from None
    if (config.store, config.gateway) != (address.store, address.gateway):
        raise ContractError(
            topic, f"config is for {config.store}/{config.gateway}, not this topic's gateway"
        )
    return config


def dump_config(config: GatewayConfig) -> bytes:
    return config.model_dump_json(exclude_none=True).encode()
