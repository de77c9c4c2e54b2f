"""A scenario file (config/scenarios/*.yaml): which store, how many shoppers,
how they behave and how noisy the radio is. Everything is seeded."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import Field, ValidationError

from omnizone.contract.base import StrictModel
from omnizone.paths import DEFAULT_STORE, shipped_config


class GatewayRadio(StrictModel):
    """One gateway's hidden true radio: how loud it hears a phone at 1 m and how
    fast that falls off. The server is never told; it has to fit them
    (self-calibration) or be given them (a calibration file)."""

    power_1m_dbm: float = Field(ge=-100, le=0)
    exponent: float = Field(gt=1, le=6)


class RadioModel(StrictModel):
    """Log-distance path loss with Gaussian shadowing and distance-dependent loss."""

    tx_power_1m_dbm: float = Field(-59.0, description="RSSI of a phone at 1 m")
    path_loss_exponent: float = Field(2.2, gt=1, le=6)
    shadowing_sigma_db: float = Field(3.0, ge=0, le=20)
    sensitivity_dbm: float = Field(-95.0, description="weaker adverts are never heard")
    base_loss: float = Field(0.05, ge=0, lt=1, description="packet loss next to the gateway")
    loss_per_10m: float = Field(0.10, ge=0, le=1, description="extra packet loss per 10 m")
    gateways: dict[str, GatewayRadio] = Field(
        default_factory=dict,
        description="per gateway id: its own hidden power at 1 m and exponent "
        "(the others use tx_power_1m_dbm and path_loss_exponent)",
    )
    gateway_beacon_interval_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="each gateway's own adapter advertises its beacon this often; 0: never",
    )

    def per_gateway(
        self, gateways: Sequence[str]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(power at 1 m, exponent) of each of ``gateways``, in that order."""
        power = [
            self.gateways[g].power_1m_dbm if g in self.gateways else self.tx_power_1m_dbm
            for g in gateways
        ]
        exponent = [
            self.gateways[g].exponent if g in self.gateways else self.path_loss_exponent
            for g in gateways
        ]
        return np.array(power, dtype=np.float64), np.array(exponent, dtype=np.float64)


class FixedBeaconTruth(StrictModel):
    """One fixed beacon's hidden truth: how loud it is against a phone, its
    cell, and when it stops. The server sees only what gateways hear."""

    power_offset_db: float = Field(0.0, ge=-30, le=30, description="louder than a phone at 1 m")
    battery_mv: int = Field(3000, ge=0, le=10_000, description="at the start; 0: mains powered")
    drain_mv_per_hour: float = Field(0.0, ge=0, le=100_000)
    dies_at_s: float | None = Field(None, ge=0, description="stops advertising then (sim time)")
    temperature_c: float | None = Field(21.0, ge=-40, le=85)


class FixedBeacons(StrictModel):
    """The store file's fixed beacons, advertising their id frame and, every
    ``tlm_every``-th advert, an Eddystone-TLM frame from the same address.
    A battery beacon stops when its cell falls to ``dead_below_mv``."""

    interval_ms: int = Field(1000, ge=0, le=60_000, description="0: no fixed beacons advertise")
    tlm_every: int = Field(10, ge=1, le=1000)
    dead_below_mv: int = Field(2000, ge=0)
    beacons: dict[str, FixedBeaconTruth] = Field(
        default_factory=dict, description="per beacon id; the others use the defaults"
    )


class AttractionChange(StrictModel):
    """A display moved (issue 18, point 2): from ``at_s`` on, ``zone`` is
    chosen with ``weight`` relative to a sales zone's 1.0."""

    at_s: float = Field(ge=0, description="simulated seconds after the start")
    zone: str = Field(min_length=1)
    weight: float = Field(ge=0)


