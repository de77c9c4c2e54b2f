"""The simulator's radio model (firmware-sim/omnizone/sim/radio.py) in closed form.

Copied rather than imported: the server must not depend on the simulator.
"""

import math
import random

import numpy as np
from numpy.typing import NDArray

from omnizone.store import StorePlan
from omnizone.store.geometry import random_point_in

#: Closer than this counts as this, as in the simulator.
MIN_DISTANCE_M = 0.5


def mean_rssi_dbm(
    distance_m: NDArray[np.float64],
    tx_power_1m_dbm: float | NDArray[np.float64],
    exponent: float | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Log-distance path loss; closer than 0.5 m counts as 0.5 m, as in the simulator.
    Power and exponent may be per anchor (broadcast over the last axis)."""
    return tx_power_1m_dbm - 10.0 * exponent * np.log10(np.maximum(distance_m, MIN_DISTANCE_M))


def packet_loss(
    distance_m: NDArray[np.float64], base_loss: float, loss_per_10m: float
) -> NDArray[np.float64]:
    return np.clip(
        base_loss + loss_per_10m * np.maximum(distance_m, MIN_DISTANCE_M) / 10.0, 0.0, 1.0
    )


def normal_cdf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Φ(x) without scipy (Abramowitz & Stegun 7.1.26, error < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def normal_pdf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def zone_points(plan: StorePlan, points_per_zone: int, seed: int) -> list[NDArray[np.float64]]:
    """Uniform sample points over each zone polygon, in the store file's zone order."""
    rng = random.Random(seed)
    return [
        np.array(
            [random_point_in(zone.polygon, rng) for _ in range(points_per_zone)], dtype=np.float64
        )
        for zone in plan.zones
    ]


def anchor_positions(plan: StorePlan) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """BLE gateways: the anchors the server hears devices through."""
    gateways = [gw for gw in plan.gateways if gw.ble]
    return tuple(gw.id for gw in gateways), np.array(
        [gw.position for gw in gateways], dtype=np.float64
    ).reshape(-1, 2)


def beacon_positions(plan: StorePlan) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """Fixed beacons: the anchors a listening phone hears (issue 15), by beacon id."""
    return tuple(b.id for b in plan.beacons), np.array(
        [b.position for b in plan.beacons], dtype=np.float64
    ).reshape(-1, 2)
