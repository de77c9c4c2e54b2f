"""Zone probabilities from an ensemble of decision trees, scored in numpy.

Why: the learned likelihood (``learned``) treats anchors as independent given
the zone; a forest of randomized trees sees which anchors are heard together
and how their readings compare, which is where the scikit-learn peers of
``omnizone eval fingerprint`` beat the tables (docs/benchmarks.md, "Issue 14
point 5"). The product of the two posteriors is better than either alone on
12 of the 13 surveys measured there.

This module only holds the fitted trees as flat arrays and scores them: the
fit is done elsewhere (``omnizone.suite.evaluation.fingerprint`` fits
scikit-learn's extremely randomized trees and converts them), so the server
needs no scikit-learn at run time. Scoring walks every tree one level at a
time for a block of devices at once: per device-window, trees × depth
gathers and comparisons, then the mean of the reached leaves' zone shares.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: "Not heard" (NaN) as a number, as the trees were grown with it.
MISSING_DBM = -100.0
#: Zone shares are floored here before the log (a leaf that never saw a zone).
PROBABILITY_FLOOR = 1e-4
#: Devices scored per block (the (block, trees, zones) gather stays small).
BLOCK_ROWS = 128


@dataclass(frozen=True)
class TreeEnsemble:
    """Trees as flat arrays over all their nodes; a leaf's children are itself."""

    zones: tuple[str, ...]  # (Z,)
    anchors: tuple[str, ...]  # (A,) the feature order
    feature: NDArray[np.intp]  # (nodes,) the anchor a node splits on; 0 at leaves
    threshold: NDArray[np.float64]  # (nodes,) go left when reading <= threshold
    left: NDArray[np.intp]  # (nodes,) absolute node index
    right: NDArray[np.intp]  # (nodes,)
    roots: NDArray[np.intp]  # (T,)
    leaf_shares: NDArray[np.float32]  # (nodes, Z) zone shares of the training rows at a leaf
    depth: int  # the deepest leaf's depth: levels to walk

    def __post_init__(self) -> None:
        nodes = len(self.feature)
        for name in ("threshold", "left", "right"):
            if len(getattr(self, name)) != nodes:
                raise ValueError(f"{name} has {len(getattr(self, name))} nodes, expected {nodes}")
        if self.leaf_shares.shape != (nodes, len(self.zones)):
            raise ValueError(
                f"leaf_shares has shape {self.leaf_shares.shape}, "
                f"expected {(nodes, len(self.zones))}"
            )
        if len(self.roots) == 0:
            raise ValueError("an ensemble needs at least one tree")


def tree_features(rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the trees split on: the readings with "not heard" as ``MISSING_DBM``.

    Rounded through float32 as scikit-learn's trees do, so a threshold learned
    there sends a reading the same way here.
    """
    filled = np.nan_to_num(np.asarray(rssi, dtype=np.float64), nan=MISSING_DBM)
    return filled.astype(np.float32).astype(np.float64)


def score_trees(model: TreeEnsemble, rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, Z) log of the trees' mean zone shares for (N, A) readings in ``model.anchors`` order.

    NaN (not heard, or the anchor did not report) counts as ``MISSING_DBM``.
    """
    rssi = np.asarray(rssi, dtype=np.float64)
    if rssi.ndim != 2 or rssi.shape[1] != len(model.anchors):
        raise ValueError(f"rssi has shape {rssi.shape}, expected (N, {len(model.anchors)})")
    x = tree_features(rssi)
    trees = len(model.roots)
    out = np.empty((rssi.shape[0], len(model.zones)))
    for start in range(0, rssi.shape[0], BLOCK_ROWS):
        block = x[start : start + BLOCK_ROWS]
        rows = np.arange(len(block))[:, None]
        node = np.broadcast_to(model.roots, (len(block), trees)).copy()
        for _ in range(model.depth):
            go_left = block[rows, model.feature[node]] <= model.threshold[node]
            node = np.where(go_left, model.left[node], model.right[node])
        shares = model.leaf_shares[node].sum(axis=1, dtype=np.float64) / trees
        out[start : start + BLOCK_ROWS] = np.log(np.maximum(shares, PROBABILITY_FLOOR))
    return out
