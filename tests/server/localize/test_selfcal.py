"""The self-calibration fit: gateways hearing one another recover each
gateway's hidden power and exponent; a blocked or moved gateway is flagged."""

import numpy as np
import pytest

from omnizone.paths import shipped_config
from omnizone.server.domain.localize.selfcal import Hearings, drift, fit_self
from omnizone.sim.scenario import load_scenario
from omnizone.store import load_store

PLAN = load_store(shipped_config("stores/rivoli.yaml"))
GATEWAYS = [g.id for g in PLAN.gateways]
POSITIONS = np.array([g.position for g in PLAN.gateways], dtype=np.float64)
HIDDEN = load_scenario(shipped_config("scenarios/selfcal.yaml")).radio


def _hearings(
    positions: np.ndarray,
    *,
    rounds: int = 120,
    sigma: float = 3.0,
    seed: int = 0,
    start_ms: int = 0,
    quieter: dict[str, float] | None = None,
) -> Hearings:
    """Every gateway hears every other once a second through its hidden radio."""
    rng = np.random.default_rng(seed)
    power, exponent = HIDDEN.per_gateway(GATEWAYS)
    extra = np.array([(quieter or {}).get(g, 0.0) for g in GATEWAYS])
    receiver, sender, rssi, at = [], [], [], []
    g = len(GATEWAYS)
    for k in range(rounds):
        for j in range(g):
            for i in range(g):
                if i == j:
                    continue
                d = max(float(np.linalg.norm(positions[i] - positions[j])), 0.5)
                value = power[j] - 10 * exponent[j] * np.log10(d) + rng.normal(0, sigma)
                receiver.append(j)
                sender.append(i)
                rssi.append(value - extra[i] - extra[j])
                at.append(start_ms + k * 1000)
    return Hearings(
        np.array(receiver, dtype=np.intp),
        np.array(sender, dtype=np.intp),
        np.array(rssi),
        np.array(at, dtype=np.int64),
    )


def test_the_fit_recovers_every_gateways_hidden_power_and_exponent() -> None:
    fits = fit_self(GATEWAYS, POSITIONS, _hearings(POSITIONS))
    power, exponent = HIDDEN.per_gateway(GATEWAYS)
    assert all(f.fitted for f in fits)
    log_d = np.log10(np.array([2.0, 5.0, 10.0, 15.0]))
    for j, fit in enumerate(fits):
        # Gateways hear one another at 6-25 m: power at 1 m is an extrapolation,
        # and a receiver with a narrow range of distances trades power for exponent;
        # what the localizer uses, the RSSI at shoppers' distances, is tight.
        assert fit.radio.power_1m_dbm == pytest.approx(power[j], abs=2.5), fit.anchor
        assert fit.radio.exponent == pytest.approx(exponent[j], abs=0.2), fit.anchor
        got = fit.radio.power_1m_dbm - 10 * fit.radio.exponent * log_d
        true = power[j] - 10 * exponent[j] * log_d
        assert np.abs(got - true).max() <= 1.5, fit.anchor
        assert fit.radio.spread_db == pytest.approx(3.0, abs=0.5)
    # and the defaults were far off: this is not the fit leaving the defaults be
    assert max(abs(power + 59.0)) >= 9


def test_a_gateway_that_hears_nobody_keeps_the_defaults() -> None:
    hearings = _hearings(POSITIONS)
    fits = fit_self(GATEWAYS, POSITIONS, hearings.where(hearings.receiver != 0))
    assert not fits[0].fitted
    assert all(f.fitted for f in fits[1:])


def _before_and_after(after_positions: np.ndarray, **after: object) -> Hearings:
    before = _hearings(POSITIONS, rounds=60, seed=1)
    recent = _hearings(after_positions, rounds=30, seed=2, start_ms=60_000, **after)  # type: ignore[arg-type]
    return Hearings(
        np.concatenate([before.receiver, recent.receiver]),
        np.concatenate([before.sender, recent.sender]),
        np.concatenate([before.rssi, recent.rssi]),
        np.concatenate([before.at_ms, recent.at_ms]),
    )


def test_steady_gateways_raise_no_alert() -> None:
    assert drift(GATEWAYS, _before_and_after(POSITIONS), recent_from_ms=60_000) == []


def test_a_blocked_gateway_is_flagged_blocked_and_only_it() -> None:
    hearings = _before_and_after(POSITIONS, quieter={"gw-shoes": 12.0})
    [alert] = drift(GATEWAYS, hearings, recent_from_ms=60_000)
    assert (alert.gateway, alert.kind) == ("gw-shoes", "blocked")
    assert alert.shift_db == pytest.approx(-12.0, abs=1.5)
    assert "quieter" in alert.message


def test_a_moved_gateway_is_flagged_moved() -> None:
    moved = POSITIONS.copy()
    moved[GATEWAYS.index("gw-entrance")] = (2.0, 18.0)  # from the entrance to a far corner
    alerts = drift(GATEWAYS, _before_and_after(moved), recent_from_ms=60_000)
    assert [(a.gateway, a.kind) for a in alerts] == [("gw-entrance", "moved")]
    assert "position" in alerts[0].message
