"""The radio map: what each anchor is expected to report for a device in each zone.

Built from the floor plan (log-distance path loss, the same model the simulator
uses), from a labelled survey, or from both. Every figure is per aggregation
window, because that is what the gateways publish: the mean RSSI of the adverts
heard in the window, and whether any advert was heard at all.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from omnizone.store import StorePlan

from .propagation import (
    anchor_positions,
    beacon_positions,
    mean_rssi_dbm,
    normal_cdf,
    normal_pdf,
    packet_loss,
    zone_points,
)
from .survey import Survey

SIGMA_FLOOR_DB = 2.0
#: Fixed beacons' advertising interval (Apple's iBeacon recommendation, 100 ms).
BEACON_INTERVAL_MS = 100
P_HEARD_MIN = 0.01
P_HEARD_MAX = 0.99
#: What a map says about a (zone, anchor) pair nobody measured or modelled.
UNKNOWN_MEAN_DBM = -90.0
UNKNOWN_SIGMA_DB = 10.0
UNKNOWN_P_HEARD = 0.5

#: One value for every anchor, or one per anchor (A,) in the plan's anchor
#: order: a calibration gives each anchor its own power, exponent and spread.
PerAnchor = float | NDArray[np.float64]


@dataclass(frozen=True)
class RadioMap:
    zones: tuple[str, ...]
    anchors: tuple[str, ...]
    mean_dbm: NDArray[np.float64]  # (Z, A) expected window-mean RSSI when heard
    sigma_db: NDArray[np.float64]  # (Z, A) spread of that mean
    p_heard: NDArray[np.float64]  # (Z, A) chance the anchor hears the device in a window

    def __post_init__(self) -> None:
        shape = (len(self.zones), len(self.anchors))
        for name in ("mean_dbm", "sigma_db", "p_heard"):
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"RadioMap.{name} has shape {value.shape}, expected {shape}")
        if len(set(self.zones)) != len(self.zones) or len(set(self.anchors)) != len(self.anchors):
            raise ValueError("RadioMap zones and anchors must be unique")

    def zone_index(self) -> dict[str, int]:
        return {zone: i for i, zone in enumerate(self.zones)}

    def anchor_index(self) -> dict[str, int]:
        return {anchor: i for i, anchor in enumerate(self.anchors)}


def path_loss_map(
    plan: StorePlan,
    *,
    tx_power_1m_dbm: PerAnchor = -59.0,
    exponent: PerAnchor = 2.2,
    shadowing_db: PerAnchor = 4.0,
    sensitivity_dbm: float = -95.0,
    points_per_zone: int = 200,
    seed: int = 0,
    window_ms: int = 1000,
    advert_interval_ms: int = 500,
    base_loss: float = 0.05,
    loss_per_10m: float = 0.10,
    beacons: bool = False,
    beacon_interval_ms: int = BEACON_INTERVAL_MS,
) -> RadioMap:
    """A radio map from the floor plan alone.

    At each sample point the per-advert RSSI is Normal(path loss, shadowing),
    heard when above the sensitivity and not lost. A window holds
    ``window_ms / advert_interval_ms`` adverts; the gateway reports the mean of
    those heard. Per zone, the map keeps the mixture's mean and spread over the
    points (weighted by how often each point is heard), so the spread includes
    where in the zone the shopper stands, not only the shadowing.
    """
    if points_per_zone < 1:
        raise ValueError("points_per_zone must be at least 1")
    return place_map(
        plan,
        [zone.id for zone in plan.zones],
        np.stack(zone_points(plan, points_per_zone, seed)),
        tx_power_1m_dbm=tx_power_1m_dbm,
        exponent=exponent,
        shadowing_db=shadowing_db,
        sensitivity_dbm=sensitivity_dbm,
        window_ms=window_ms,
        advert_interval_ms=advert_interval_ms,
        base_loss=base_loss,
        loss_per_10m=loss_per_10m,
        sigma_floor_db=SIGMA_FLOOR_DB,
        beacons=beacons,
        beacon_interval_ms=beacon_interval_ms,
    )


def place_map(
    plan: StorePlan,
    places: Sequence[str],
    points: NDArray[np.float64],
    *,
    tx_power_1m_dbm: PerAnchor = -59.0,
    exponent: PerAnchor = 2.2,
    shadowing_db: PerAnchor = 4.0,
    sensitivity_dbm: float = -95.0,
    window_ms: int = 1000,
    advert_interval_ms: int = 500,
    base_loss: float = 0.05,
    loss_per_10m: float = 0.10,
    sigma_floor_db: float = 1.0,
    beacons: bool = False,
    beacon_interval_ms: int = BEACON_INTERVAL_MS,
) -> RadioMap:
    """The path-loss model over any set of places (e.g. grid cells), each given
    by sample points ``(places, points, 2)``; rows named ``places``.
    ``tx_power_1m_dbm``, ``exponent`` and ``shadowing_db`` may be per anchor.

    ``beacons``: the store's fixed beacons are anchors too, after the
    gateways, as a listening phone hears them (issue 15): each at its own
    ``tx_power`` (the store file's measured power at 1 m), the gateways' mean
    exponent and spread, and a window averaging the adverts of a beacon
    sending every ``beacon_interval_ms``."""
    anchors, anchor_xy = anchor_positions(plan)
    mean, spread, p_heard = _place_statistics(
        points,
        anchor_xy,
        tx_power_1m_dbm=tx_power_1m_dbm,
        exponent=exponent,
        shadowing_db=shadowing_db,
        sensitivity_dbm=sensitivity_dbm,
        adverts=max(1, round(window_ms / advert_interval_ms)),
        base_loss=base_loss,
        loss_per_10m=loss_per_10m,
    )
    if beacons and plan.beacons:
        names, beacon_xy = beacon_positions(plan)
        heard = _place_statistics(
            points,
            beacon_xy,
            tx_power_1m_dbm=np.array([b.tx_power for b in plan.beacons], dtype=np.float64),
            exponent=float(np.mean(exponent)),
            shadowing_db=float(np.mean(shadowing_db)),
            sensitivity_dbm=sensitivity_dbm,
            adverts=max(1, round(window_ms / beacon_interval_ms)),
            base_loss=base_loss,
            loss_per_10m=loss_per_10m,
        )
        anchors = anchors + names
        mean, spread, p_heard = (
            np.concatenate([a, b], axis=1)
            for a, b in zip((mean, spread, p_heard), heard, strict=True)
        )
    return RadioMap(
        zones=tuple(places),
        anchors=anchors,
        mean_dbm=mean,
        sigma_db=np.maximum(spread, sigma_floor_db),
        p_heard=np.clip(p_heard, P_HEARD_MIN, P_HEARD_MAX),
    )


def _place_statistics(
    points: NDArray[np.float64],
    anchor_xy: NDArray[np.float64],
    *,
    tx_power_1m_dbm: PerAnchor,
    exponent: PerAnchor,
    shadowing_db: PerAnchor,
    sensitivity_dbm: float,
    adverts: int,
    base_loss: float,
    loss_per_10m: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per place (G, P sample points): mixture mean, spread and hearing chance per anchor."""
    sigma = np.maximum(np.asarray(shadowing_db, dtype=np.float64), 1e-6)
    distance = np.linalg.norm(points[:, :, None, :] - anchor_xy[None, None, :, :], axis=3)
    mu = mean_rssi_dbm(distance, tx_power_1m_dbm, exponent)  # (G, P, A)
    alpha = (sensitivity_dbm - mu) / sigma
    above = np.clip(1.0 - normal_cdf(alpha), 1e-12, 1.0)
    # adverts above the sensitivity: a normal truncated from below
    lam = normal_pdf(alpha) / above
    mu_heard = mu + sigma * lam
    var_advert = sigma**2 * np.clip(1.0 + alpha * lam - lam**2, 0.05, 1.0)
    q = above * (1.0 - packet_loss(distance, base_loss, loss_per_10m))  # one advert heard
    heard_window = 1.0 - (1.0 - q) ** adverts
    var_window = var_advert * _mean_inverse_heard(q, adverts)
    weight = np.maximum(heard_window, 1e-12)
    total = weight.sum(axis=1)
    mean = (weight * mu_heard).sum(axis=1) / total
    var = (weight * (var_window + (mu_heard - mean[:, None, :]) ** 2)).sum(axis=1) / total
    return mean, np.sqrt(var), heard_window.mean(axis=1)


def _mean_inverse_heard(q: NDArray[np.float64], adverts: int) -> NDArray[np.float64]:
    """E[1/n | n >= 1] for n ~ Binomial(adverts, q): how much averaging shrinks the spread."""
    total = np.zeros_like(q)
    mass = np.zeros_like(q)
    for n in range(1, adverts + 1):
        pn = math.comb(adverts, n) * q**n * (1.0 - q) ** (adverts - n)
        total += pn / n
        mass += pn
    return np.where(mass > 1e-12, total / np.maximum(mass, 1e-12), 1.0)


def fingerprint_map(
    survey: Survey,
    anchors: Sequence[str] | None = None,
    *,
    zones: Sequence[str] | None = None,
    prior_sigma_db: float = 4.0,
    prior_samples: float = 2.0,
) -> RadioMap:
    """A radio map from labelled survey samples (one sample = one window).

    Zones default to the survey's zones in order of first appearance; pass the
    store's zone list to keep its order (zones without samples get the
    "unknown" row). Spreads are shrunk towards ``prior_sigma_db`` with the weight
    of ``prior_samples`` samples, so a zone measured three times does not claim a
    0.3 dB spread; hearing probabilities use add-one-half smoothing.
    """
    zone_list = tuple(zones) if zones is not None else tuple(dict.fromkeys(survey.zones))
    anchor_list = tuple(anchors) if anchors is not None else survey.anchors
    column = {anchor: i for i, anchor in enumerate(survey.anchors)}
    labels = np.array(survey.zones, dtype=object)
    mean = np.full((len(zone_list), len(anchor_list)), UNKNOWN_MEAN_DBM)
    spread = np.full_like(mean, UNKNOWN_SIGMA_DB)
    p_heard = np.full_like(mean, UNKNOWN_P_HEARD)
    heard_anywhere = survey.rssi[~np.isnan(survey.rssi)]
    weakest = float(heard_anywhere.min()) if heard_anywhere.size else UNKNOWN_MEAN_DBM
    for z, zone in enumerate(zone_list):
        rows = survey.rssi[labels == zone] if len(labels) else survey.rssi[:0]
        n = rows.shape[0]
        if n == 0:
            continue
        for a, anchor in enumerate(anchor_list):
            if anchor not in column:
                continue
            values = rows[:, column[anchor]]
            values = values[~np.isnan(values)]
            count = values.size
            p_heard[z, a] = (count + 0.5) / (n + 1.0)
            if count == 0:
                mean[z, a] = weakest - 3.0
                spread[z, a] = prior_sigma_db * 1.5
                continue
            m = float(values.mean())
            squares = float(((values - m) ** 2).sum())
            mean[z, a] = m
            spread[z, a] = math.sqrt(
                (squares + prior_samples * prior_sigma_db**2) / (count + prior_samples)
            )
    return RadioMap(
        zones=zone_list,
        anchors=anchor_list,
        mean_dbm=mean,
        sigma_db=np.maximum(spread, SIGMA_FLOOR_DB),
        p_heard=np.clip(p_heard, P_HEARD_MIN, P_HEARD_MAX),
    )


def expand_to_places(
    zone_map: RadioMap, places: Sequence[str], place_zone: Sequence[str]
) -> RadioMap:
    """A zone map spread over finer places (grid cells): each place gets its
    zone's row; places in zones the map does not know are left out."""
    index = zone_map.zone_index()
    kept = [(p, index[z]) for p, z in zip(places, place_zone, strict=True) if z in index]
    rows = [i for _, i in kept]
    return RadioMap(
        zones=tuple(p for p, _ in kept),
        anchors=zone_map.anchors,
        mean_dbm=zone_map.mean_dbm[rows].reshape(len(rows), len(zone_map.anchors)),
        sigma_db=zone_map.sigma_db[rows].reshape(len(rows), len(zone_map.anchors)),
        p_heard=zone_map.p_heard[rows].reshape(len(rows), len(zone_map.anchors)),
    )


def combine(model: RadioMap, survey: RadioMap, survey_weight: float = 0.7) -> RadioMap:
    """Blend a survey map into a model map, cell by cell.

    The result has the model's zones (in its order; survey-only zones are
    dropped) and the model's anchors followed by survey-only anchors (e.g.
    fixed beacons). Where both know a cell, the result is the two-component
    mixture ``survey_weight * survey + (1 - survey_weight) * model`` (its mean,
    its spread including the gap between the two means, its hearing
    probability); where one knows it, that one; where neither, the "unknown" row.
    """
    if not 0.0 <= survey_weight <= 1.0:
        raise ValueError("survey_weight must be within [0, 1]")
    zones = model.zones
    anchors = model.anchors + tuple(a for a in survey.anchors if a not in model.anchors)
    shape = (len(zones), len(anchors))

    def spread_out(source: RadioMap) -> tuple[NDArray[np.float64], ...]:
        mean = np.full(shape, np.nan)
        sigma = np.full(shape, np.nan)
        p = np.full(shape, np.nan)
        zi = [i for i, zone in enumerate(zones) if zone in source.zone_index()]
        si = [source.zone_index()[zones[i]] for i in zi]
        ai = [i for i, anchor in enumerate(anchors) if anchor in source.anchor_index()]
        sa = [source.anchor_index()[anchors[i]] for i in ai]
        cells = np.ix_(zi, ai)
        source_cells = np.ix_(si, sa)
        mean[cells] = source.mean_dbm[source_cells]
        sigma[cells] = source.sigma_db[source_cells]
        p[cells] = source.p_heard[source_cells]
        return mean, sigma, p

    m_mean, m_sigma, m_p = spread_out(model)
    s_mean, s_sigma, s_p = spread_out(survey)
    known_m = ~np.isnan(m_mean)
    known_s = ~np.isnan(s_mean)
    w = np.where(known_s, np.where(known_m, survey_weight, 1.0), 0.0)
    m_mean, m_sigma, m_p = (np.nan_to_num(x) for x in (m_mean, m_sigma, m_p))
    s_mean, s_sigma, s_p = (np.nan_to_num(x) for x in (s_mean, s_sigma, s_p))
    mean = w * s_mean + (1 - w) * m_mean
    var = w * (s_sigma**2 + (s_mean - mean) ** 2) + (1 - w) * (m_sigma**2 + (m_mean - mean) ** 2)
    p = w * s_p + (1 - w) * m_p
    unknown = ~(known_m | known_s)
    mean[unknown] = UNKNOWN_MEAN_DBM
    var[unknown] = UNKNOWN_SIGMA_DB**2
    p[unknown] = UNKNOWN_P_HEARD
    return RadioMap(
        zones=zones,
        anchors=anchors,
        mean_dbm=mean,
        sigma_db=np.maximum(np.sqrt(var), SIGMA_FLOOR_DB),
        p_heard=np.clip(p, P_HEARD_MIN, P_HEARD_MAX),
    )


#: How far a point survey's sample reaches (``point_fingerprint_map``), metres.
POINT_SURVEY_RADIUS_M = 1.0
#: How many samples' worth of the zone's own row each place starts from.
POINT_SURVEY_PRIOR_SAMPLES = 5.0


def point_fingerprint_map(
    survey: Survey,
    zone_map: RadioMap,
    places: Sequence[str],
    place_points: NDArray[np.float64],
    place_zone: Sequence[str],
    *,
    radius_m: float = POINT_SURVEY_RADIUS_M,
    prior_samples: float = POINT_SURVEY_PRIOR_SAMPLES,
) -> RadioMap:
    """A survey with positions (``Survey.points``) spread over places by where
    each sample was taken, not only by its zone.

    Each place (a grid cell, at ``place_points``) takes the samples of its own
    zone with a Gaussian weight on their distance (``radius_m``, cut at three
    times that), on top of ``prior_samples`` samples' worth of its zone's
    row in ``zone_map`` (``fingerprint_map`` of the same survey): a place
    next to many samples is described by them, one far from every sample by
    its zone's average, as ``expand_to_places`` does for every place. Near
    a door, this is what tells the two sides apart: a zone's average row
    describes its middle. Places in zones the map does not know are left out."""
    if survey.points is None:
        raise ValueError("point_fingerprint_map needs a survey with x,y points")
    if radius_m <= 0 or prior_samples <= 0:
        raise ValueError("radius_m and prior_samples must be positive")
    expanded = expand_to_places(zone_map, places, place_zone)
    kept = [i for i, z in enumerate(place_zone) if z in zone_map.zone_index()]
    anchors = zone_map.anchors
    column = {anchor: i for i, anchor in enumerate(survey.anchors)}
    columns = [column.get(a, -1) for a in anchors]
    rssi = np.full((len(survey.zones), len(anchors)), np.nan)
    for a, c in enumerate(columns):
        if c >= 0:
            rssi[:, a] = survey.rssi[:, c]
    heard = ~np.isnan(rssi)
    values = np.where(heard, rssi, 0.0)
    labels = np.array(survey.zones, dtype=object)
    mean = expanded.mean_dbm.copy()
    var = expanded.sigma_db.copy() ** 2
    p = expanded.p_heard.copy()
    centres = np.asarray(place_points, dtype=np.float64)[kept]
    zones_kept = [place_zone[i] for i in kept]
    for zone in dict.fromkeys(zones_kept):
        at = np.flatnonzero(np.array(zones_kept, dtype=object) == zone)
        samples = np.flatnonzero(labels == zone)
        if samples.size == 0:
            continue
        d2 = ((centres[at, None, :] - survey.points[None, samples, :]) ** 2).sum(axis=2)
        w = np.exp(-0.5 * d2 / radius_m**2)
        w[d2 > (3 * radius_m) ** 2] = 0.0
        h = heard[samples].astype(np.float64)
        x = values[samples]
        total = w.sum(axis=1)[:, None]  # (places, 1)
        w_heard = w @ h  # (places, A)
        k = prior_samples
        p0, m0, v0 = p[at], mean[at], var[at]
        k_heard = k * p0
        new_p = (w_heard + k * p0) / (total + k)
        new_mean = (w @ (h * x) + k_heard * m0) / (w_heard + k_heard)
        second = w @ (h * x * x)  # sum of w x² over heard samples
        squares = second - 2 * new_mean * (w @ (h * x)) + new_mean**2 * w_heard
        new_var = (np.maximum(squares, 0.0) + k_heard * (v0 + (m0 - new_mean) ** 2)) / (
            w_heard + k_heard
        )
        p[at], mean[at], var[at] = new_p, new_mean, new_var
    return RadioMap(
        zones=expanded.zones,
        anchors=anchors,
        mean_dbm=mean,
        sigma_db=np.maximum(np.sqrt(var), SIGMA_FLOOR_DB),
        p_heard=np.clip(p, P_HEARD_MIN, P_HEARD_MAX),
    )
