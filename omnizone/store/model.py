"""Pydantic schema of a store file. Cross-checks (ids referenced, shapes inside
the floor, overlaps) live in validators so every error names its field."""

import math
from collections.abc import Sequence
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from omnizone.contract.base import StrictModel
from omnizone.contract.ids import gateway_beacon_key
from omnizone.contract.messages import DeviceKey
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.store import geometry
from omnizone.store.geometry import Point

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Coordinate = tuple[float, float]


class ZoneKind(StrEnum):
    ENTRANCE = "entrance"
    SALES = "sales"
    FITTING_ROOM = "fitting-room"
    CHECKOUT = "checkout"
    BACK_OFFICE = "back-office"


class Floor(StrictModel):
    width_m: float = Field(gt=0, le=10_000)
    depth_m: float = Field(gt=0, le=10_000)

    def holds(self, point: Point) -> bool:
        x, y = point
        return 0 <= x <= self.width_m and 0 <= y <= self.depth_m


class VisitSettings(StrictModel):
    """When presence counts as a visit; see docs/store-config.md."""

    min_presence_s: float = Field(10.0, ge=0, description="shorter presence is a pass-by")
    exit_grace_s: float = Field(8.0, ge=0, description="absence tolerated inside one visit")
    device_timeout_s: float = Field(30.0, gt=0, description="unheard this long: left the store")


class Zone(StrictModel):
    id: Identifier
    name: str = Field(min_length=1, max_length=80)
    kind: ZoneKind = ZoneKind.SALES
    polygon: list[Coordinate] = Field(min_length=3, max_length=200)

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, value: list[Coordinate]) -> list[Coordinate]:
        if geometry.area(value) < 0.25:
            raise ValueError("polygon has (almost) no area: need at least 0.25 m²")
        if geometry.segments_intersect_properly(value):
            raise ValueError("polygon edges cross each other")
        return value


class Gateway(StrictModel):
    id: Identifier
    position: Coordinate
    zone: Identifier | None = Field(None, description="zone it covers; default: where it stands")
    height_m: float = Field(2.5, gt=0, le=20)
    ble: bool = True
    beacon: DeviceKey | None = Field(
        None,
        description="the Eddystone-UID its own adapter advertises; default: "
        "gateway_beacon_key(store, id) (self-calibration, docs/localization.md)",
    )


class Beacon(StrictModel):
    """A fixed beacon, heard by the shopper's phone (anchor for phone-side ranging)."""

    id: Identifier
    position: Coordinate
    device: DeviceKey = Field(description="the key it advertises: ibeacon:<uuid>:<major>:<minor>")
    tx_power: int = Field(-59, ge=-127, le=20)


class NfcTapPoint(StrictModel):
    id: Identifier
    gateway: Identifier
    zone: Identifier
    position: Coordinate
    product: str | None = Field(None, description="GTIN or product id shown on tap")


class RfidReader(StrictModel):
    id: Identifier
    gateway: Identifier
    zone: Identifier
    antennas: int = Field(1, ge=1, le=16)
    position: Coordinate | None = Field(
        None, description="where it is on the floor plan; default: not placed"
    )


class StoreInfo(StrictModel):
    id: Identifier
    name: str = Field(min_length=1, max_length=120)
    timezone: str = "UTC"
    floor: Floor
    visits: VisitSettings = VisitSettings()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class Localization(StrictModel):
    """Where the store's localizer learns its radio from, beside the floor plan
    (docs/store-config.md). Paths are relative to the store file."""

    survey: str | None = Field(
        None, description="fingerprint survey CSV the localizer blends into its radio map"
    )
    calibration: str | None = Field(
        None, description="calibration YAML (per-anchor radio parameters; issue 14)"
    )
    self_calibration: Literal["auto", "always", "never"] = Field(
        "auto",
        description="the radio fitted from the gateways hearing one another: auto = applied "
        "when no calibration file is named; always = applied over it; never = shown only",
    )


