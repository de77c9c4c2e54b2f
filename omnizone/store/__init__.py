"""The store file: floor plan, zones, gateways, beacons, tap points, RFID readers.

Shared by server (zone assignment, visits) and simulator (walking, radio).
"""

from omnizone.store.geometry import Point, Polygon
from omnizone.store.load import StoreConfigError, load_store, parse_store
from omnizone.store.model import (
    Beacon,
    Gateway,
    Localization,
    NfcTapPoint,
    RfidReader,
    StorePlan,
    VisitSettings,
    Zone,
    ZoneKind,
)

__all__ = [
    "Beacon",
    "Gateway",
    "Localization",
    "NfcTapPoint",
    "Point",
    "Polygon",
    "RfidReader",
    "StoreConfigError",
    "StorePlan",
    "VisitSettings",
    "Zone",
    "ZoneKind",
    "load_store",
    "parse_store",
]
