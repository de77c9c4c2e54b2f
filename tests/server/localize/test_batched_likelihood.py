"""The likelihood of many devices at once, in cache-sized blocks written
straight into the result, against one device at a time: the batched path is
the only implementation, and a single device is just a batch of one."""

import numpy as np
import pytest
from scipy import sparse

from omnizone.server.domain.localize import StoreLocalizer
from omnizone.server.domain.localize.likelihood import BLOCK_ROWS, LikelihoodModel
from omnizone.server.domain.localize.localizer import GRID_BLOCK_DEVICES, window_evidence
from omnizone.store import StorePlan


@pytest.mark.parametrize("present_kind", ["all", "shared", "per-device"])
@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_match_one_device_at_a_time(plan: StorePlan, present_kind: str, seed: int) -> None:
    model = LikelihoodModel(StoreLocalizer.on_grid(plan).radio)
    anchors = len(model.radio.anchors)
    rng = np.random.default_rng(seed)
    devices = 2 * BLOCK_ROWS + 37  # two full blocks and a partial one
    rssi = rng.uniform(-100.0, -40.0, size=(devices, anchors))
    rssi[rng.random(rssi.shape) < rng.uniform(0.0, 1.0, size=(devices, 1))] = np.nan
    rssi[:5] = np.nan  # nobody heard these
    present: np.ndarray | None = None
    if present_kind == "shared":
        present = rng.random(anchors) < 0.8
    elif present_kind == "per-device":
        present = rng.random((devices, anchors)) < 0.8

    batch = model(rssi, present, with_outside=True)

    assert batch.shape == (devices, model.weights_with_outside.shape[1])
    for d in [*rng.choice(devices, size=40, replace=False).tolist(), 0, devices - 1]:
        row_present = present[d : d + 1] if present is not None and present.ndim == 2 else present
        one = model(rssi[d : d + 1], row_present, with_outside=True)
        np.testing.assert_allclose(batch[d], one[0], rtol=1e-12, atol=1e-9)
    # a device no reporting anchor heard scores exactly the silence row
    shared = present if present is None or present.ndim == 1 else None
    if shared is not None or present is None:
        np.testing.assert_array_equal(batch[0], model.silence(shared, with_outside=True))


def test_zone_shares_are_a_sparse_product(plan: StorePlan) -> None:
    """The grid step sums cells into zones with a sparse matrix equal to the
    dense shares: a cell lies in one zone or a few."""
    for cell_m in (1.0, 2.0):  # 2 m cells straddle zones
        localizer = StoreLocalizer.on_grid(plan, cell_m=cell_m)
        step = localizer._grid_step
        assert step is not None and sparse.issparse(step.cell_membership)
        cells = step.motion.cells
        dense = step.membership[:cells].T
        np.testing.assert_array_equal(step.cell_membership.toarray(), dense)
        assert step.cell_membership.nnz <= 4 * cells
        x = np.random.default_rng(3).random((cells, 50))
        np.testing.assert_allclose(step.cell_membership @ x, dense @ x, rtol=1e-12)


def test_scores_and_evidence_into_a_kept_buffer(plan: StorePlan) -> None:
    """``out`` gives the same numbers as a fresh array, and the evidence
    refuses a buffer that overlaps the readings it scatters."""
    model = LikelihoodModel(StoreLocalizer.on_grid(plan).radio)
    rng = np.random.default_rng(4)
    rssi = rng.uniform(-95.0, -45.0, size=(BLOCK_ROWS + 9, len(model.radio.anchors)))
    rssi[rng.random(rssi.shape) < 0.5] = np.nan
    fresh = model(rssi, with_outside=True)
    buffer = np.full_like(fresh, np.inf)
    np.testing.assert_array_equal(model(rssi, with_outside=True, out=buffer), fresh)
    np.testing.assert_array_equal(buffer, fresh)
    with pytest.raises(ValueError, match="out must be"):
        model(rssi, with_outside=True, out=buffer[:-1])

    silence = model.silence(with_outside=True)
    tracked = rssi.shape[0] + 20  # 20 tracked devices not in this window
    rows = rng.permutation(tracked)[: rssi.shape[0]]
    heard = np.zeros(tracked, dtype=bool)
    heard[rows] = ~np.isnan(rssi).all(axis=1)

    def evidence(readings: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return window_evidence(
            silence,
            readings,
            rows,
            heard,
            columns=None,
            silent_window_probability=0.05,
            evidence_weight=0.8,
            out=out,
        )

    want = evidence(fresh)
    kept = np.full((tracked, silence.size), np.nan)
    got = evidence(fresh, kept)
    assert got is kept
    np.testing.assert_array_equal(got, want)
    # a buffer that overlaps the readings would be overwritten while read
    whole = np.empty((fresh.shape[0] + tracked, fresh.shape[1]))
    whole[: fresh.shape[0]] = fresh
    readings = whole[: fresh.shape[0]]
    overlapping = whole[fresh.shape[0] - 1 : fresh.shape[0] - 1 + tracked]
    with pytest.raises(ValueError, match="apart from the readings"):
        evidence(readings, overlapping)


def test_kept_work_arrays_decide_as_fresh_ones(plan: StorePlan) -> None:
    """A localizer keeps its (devices × columns) work arrays from window to
    window (``_scratch``); with device counts that grow and shrink, the stale
    rows left in them from a bigger window must never show: the decisions are
    exactly those of a localizer given new NaN-filled arrays every window."""
    template = StoreLocalizer.on_grid(plan)
    radio = template.radio
    kept, fresh = template.blank(), template.blank()
    assert kept._buffers is not fresh._buffers  # ``blank`` never shares them
    fresh._scratch = lambda name, rows, columns: np.full((rows, columns), np.nan)  # type: ignore[method-assign]
    rng = np.random.default_rng(8)
    pool = [f"eid:{i:04x}" for i in range(3 * GRID_BLOCK_DEVICES)]
    decisions = 0
    for w in range(12):
        count = int(rng.integers(1, len(pool)))
        names = [pool[i] for i in rng.permutation(len(pool))[:count].tolist()]
        cells = rng.integers(0, len(radio.zones), size=count)
        rssi = radio.mean_dbm[cells] + radio.sigma_db[cells] * rng.standard_normal(
            (count, len(radio.anchors))
        )
        rssi[rng.random(rssi.shape) >= radio.p_heard[cells]] = np.nan
        got = kept.update((w + 1) * 1000, names, rssi)
        want = fresh.update((w + 1) * 1000, names, rssi)
        assert got == want
        decisions += len(got)
    assert decisions > 12 * GRID_BLOCK_DEVICES
