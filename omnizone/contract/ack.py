"""The server's end-to-end acknowledgement: "stored up to", per gateway.

After each commit the server publishes, retained on
``omnizone/v1/{store}/{gateway}/ack``, the run of sequence numbers of one
outbox epoch it has committed: every ``seq`` from ``first_seq`` to
``last_seq`` inclusive is in its database (or was dead-lettered there). The
gateway deletes exactly those outbox rows, and nothing on the broker's word:
a PUBACK only says the broker took the message, not that it survived a
broker crash or that the ACL let it through.
"""

import json
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from omnizone.contract.base import StrictModel
from omnizone.contract.messages import (
    SCHEMA_VERSION,
    ContractError,
    Epoch,
    EpochMs,
    Identifier,
    Seq,
    _describe,
)
from omnizone.contract.topics import Kind, parse_topic, topic_for

MAX_ACK_BYTES = 4096


class AckMessage(StrictModel):
    model_config = ConfigDict(allow_inf_nan=False)

    v: Literal[1] = Field(SCHEMA_VERSION, description="schema version")
    store: Identifier
    gateway: Identifier
    epoch: Epoch
    first_seq: Seq = Field(description="lowest of the committed run")
    last_seq: Seq = Field(description="highest of the committed run")
    issued_ms: EpochMs

    @model_validator(mode="after")
    def _ordered(self) -> "AckMessage":
        if self.first_seq > self.last_seq:
            raise ValueError(f"first_seq {self.first_seq} is above last_seq {self.last_seq}")
        return self

    def covers(self, epoch: int, seq: int) -> bool:
        return epoch == self.epoch and self.first_seq <= seq <= self.last_seq


def ack_topic(store: str, gateway: str) -> str:
    return topic_for(store, gateway, Kind.ACK)


def parse_ack(topic: str, payload: bytes) -> AckMessage:
    """Validate an acknowledgement; raises ContractError saying what is wrong."""
    try:
        address = parse_topic(topic)
    except ValueError as error:
        raise ContractError(topic, str(error)) from None
    if address.kind is not Kind.ACK:
        raise ContractError(topic, f"an ack travels on the ack topic, not {address.kind.value!r}")
    if len(payload) > MAX_ACK_BYTES:
        raise ContractError(topic, f"ack of {len(payload)} bytes exceeds {MAX_ACK_BYTES}")
    try:
        raw: Any = json.loads(payload)
        ack = AckMessage.model_validate(raw, strict=True)
    except (ValueError, RecursionError) as error:
        if isinstance(error, ValidationError):
            raise ContractError(topic, _describe(error)) from None
        raise ContractError(topic, f"payload is not JSON: {error}") from None
    if (ack.store, ack.gateway) != (address.store, address.gateway):
        raise ContractError(topic, "store or gateway in the body differs from the topic")
    return ack


def dump_ack(ack: AckMessage) -> bytes:
    return ack.model_dump_json().encode()
