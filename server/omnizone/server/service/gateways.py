"""The gateway fleet as staff and retail IT see it, and remote configuration.

A config change is merged into the last one issued, validated against the wire
contract, stored with the next revision and published retained, so a gateway
that reconnects (or boots) gets it at once.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from omnizone.contract import GatewayConfig, Kind, dump_config, topic_for
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.service.ports import GatewayRecord, Repository
from omnizone.server.service.queries import NotFound
from omnizone.store import StorePlan

# A gateway is offline when its status says so, or when nothing arrived for this long
# (health every 30 s by default, BLE every window).
SILENT_AFTER_MS = 90_000


@dataclass(frozen=True, slots=True)
class GatewayView:
    gateway: str
    zone: str
    online: bool
    state: str | None
    version: str | None
    session: int | None
    last_seen_ms: int | None
    health: Mapping[str, Any] | None


class ConfigRejected(ValueError):
    """A config change the contract refuses; the text names the field."""


class GatewayAdmin:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        repository: Repository,
        publish_retained: Callable[[str, bytes], bool],
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._stores = stores
        self._repo = repository
        self._publish = publish_retained
        self._clock_ms = clock_ms

    def fleet(self, store: str) -> list[GatewayView]:
        plan = self._plan(store)
        records = {r.gateway: r for r in self._repo.gateway_records(store)}
        now = self._clock_ms()
        return [
            _view(gateway.id, plan.gateway_zones[gateway.id], records.get(gateway.id), now)
            for gateway in plan.gateways
        ]

    def config(self, store: str, gateway: str) -> GatewayConfig | None:
        self._gateway(store, gateway)
        stored = self._repo.gateway_config(store, gateway)
        return None if stored is None else GatewayConfig.model_validate(stored.body)

    def change_config(self, store: str, gateway: str, changes: Mapping[str, Any]) -> GatewayConfig:
        """Merge, validate, store, publish retained; returns what was published."""
        self._gateway(store, gateway)
        stored = self._repo.gateway_config(store, gateway)
        body: dict[str, Any] = dict(stored.body) if stored else {}
        for key, value in changes.items():
            if isinstance(value, Mapping) and isinstance(body.get(key), Mapping):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        body.update(
            store=store,
            gateway=gateway,
            revision=(stored.revision + 1) if stored else 1,
            issued_ms=self._clock_ms(),
        )
        body.pop("v", None)
        try:
            config = GatewayConfig.model_validate(body)
        except ValidationError as error:
            raise ConfigRejected(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in error.errors(include_url=False)
                )
            ) from None
        self._repo.save_gateway_config(
            store, gateway, config.revision, config.model_dump(mode="json", exclude_none=True)
        )
        if not self._publish(topic_for(store, gateway, Kind.CONFIG), dump_config(config)):
            raise ConnectionError(
                "the broker did not acknowledge the config; it is stored and "
                "will be published again on the next change"
            )
        return config

    def _plan(self, store: str) -> StorePlan:
        plan = self._stores.get(store)
        if plan is None:
            raise NotFound(f"unknown store {store!r}")
        return plan

    def _gateway(self, store: str, gateway: str) -> None:
        if gateway not in self._plan(store).gateway_zones:
            raise NotFound(f"store {store!r} has no gateway {gateway!r}")


def _view(gateway: str, zone: str, record: GatewayRecord | None, now_ms: int) -> GatewayView:
    if record is None:
        return GatewayView(gateway, zone, False, None, None, None, None, None)
    recent = now_ms - record.last_seen_ms <= SILENT_AFTER_MS
    return GatewayView(
        gateway=gateway,
        zone=zone,
        online=record.state != "offline" and recent,
        state=record.state,
        version=record.version,
        session=record.session,
        last_seen_ms=record.last_seen_ms,
        health=record.health,
    )
