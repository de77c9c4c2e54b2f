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
    """Trees as flat arrays over all their nodes, each tree laid out level by level.

    An inner node's children are ``child[n]`` (reading <= threshold) and
    ``child[n] + 1``; a leaf has ``feature`` -1 and ``child`` its row in
    ``leaf_shares``.
    """

    zones: tuple[str, ...]  # (Z,)
    anchors: tuple[str, ...]  # (A,) the feature order
    feature: NDArray[np.intp]  # (nodes,) the anchor a node splits on; -1 at leaves
    threshold: NDArray[np.float64]  # (nodes,) go to the first child when reading <= threshold
    child: NDArray[np.intp]  # (nodes,) the first child (inner node) or the leaf's row
    roots: NDArray[np.intp]  # (T,)
    leaf_shares: NDArray[np.float32]  # (leaves, Z) zone shares of the training rows at a leaf

    def __post_init__(self) -> None:
        nodes = len(self.feature)
        for name in ("threshold", "child"):
            if len(getattr(self, name)) != nodes:
                raise ValueError(f"{name} has {len(getattr(self, name))} nodes, expected {nodes}")
        if self.leaf_shares.ndim != 2 or self.leaf_shares.shape[1] != len(self.zones):
            raise ValueError(
                f"leaf_shares has shape {self.leaf_shares.shape}, "
                f"expected (leaves, {len(self.zones)})"
            )
        if len(self.roots) == 0:
            raise ValueError("an ensemble needs at least one tree")


def layout_tree(
    feature: NDArray[np.intp],
    threshold: NDArray[np.float64],
    left: NDArray[np.intp],
    right: NDArray[np.intp],
    values: NDArray[np.float64],
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.intp], NDArray[np.float64]]:
    """One tree (node 0 the root, ``left`` -1 at leaves, ``values`` (nodes, Z) zone weights)
    laid out level by level: ``(feature, threshold, child, leaf_shares)`` as ``TreeEnsemble``
    holds them, node and leaf rows counted from 0 within this tree."""
    order: list[NDArray[np.intp]] = []
    level = np.zeros(1, dtype=np.intp)
    while level.size:
        order.append(level)
        inner = level[left[level] >= 0]
        level = np.stack([left[inner], right[inner]], axis=1).ravel()
    old = np.concatenate(order)
    new_of_old = np.empty(len(old), dtype=np.intp)
    new_of_old[old] = np.arange(len(old))
    is_leaf = left[old] < 0
    leaf_row = np.cumsum(is_leaf) - 1
    child = np.where(is_leaf, leaf_row, new_of_old[np.where(is_leaf, 0, left[old])])
    leaf_values = values[old[is_leaf]]
    totals = leaf_values.sum(axis=1, keepdims=True)
    shares = leaf_values / np.where(totals > 0, totals, 1.0)
    return (
        np.where(is_leaf, -1, feature[old]).astype(np.intp),
        np.where(is_leaf, 0.0, threshold[old]).astype(np.float64),
        child.astype(np.intp),
        shares,
    )


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
    anchors = len(model.anchors)
    out = np.empty((rssi.shape[0], len(model.zones)))
    for start in range(0, rssi.shape[0], BLOCK_ROWS):
        block = x[start : start + BLOCK_ROWS].ravel()
        rows = len(block) // anchors
        # every (row, tree) path still walking: where its reading sits, its node, its slot
        base = np.repeat(np.arange(rows, dtype=np.intp) * anchors, trees)
        node = np.tile(model.roots, rows)
        slot = np.arange(rows * trees, dtype=np.intp)
        reached = np.empty(rows * trees, dtype=np.intp)
        while slot.size:
            feature = model.feature[node]
            leaf = feature < 0
            if leaf.any():
                reached[slot[leaf]] = model.child[node[leaf]]
                walking = ~leaf
                node, base, slot, feature = (
                    node[walking],
                    base[walking],
                    slot[walking],
                    feature[walking],
                )
            node = model.child[node] + (block[base + feature] > model.threshold[node])
        shares = model.leaf_shares[reached].reshape(rows, trees, -1).sum(axis=1, dtype=np.float64)
        out[start : start + rows] = np.log(np.maximum(shares / trees, PROBABILITY_FLOOR))
    return out
