"""Pydantic schema of a store file. Cross-checks (ids referenced, shapes inside
the floor, overlaps) live in validators so every error names its field."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from omnizone.contract.base import StrictModel
from omnizone.contract.ids import gateway_beacon_key
from omnizone.contract.messages import DeviceKey
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.store import geometry
from omnizone.store.geometry import Point
from omnizone.store.suggest import did_you_mean

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
    espresense_room: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="the ESPresense node (its room id in espresense/rooms/<room>) that "
        "serves as this gateway through `omnizone-gateway espresense` (docs/espresense.md)",
    )
    street_front: bool = Field(
        False,
        description="it hears the street in front of the store: phones it hears that are "
        "not consented shoppers are counted as passers-by, anonymously (capture rate, "
        "docs/analytics.md)",
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
    evidence_tempering: Literal["off", "lower", "learn"] = Field(
        "off",
        description="learn the evidence weight from how far readings fall from the radio map: "
        "lower = only ever below 1 (a radio noisier than the map); learn = above 1 too; "
        "off = the fixed weight (docs/localization.md)",
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
        """Every cross-check fault at once (``PlanFaults``), not the first only."""
        faults = reference_faults(self.model_dump())
        faults += self._geometry_faults()
        faults += self._beacon_faults()
        if faults:
            raise PlanFaults(faults)
        return self

    def _geometry_faults(self) -> list["PlanFault"]:
        floor = self.store.floor
        faults: list[PlanFault] = []
        for i, zone in enumerate(self.zones):
            for j, point in enumerate(zone.polygon):
                if not floor.holds(point):
                    faults.append(
                        PlanFault(
                            ("zones", i, "polygon", j),
                            f"zones[{i}] ({zone.id}).polygon[{j}] {list(point)} lies outside the "
                            f"floor ({floor.width_m} x {floor.depth_m} m)",
                        )
                    )
        for i, a in enumerate(self.zones):
            for j, b in enumerate(self.zones[i + 1 :], start=i + 1):
                if geometry.interiors_overlap(a.polygon, b.polygon):
                    faults.append(
                        PlanFault(
                            ("zones", j, "polygon"),
                            f"zones[{j}] ({b.id}).polygon overlaps zones[{i}] ({a.id})",
                        )
                    )
        for i, gw in enumerate(self.gateways):
            if not floor.holds(gw.position):
                faults.append(
                    PlanFault(
                        ("gateways", i, "position"),
                        f"gateways[{i}] ({gw.id}).position {list(gw.position)} lies outside "
                        "the floor",
                    )
                )
            elif gw.zone is None and self.zone_at(gw.position) is None:
                faults.append(
                    PlanFault(
                        ("gateways", i, "position"),
                        f"gateways[{i}] ({gw.id}) stands in no zone at {list(gw.position)}: "
                        "move it or give it a 'zone'",
                    )
                )
        for i, reader in enumerate(self.rfid_readers):
            if reader.position is not None and not floor.holds(reader.position):
                faults.append(
                    PlanFault(
                        ("rfid_readers", i, "position"),
                        f"rfid_readers[{i}] ({reader.id}).position {list(reader.position)} "
                        "lies outside the floor",
                    )
                )
        for i, beacon in enumerate(self.beacons):
            if not floor.holds(beacon.position):
                faults.append(
                    PlanFault(
                        ("beacons", i, "position"),
                        f"beacons[{i}] ({beacon.id}).position lies outside the floor",
                    )
                )
        return faults

    def _beacon_faults(self) -> list["PlanFault"]:
        """A gateway beacon is never a shopper: it must not be another device's key."""
        faults: list[PlanFault] = []
        fixed = {b.device: b.id for b in self.beacons}
        seen: dict[str, str] = {}
        for i, gw in enumerate(self.gateways):
            key = self.gateway_beacon(gw)
            where = ("gateways", i, "beacon")
            if key in seen:
                text = f"gateways[{i}] ({gw.id}).beacon: {key!r} is also gateway {seen[key]}'s"
                faults.append(PlanFault(where, text))
            elif key in fixed:
                text = f"gateways[{i}] ({gw.id}).beacon: {key!r} is also beacon {fixed[key]}'s"
                faults.append(PlanFault(where, text))
            seen.setdefault(key, gw.id)
        return faults

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
    def street_gateways(self) -> frozenset[str]:
        """Ids of the gateways marked ``street_front`` (passers-by are counted there)."""
        return frozenset(gw.id for gw in self.gateways if gw.street_front)

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


Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PlanFault:
    """One cross-check fault: where it is (a pydantic-style path, for the line
    number) and the sentence that names the field and says what is wrong."""

    loc: Loc
    text: str


class PlanFaults(ValueError):
    """All cross-check faults of a plan; ``str()`` lists them for callers that
    validate a ``StorePlan`` directly (``load_store`` spells each one out)."""

    def __init__(self, faults: list[PlanFault]) -> None:
        self.faults = faults
        super().__init__("; ".join(f.text for f in faults))


#: Lists whose items have an id, and the references between them.
_COLLECTIONS = ("zones", "gateways", "beacons", "nfc_tap_points", "rfid_readers")
_REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("gateways", "zone", "zones"),
    ("nfc_tap_points", "gateway", "gateways"),
    ("nfc_tap_points", "zone", "zones"),
    ("rfid_readers", "gateway", "gateways"),
    ("rfid_readers", "zone", "zones"),
)
_KIND = {"zones": "zone", "gateways": "gateway"}


def reference_faults(data: Mapping[str, Any]) -> list[PlanFault]:
    """Duplicate ids and references to ids that do not exist, with a "did you
    mean" for a near miss. Reads plain (even invalid) data, so a file with
    field errors still has its misspelled ids reported in the same run."""
    items = {name: _items(data, name) for name in _COLLECTIONS}
    ids = {name: [item.get("id") for item in found] for name, found in items.items()}
    known = {name: {i for i in values if isinstance(i, str)} for name, values in ids.items()}
    faults: list[PlanFault] = []
    for name in _COLLECTIONS:
        seen: set[str] = set()
        for i, value in enumerate(ids[name]):
            if not isinstance(value, str):
                continue
            if value in seen:
                faults.append(PlanFault((name, i, "id"), f"{name}[{i}]: duplicate id {value!r}"))
            seen.add(value)
    for name, field, target in _REFERENCES:
        for i, item in enumerate(items[name]):
            value = item.get(field)
            if isinstance(value, str) and value not in known[target]:
                faults.append(
                    PlanFault(
                        (name, i, field),
                        f"{_label(name, i, item)}.{field}: unknown {_KIND[target]} {value!r}"
                        + did_you_mean(value, known[target]),
                    )
                )
    walls = data.get("walls")
    for i, pair in enumerate(walls if isinstance(walls, list) else []):
        for j, value in enumerate(pair if isinstance(pair, list | tuple) else []):
            if isinstance(value, str) and value not in known["zones"]:
                faults.append(
                    PlanFault(
                        ("walls", i, j),
                        f"walls[{i}]: unknown zone {value!r}" + did_you_mean(value, known["zones"]),
                    )
                )
    return faults


def _items(data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    found = data.get(name)
    if not isinstance(found, list):
        return []
    return [item if isinstance(item, dict) else {} for item in found]


def _label(name: str, index: int, item: Mapping[str, Any]) -> str:
    """``gateways[1] (gw-denim)``; the id only when the item has a usable one."""
    value = item.get("id")
    return f"{name}[{index}] ({value})" if isinstance(value, str) and value else f"{name}[{index}]"