class ShopperBehaviour(StrictModel):
    arrivals_per_minute: float = Field(3.0, ge=0)
    initial_shoppers: int = Field(4, ge=0, description="already walking in at t=0")
    max_shoppers: int = Field(500, ge=1)
    zones_per_trip: tuple[int, int] = (2, 6)
    dwell_mean_s: float = Field(60.0, gt=0, description="mean browsing time in a chosen zone")
    fitting_room_dwell_mean_s: float = Field(150.0, gt=0)
    fitting_room_weight: float = Field(
        0.35, ge=0, description="how likely a fitting room is chosen, relative to a sales zone"
    )
    checkout_probability: float = Field(0.6, ge=0, le=1)
    walking_speed_mps: float = Field(1.1, gt=0)
    browsing_speed_mps: float = Field(0.4, gt=0)
    advert_interval_ms: int = Field(500, ge=20, le=10_000)
    attraction: list[AttractionChange] = Field(
        default_factory=list, description="zones whose pull changes during the run"
    )

    def weight_of(self, zone: str, default: float, elapsed_s: float) -> float:
        """The zone's weight at ``elapsed_s``: the latest change by then, else ``default``."""
        changes = [c for c in self.attraction if c.zone == zone and c.at_s <= elapsed_s]
        return max(changes, key=lambda c: c.at_s).weight if changes else default


PhoneMode = Literal["advertise", "listen", "both"]


def _advertise_only() -> dict[PhoneMode, float]:
    return {"advertise": 1.0}


class PhoneBehaviour(StrictModel):
    """How the shoppers' phones use the radio (issue 15, docs/mobile-sdk.md).

    advertise: the phone sends its rotating id and gateways hear it (an app in
    the foreground, or Android with a foreground service). listen: a phone in
    a pocket with the app in the background; an iPhone then does not
    advertise anything a gateway can identify, but ranges the store's fixed
    beacons and reports them in batches, late. both: a foreground phone that
    does both."""

    modes: dict[PhoneMode, float] = Field(
        default_factory=_advertise_only,
        description="share of shoppers' phones in each mode (drawn per shopper)",
    )
    beacon_interval_ms: int = Field(
        100, ge=20, le=10_000, description="fixed beacons' advertising interval (iBeacon: 100 ms)"
    )
    batch_windows: int = Field(2, ge=1, le=120, description="windows per batch the app sends")
    upload_delay_ms: tuple[int, int] = Field(
        (200, 1200), description="a batch reaches the server this long after it is cut"
    )
    suspend_per_hour: float = Field(
        0.0, ge=0, description="chance per hour a listening app is suspended until region entry"
    )
    region_exit_delay_ms: int = Field(
        10_000, ge=0, le=120_000, description="the OS notices region exit this long after"
    )


class StreetTraffic(StrictModel):
    """People walking past the store front who never enter (issue 18, point 4,
    capture rate). They walk along the entrance's street edge, ``pavement_m``
    outside it, from ``beyond_m`` past one end of the floor to as far past the
    other. Their phones have no shopper app: like the simulator's other
    app-less phones they advertise a fixed 8-byte id in an Eddystone-EID frame
    that no registered phone has, from a private address; a gateway forwards
    it and the server can resolve nothing."""

    passers_by_per_minute: float = Field(0.0, ge=0, description="0: nobody walks past")
    pavement_m: float = Field(2.5, gt=0, le=50, description="how far outside the street edge")
    beyond_m: float = Field(15.0, ge=0, le=200)
    walking_speed_mps: float = Field(1.3, gt=0)


class Scenario(StrictModel):
    name: str = "default"
    store_file: Path = Field(
        default_factory=lambda: shipped_config(DEFAULT_STORE),
        description="the store; in a file, relative to that file",
    )
    seed: int = 1
    start: datetime = Field(datetime(2026, 11, 21, 9, 0, tzinfo=UTC), description="sim start")
    duration_s: float = Field(600.0, gt=0)
    tick_ms: int = Field(100, ge=10, le=1000)
    window_ms: int = Field(1000, ge=100, description="gateway aggregation window")
    ground_truth_interval_ms: int = Field(1000, ge=100)
    shoppers: ShopperBehaviour = ShopperBehaviour()
    radio: RadioModel = RadioModel()
    fixed_beacons: FixedBeacons = FixedBeacons()

    phones: PhoneBehaviour = PhoneBehaviour()
    street: StreetTraffic = StreetTraffic()


class ScenarioError(ValueError):
    pass


def load_scenario(path: str | Path, **overrides: Any) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping")
    store_file = data.get("store_file")
    if isinstance(store_file, str) and not Path(store_file).is_absolute():
        # A path in a file is relative to that file, wherever the command runs.
        data["store_file"] = str((path.resolve().parent / store_file).resolve())
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise ScenarioError(f"{path}: {problems}") from None
    if not scenario.store_file.exists():
        raise ScenarioError(
            f"{path}: store_file: {scenario.store_file} does not exist "
            "(a relative path is read from the scenario file's folder)"
        )
    return scenario
