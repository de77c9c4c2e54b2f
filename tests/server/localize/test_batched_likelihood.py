"""The likelihood of many devices at once, in cache-sized blocks written
straight into the result, against one device at a time: the batched path is
the only implementation, and a single device is just a batch of one."""

import numpy as np
import pytest
from scipy import sparse

from omnizone.server.domain.localize import StoreLocalizer
from omnizone.server.domain.localize.likelihood import BLOCK_ROWS, LikelihoodModel
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
