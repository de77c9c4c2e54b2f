"""Ingest's view of who a sighted device is (``ingest.DeviceIdentity``):
rotating ids resolved to registered shoppers, and their consent.

A key that names a kind (``eid:…``, ``ibeacon:…``) comes from a gateway; a
resolved shopper is known by the shopper id the server handed out, which has
no kind prefix. Devices that are not shoppers (staff badges, asset tags,
fixed beacons) are not people and need no consent.
"""

from omnizone.contract.eid import EidParams
from omnizone.server.domain.identity import (
    Consent,
    EidResolver,
    Replay,
    is_eid_key,
    may_send_offer,
    may_store_location,
)
from omnizone.server.service.shoppers import ShopperService


class RegisteredDevices:
    """Knows the devices registered when it was made; subscribe ``update`` to
    the shoppers' device changes (``ShopperService.subscribe_to_devices``) to
    follow later registrations and erasures."""

    def __init__(self, shoppers: ShopperService, *, skew_s: int | None = None) -> None:
        """``skew_s`` defaults to the shopper service's ``EidPolicy``."""
        self._shoppers = shoppers
        skew = shoppers.eid_policy.skew_s if skew_s is None else skew_s
        self._resolver = EidResolver(shoppers.all_devices(), skew_s=skew)

    def update(self, device: str, eid: EidParams | None) -> None:
        """A device's rotating-id parameters added (a registration) or removed (``None``)."""
        self._resolver.update(device, eid)

    def resolve(self, device: str, at_ms: int, store: str) -> str | Replay | None:
        """A rotating id heard at ``store`` becomes its shopper (or a ``Replay``,
        or None); any other key stays as it is."""
        if is_eid_key(device):
            resolved = self._resolver.identify(device, at_ms, store)
            if isinstance(resolved, str) and self._shoppers.is_erased(resolved):
                return None  # tombstoned: an erased shopper's ids resolve to no one
            return resolved
        return device

    def may_store_location(self, device: str) -> bool:
        consent = self._consent(device)
        return consent is None or may_store_location(consent)

    def may_track(self, device: str) -> bool:
        consent = self._consent(device)
        return consent is None or may_store_location(consent) or may_send_offer(consent)

    def may_send_offer(self, device: str) -> bool:
        consent = self._consent(device)
        return consent is not None and may_send_offer(consent)

    def _consent(self, device: str) -> Consent | None:
        """None: not a shopper (a gateway key names its kind, ``kind:…``)."""
        if ":" in device:
            return None
        return self._shoppers.consent(device) or Consent()
