"""Ingest's view of who a sighted device is (``ingest.DeviceIdentity``):
rotating ids resolved to registered shoppers, and their consent.

A key that names a kind (``eid:…``, ``ibeacon:…``) comes from a gateway; a
resolved shopper is known by the shopper id the server handed out, which has
no kind prefix. Devices that are not shoppers (staff badges, asset tags,
fixed beacons) are not people and need no consent.
"""

from omnizone.server.domain.identity import (
    Consent,
    EidResolver,
    is_eid_key,
    may_send_offer,
    may_store_location,
)
from omnizone.server.service.shoppers import ShopperService


class RegisteredDevices:
    """Knows the devices registered when it was made; subscribe ``update`` to
    the shoppers' device changes (``ShopperService.subscribe_to_devices``) to
    follow later registrations and erasures."""

    def __init__(self, shoppers: ShopperService, rotation_s: int) -> None:
        self._shoppers = shoppers
        self._resolver = EidResolver(shoppers.all_devices(), rotation_s)

    def update(self, device: str, key: bytes | None) -> None:
        """A device key added (a registration) or removed (``None``)."""
        self._resolver.update(device, key)

    def resolve(self, device: str, at_ms: int) -> str | None:
        if is_eid_key(device):
            resolved = self._resolver.resolve(device, at_ms)
            if resolved is not None and self._shoppers.is_erased(resolved):
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
