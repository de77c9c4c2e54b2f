"""The tree ensemble as flat arrays: scored in numpy as scikit-learn scores the same trees."""

import numpy as np
import pytest

from omnizone.server.domain.localize import Survey, simulate_survey
from omnizone.server.domain.localize.learned import align_readings, fit_learned, score_learned
from omnizone.server.domain.localize.trees import (
    PROBABILITY_FLOOR,
    TreeEnsemble,
    layout_tree,
    score_trees,
    tree_features,
)
from omnizone.store import StorePlan
from omnizone.suite.evaluation.fingerprint import fit_trees, score_ours


def _with_silence(survey: Survey, share: float, seed: int) -> Survey:
    """``survey`` with ``share`` of its readings turned into "not heard"."""
    rssi = survey.rssi.copy()
    rssi[np.random.default_rng(seed).random(rssi.shape) < share] = np.nan
    return Survey(zones=survey.zones, anchors=survey.anchors, rssi=rssi)


def test_numpy_walk_gives_scikit_learns_probabilities(plan: StorePlan) -> None:
    from sklearn.ensemble import ExtraTreesClassifier  # type: ignore[import-untyped]

    train = _with_silence(simulate_survey(plan, 30, 5.0, seed=1), 0.2, seed=2)
    test = _with_silence(simulate_survey(plan, 10, 5.0, seed=3), 0.2, seed=4)
    trees = fit_trees(train, trees=25, seed=7)
    rssi, _ = align_readings(test, trees.anchors)
    zones = sorted(set(train.zones))
    forest = ExtraTreesClassifier(n_estimators=25, random_state=7, n_jobs=1)
    forest.fit(tree_features(train.rssi), [zones.index(z) for z in train.zones])
    expected = np.log(np.maximum(forest.predict_proba(tree_features(rssi)), PROBABILITY_FLOOR))
    assert trees.zones == tuple(zones)
    assert np.allclose(score_trees(trees, rssi), expected, atol=1e-6)


def test_layout_puts_children_side_by_side_and_leaves_in_their_own_table() -> None:
    # root splits anchor 1 at -70; its right child splits anchor 0 at -60; three leaves
    left = np.array([1, -1, 3, -1, -1])
    right = np.array([2, -1, 4, -1, -1])
    feature = np.array([1, -2, 0, -2, -2])
    threshold = np.array([-70.0, -2.0, -60.0, -2.0, -2.0])
    values = np.array([[4, 4], [3, 0], [1, 4], [1, 0], [0, 4]], dtype=np.float64)
    feat, thr, child, shares = layout_tree(feature, threshold, left, right, values)
    assert list(feat) == [1, -1, 0, -1, -1]
    assert list(child[[0, 2]]) == [1, 3]  # inner nodes: first child; the second is next to it
    assert list(child[[1, 3, 4]]) == [0, 1, 2]  # leaves: rows of the leaf table
    assert np.allclose(shares, [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    model = TreeEnsemble(
        zones=("a", "b"),
        anchors=("gw-0", "gw-1"),
        feature=feat,
        threshold=thr,
        child=child,
        roots=np.array([0]),
        leaf_shares=shares.astype(np.float32),
    )
    readings = np.array([[-50.0, -80.0], [-65.0, -50.0], [-50.0, -50.0], [np.nan, np.nan]])
    assert list(score_trees(model, readings).argmax(axis=1)) == [0, 0, 1, 0]


def test_our_model_is_a_normalised_product_of_tables_and_trees(plan: StorePlan) -> None:
    train = simulate_survey(plan, 20, 4.0, seed=5)
    test = simulate_survey(plan, 5, 4.0, seed=6)
    model, trees = fit_learned(train), fit_trees(train, trees=20)
    rssi, present = align_readings(test, model.anchors)
    log_p = score_ours(model, trees, rssi, present)
    assert np.allclose(np.exp(log_p).sum(axis=1), 1.0)
    product = score_learned(model, rssi, present) + score_trees(trees, rssi)
    assert np.array_equal(log_p.argmax(axis=1), product.argmax(axis=1))


def test_mismatched_or_malformed_input_is_refused(plan: StorePlan) -> None:
    train = simulate_survey(plan, 10, 4.0, seed=8)
    trees = fit_trees(train, trees=5)
    with pytest.raises(ValueError, match="expected \\(N, "):
        score_trees(trees, np.zeros((2, len(trees.anchors) + 1)))
    other = fit_learned(
        Survey(zones=("x", "y"), anchors=("gw",), rssi=np.array([[-50.0], [-80.0]]))
    )
    with pytest.raises(ValueError, match="different surveys"):
        score_ours(other, trees, np.zeros((1, 1)))
    with pytest.raises(ValueError, match="at least one tree"):
        TreeEnsemble(
            zones=("a",),
            anchors=("gw",),
            feature=np.array([-1]),
            threshold=np.zeros(1),
            child=np.zeros(1, dtype=np.intp),
            roots=np.empty(0, dtype=np.intp),
            leaf_shares=np.ones((1, 1), dtype=np.float32),
        )