class StorePlan(StrictModel):
    store: StoreInfo
    zones: list[Zone] = Field(min_length=1)
    gateways: list[Gateway] = Field(min_length=1)
    beacons: list[Beacon] = []
    nfc_tap_points: list[NfcTapPoint] = []
    rfid_readers: list[RfidReader] = []
    walls: list[tuple[Identifier, Identifier]] = Field(
        [], description="pairs of touching zones with no passage between them"
    )
    localization: Localization = Localization()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        floor = self.store.floor
        _unique("zones", [z.id for z in self.zones])
        _unique("gateways", [g.id for g in self.gateways])
        _unique("beacons", [b.id for b in self.beacons])
        _unique("nfc_tap_points", [t.id for t in self.nfc_tap_points])
        _unique("rfid_readers", [r.id for r in self.rfid_readers])
        zone_ids = {z.id for z in self.zones}
        gateway_ids = {g.id for g in self.gateways}
        for i, zone in enumerate(self.zones):
            for j, point in enumerate(zone.polygon):
                if not floor.holds(point):
                    raise ValueError(
                        f"zones[{i}] ({zone.id}).polygon[{j}] {list(point)} lies outside the "
                        f"floor ({floor.width_m} x {floor.depth_m} m)"
                    )
        for i, a in enumerate(self.zones):
            for j, b in enumerate(self.zones[i + 1 :], start=i + 1):
                if geometry.interiors_overlap(a.polygon, b.polygon):
                    raise ValueError(f"zones[{j}] ({b.id}).polygon overlaps zones[{i}] ({a.id})")
        for i, gw in enumerate(self.gateways):
            if not floor.holds(gw.position):
                raise ValueError(
                    f"gateways[{i}] ({gw.id}).position {list(gw.position)} lies outside the floor"
                )
            if gw.zone is not None and gw.zone not in zone_ids:
                raise ValueError(f"gateways[{i}] ({gw.id}).zone: unknown zone {gw.zone!r}")
            if gw.zone is None and self.zone_at(gw.position) is None:
                raise ValueError(
                    f"gateways[{i}] ({gw.id}) stands in no zone at {list(gw.position)}: "
                    "move it or give it a 'zone'"
                )
        attached: tuple[tuple[str, Sequence[NfcTapPoint | RfidReader]], ...] = (
            ("nfc_tap_points", self.nfc_tap_points),
            ("rfid_readers", self.rfid_readers),
        )
        for name, items in attached:
            for i, item in enumerate(items):
                if item.gateway not in gateway_ids:
                    raise ValueError(
                        f"{name}[{i}] ({item.id}).gateway: unknown gateway {item.gateway!r}"
                    )
                if item.zone not in zone_ids:
                    raise ValueError(f"{name}[{i}] ({item.id}).zone: unknown zone {item.zone!r}")
        for i, reader in enumerate(self.rfid_readers):
            if reader.position is not None and not floor.holds(reader.position):
                raise ValueError(
                    f"rfid_readers[{i}] ({reader.id}).position {list(reader.position)} "
                    "lies outside the floor"
                )
        for i, pair in enumerate(self.walls):
            for wall_zone in pair:
                if wall_zone not in zone_ids:
                    raise ValueError(f"walls[{i}]: unknown zone {wall_zone!r}")
        for i, beacon in enumerate(self.beacons):
            if not floor.holds(beacon.position):
                raise ValueError(f"beacons[{i}] ({beacon.id}).position lies outside the floor")
        # A gateway beacon is never a shopper: it must not be another device's key.
        fixed = {b.device: b.id for b in self.beacons}
        seen: dict[str, str] = {}
        for i, gw in enumerate(self.gateways):
            key = self.gateway_beacon(gw)
            if key in seen:
                raise ValueError(
                    f"gateways[{i}] ({gw.id}).beacon: {key!r} is also gateway {seen[key]}'s"
                )
            if key in fixed:
                raise ValueError(
                    f"gateways[{i}] ({gw.id}).beacon: {key!r} is also beacon {fixed[key]}'s"
                )
            seen[key] = gw.id
        return self

    # -- derived views -----------------------------------------------------

    @property
    def id(self) -> str:
        return self.store.id

    def zone(self, zone_id: str) -> Zone:
        for zone in self.zones:
            if zone.id == zone_id:
                return zone
        raise KeyError(zone_id)

    def zone_at(self, point: Point) -> str | None:
        for zone in self.zones:
            if geometry.contains(zone.polygon, point):
                return zone.id
        return None

    def gateway_zone(self, gateway: Gateway) -> str:
        zone = gateway.zone or self.zone_at(gateway.position)
        assert zone is not None  # guaranteed by validation
        return zone

    def gateway_beacon(self, gateway: Gateway) -> str:
        """The key ``gateway``'s own adapter advertises (self-calibration)."""
        return gateway.beacon or gateway_beacon_key(self.store.id, gateway.id)

    @cached_property
    def gateway_beacons(self) -> dict[str, str]:
        """beacon key -> the gateway advertising it: sightings of these are the
        gateways hearing one another, never a shopper."""
        return {self.gateway_beacon(gw): gw.id for gw in self.gateways}

    @cached_property
    def fixed_beacons(self) -> dict[str, str]:
        """advertised key -> fixed beacon id: sightings of these by gateways are
        the beacon fleet and self-calibration, never a shopper."""
        return {b.device: b.id for b in self.beacons}

    @cached_property
    def gateway_zones(self) -> dict[str, str]:
        """gateway id -> the zone it covers."""
        return {gw.id: self.gateway_zone(gw) for gw in self.gateways}

    @cached_property
    def passages(self) -> dict[tuple[str, str], tuple[Point, Point]]:
        """Where a shopper can walk from one zone into a touching one (both directions)."""
        walled = {frozenset(pair) for pair in self.walls}
        found: dict[tuple[str, str], tuple[Point, Point]] = {}
        for i, a in enumerate(self.zones):
            for b in self.zones[i + 1 :]:
                if frozenset((a.id, b.id)) in walled:
                    continue
                shared = geometry.shared_boundary(a.polygon, b.polygon)
                if shared is not None and math.dist(*shared) >= 0.5:
                    found[(a.id, b.id)] = shared
                    found[(b.id, a.id)] = shared
        return found

    @cached_property
    def adjacency(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {z.id: [] for z in self.zones}
        for a, b in self.passages:
            result[a].append(b)
        return {k: sorted(v) for k, v in result.items()}

    @property
    def entrances(self) -> list[str]:
        return [z.id for z in self.zones if z.kind is ZoneKind.ENTRANCE]


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"{what}[{i}]: duplicate id {value!r}")
        seen.add(value)
