"""``omnizone eval fingerprint``: our zone classifier against scikit-learn peers on surveys.

Every model is trained on one survey and classifies each sample of another on
its own (no filter, no time): this measures the per-window likelihood alone.

- **Ours** is the product of two posteriors fitted on the training survey,
  renormalised (``score_ours``), and the zone with the highest
  log-probability: the learned likelihood (``learned.fit_learned``: per-zone,
  per-anchor kernel densities as lookup tables, bandwidth and temperature by
  blocked cross-validation inside the training survey, with the survey's zone
  shares as prior) and an extremely randomized forest (``fit_trees``: 300
  fully grown trees, scikit-learn's defaults otherwise, scored in numpy by
  ``trees.score_trees``). Nothing in it is chosen per set beyond what the
  tables' cross-validation picks. ``tables_only`` is the learned likelihood
  alone (the model before issue 14 point 5). The Gaussian radio map (``fingerprint_map``,
  blended with the floor plan's path-loss map when a store plan is given) and
  ``log_likelihood`` is reported beside it under ``radio_map``.
- **Peers** (issue 14): k-nearest neighbours (k=3), a random forest (200
  trees, ``random_state=0``) and histogram gradient boosting (scikit-learn
  defaults), on the raw RSSI vectors with "not heard" as -100 dBm.
  ``best_peer`` is the most accurate of them and ``margin_over_best_peer``
  our accuracy minus its.
- **Baseline** is FIND3-style kNN with ``n_neighbors`` (1-25) and ``weights``
  chosen by 5-fold cross-validation on the training survey.

``evaluate_fingerprint_suite(folder)`` runs every ``<name>-train.csv`` /
``<name>-test.csv`` pair of a folder in one go.
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omnizone.server.domain.localize import (
    RadioMap,
    Survey,
    combine,
    fingerprint_map,
    load_survey,
    log_likelihood,
    path_loss_map,
)
from omnizone.server.domain.localize.learned import (
    LearnedLikelihood,
    align_readings,
    fit_learned,
    score_learned,
)
from omnizone.server.domain.localize.trees import (
    TreeEnsemble,
    layout_tree,
    score_trees,
    tree_features,
)
from omnizone.store import StorePlan, load_store

KNN_MISSING_DBM = -100.0
#: Trees of our model's extremely randomized forest (fixed, never tuned per survey).
OUR_TREES = 300
KNN_NEIGHBOURS = (1, 3, 5, 7, 9, 15, 25)
#: Ours must beat the best peer by this much on every set (issue 14, point 5).
REQUIRED_MARGIN = 0.03
#: Probabilities are floored here before taking logs for the reported log loss.
PROBABILITY_FLOOR = 1e-4
TRAIN_SUFFIX = "-train.csv"
TEST_SUFFIX = "-test.csv"


class SuiteError(ValueError):
    """A suite folder that cannot be run as asked (no pairs, a train file without its test)."""


def evaluate_fingerprint(
    train: Survey,
    test: Survey,
    *,
    plan: StorePlan | None = None,
    survey_weight: float = 0.7,
    seed: int = 0,
) -> dict[str, Any]:
    """Zone accuracy and confusion on ``test`` for ours, the radio map, the peers and kNN."""
    model = fit_learned(train)
    trees = fit_trees(train, seed=seed)
    aligned, present = align_readings(test, model.anchors)
    log_p = score_ours(model, trees, aligned, present)
    zones = np.array(model.zones, dtype=object)
    ours = zones[log_p.argmax(axis=1)]
    tables_only = zones[score_learned(model, aligned, present).argmax(axis=1)]
    peers = _peers(train, test)
    best = max(peers, key=lambda name: peers[name]["zone_accuracy"])
    summary = _summary(test.zones, ours.tolist())
    margin = round(summary["zone_accuracy"] - peers[best]["zone_accuracy"], 4)
    knn, chosen = _knn_predict(train, test, seed)
    return {
        **summary,
        "method": "learned+trees",
        "tables_only": _summary(test.zones, tables_only.tolist())["zone_accuracy"],
        "log_loss": _log_loss(model.zones, log_p, test.zones),
        "model": {
            "bandwidth_db": model.bandwidth_db,
            "temperature": round(model.temperature, 4),
            "linear_weight": round(model.linear_weight, 4),
            "trees": len(trees.roots),
            "tree_nodes": len(trees.feature),
            "tree_leaves": len(trees.leaf_shares),
        },
        "n_train": len(train),
        "radio_map": _radio_map_result(train, test, plan, survey_weight),
        "peers": peers,
        "best_peer": best,
        "margin_over_best_peer": margin,
        "ahead_of_best_peer": margin >= REQUIRED_MARGIN,
        "baseline": {**_summary(test.zones, knn), "method": "knn", **chosen},
    }


def evaluate_fingerprint_files(
    train_path: str | Path, test_path: str | Path, store_path: str | Path | None = None
) -> dict[str, Any]:
    """The CLI's entry: load the surveys (and the store, checking zones against it)."""
    plan = load_store(store_path) if store_path is not None else None
    train = load_survey(train_path, plan)
    test = load_survey(test_path, plan)
    return {
        **evaluate_fingerprint(train, test, plan=plan),
        "train": str(train_path),
        "test": str(test_path),
    }


def suite_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """``(name, train, test)`` for every ``<name>-train.csv`` in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SuiteError(f"{folder}: not a folder")
    pairs: list[tuple[str, Path, Path]] = []
    lonely: list[str] = []
    for train in sorted(folder.glob(f"*{TRAIN_SUFFIX}")):
        name = train.name[: -len(TRAIN_SUFFIX)]
        test = folder / f"{name}{TEST_SUFFIX}"
        if test.is_file():
            pairs.append((name, train, test))
        else:
            lonely.append(f"{train.name} has no {test.name}")
    for test in sorted(folder.glob(f"*{TEST_SUFFIX}")):
        if not (folder / f"{test.name[: -len(TEST_SUFFIX)]}{TRAIN_SUFFIX}").is_file():
            lonely.append(f"{test.name} has no {test.name[: -len(TEST_SUFFIX)]}{TRAIN_SUFFIX}")
    if lonely:
        raise SuiteError(f"{folder}: unpaired survey files: " + "; ".join(lonely))
    if not pairs:
        raise SuiteError(f"{folder}: no '<name>{TRAIN_SUFFIX}' / '<name>{TEST_SUFFIX}' pairs")
    return pairs


def evaluate_fingerprint_suite(
    folder: str | Path, on_pair: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every pair of ``folder`` in one run: ours against the best peer, and where we are behind."""
    rows: list[dict[str, Any]] = []
    for name, train, test in suite_pairs(folder):
        if on_pair is not None:
            on_pair(name)
        result = evaluate_fingerprint(load_survey(train), load_survey(test))
        best = result["best_peer"]
        rows.append(
            {
                "name": name,
                "n_train": result["n_train"],
                "n_test": result["n_test"],
                "zones": len(result["per_zone_accuracy"]),
                "zone_accuracy": result["zone_accuracy"],
                "log_loss": result["log_loss"],
                "tables_only": result["tables_only"],
                "radio_map": result["radio_map"]["zone_accuracy"],
                "peers": {k: v["zone_accuracy"] for k, v in result["peers"].items()},
                "best_peer": best,
                "best_peer_accuracy": result["peers"][best]["zone_accuracy"],
                "margin_over_best_peer": result["margin_over_best_peer"],
                "ahead_of_best_peer": result["ahead_of_best_peer"],
                "model": result["model"],
            }
        )
    behind = [row["name"] for row in rows if not row["ahead_of_best_peer"]]
    return {
        "folder": str(folder),
        "required_margin": REQUIRED_MARGIN,
        "pairs": rows,
        "behind": behind,
        "ahead_everywhere": not behind,
    }


def fit_trees(survey: Survey, *, trees: int = OUR_TREES, seed: int = 0) -> TreeEnsemble:
    """Our forest: scikit-learn's extremely randomized trees on ``survey``, as flat arrays.

    Fully grown, sqrt(anchors) candidate anchors per split (scikit-learn's
    defaults); nothing is chosen per survey. The arrays are scored by
    ``trees.score_trees`` in numpy, so a server can use the result without
    scikit-learn.
    """
    from sklearn.ensemble import ExtraTreesClassifier  # type: ignore[import-untyped]

    zones = tuple(sorted(set(survey.zones)))
    index = {zone: i for i, zone in enumerate(zones)}
    labels = np.array([index[zone] for zone in survey.zones], dtype=np.intp)
    forest = ExtraTreesClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
    forest.fit(tree_features(survey.rssi), labels)
    columns = np.asarray(forest.classes_, dtype=np.intp)
    features, thresholds, children, roots, shares = [], [], [], [], []
    nodes = leaves = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        value = np.zeros((int(tree.node_count), len(zones)))
        value[:, columns] = tree.value[:, 0, :]
        feature, threshold, child, share = layout_tree(
            tree.feature.astype(np.intp),
            tree.threshold,
            tree.children_left.astype(np.intp),
            tree.children_right.astype(np.intp),
            value,
        )
        inner = feature >= 0
        features.append(feature)
        thresholds.append(threshold)
        children.append(np.where(inner, child + nodes, child + leaves))
        shares.append(share.astype(np.float32))
        roots.append(nodes)
        nodes += len(feature)
        leaves += len(share)
    return TreeEnsemble(
        zones=zones,
        anchors=survey.anchors,
        feature=np.concatenate(features),
        threshold=np.concatenate(thresholds),
        child=np.concatenate(children),
        roots=np.array(roots, dtype=np.intp),
        leaf_shares=np.concatenate(shares),
    )


def score_ours(
    model: LearnedLikelihood,
    trees: TreeEnsemble,
    rssi: NDArray[np.float64],
    present: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """(N, Z) log-probabilities of our model: the learned tables' posterior times the trees'.

    A product of the two experts with equal weight, renormalised; both were
    fitted on the same survey with the same zones in the same (sorted) order.
    """
    if model.zones != trees.zones or model.anchors != trees.anchors:
        raise ValueError("the tables and the trees were fitted on different surveys")
    logits = score_learned(model, rssi, present) + score_trees(trees, rssi)
    top = logits.max(axis=1, keepdims=True)
    total = top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    result: NDArray[np.float64] = logits - total
    return result


def _radio_map_result(
    train: Survey, test: Survey, plan: StorePlan | None, survey_weight: float
) -> dict[str, Any]:
    radio = _our_map(train, plan, survey_weight)
    aligned, present = align_readings(test, radio.anchors)
    scores = log_likelihood(radio, aligned, present)
    guesses = np.array(radio.zones, dtype=object)[scores.argmax(axis=1)]
    method = "fingerprint+path-loss" if plan is not None else "fingerprint"
    summary = _summary(test.zones, guesses.tolist())
    return {"zone_accuracy": summary["zone_accuracy"], "method": method}


def _peer_models() -> dict[str, Any]:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.neighbors import KNeighborsClassifier  # type: ignore[import-untyped]

    return {
        "knn3": KNeighborsClassifier(n_neighbors=3),
        "random_forest": RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1),
        "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }


def _peers(train: Survey, test: Survey) -> dict[str, dict[str, Any]]:
    """The issue's peers, each trained on ``train`` with "not heard" = -100 dBm."""
    x_train = classifier_features(train.rssi)
    test_aligned, _ = align_readings(test, train.anchors)
    x_test = classifier_features(test_aligned)
    labels = list(train.zones)
    zones = tuple(sorted(set(labels)))
    results: dict[str, dict[str, Any]] = {}
    for name, model in _peer_models().items():
        if name == "knn3" and len(labels) < 3:
            model.set_params(n_neighbors=len(labels))
        model.fit(x_train, labels)
        proba = np.zeros((len(test), len(zones)))
        columns = [zones.index(str(c)) for c in model.classes_]
        proba[:, columns] = model.predict_proba(x_test)
        guesses = np.array(zones, dtype=object)[proba.argmax(axis=1)]
        log_p = np.log(np.maximum(proba, PROBABILITY_FLOOR))
        summary = _summary(test.zones, guesses.tolist())
        results[name] = {
            "zone_accuracy": summary["zone_accuracy"],
            "log_loss": _log_loss(zones, log_p, test.zones),
            "per_zone_accuracy": summary["per_zone_accuracy"],
        }
    return results


def _log_loss(
    zones: tuple[str, ...], log_p: NDArray[np.float64], truth: tuple[str, ...]
) -> float | None:
    """Mean negative log-probability of the true zone (floored); None if no test zone is known."""
    index = {zone: i for i, zone in enumerate(zones)}
    rows = [(n, index[z]) for n, z in enumerate(truth) if z in index]
    if not rows:
        return None
    n, z = np.array(rows).T
    floored = np.maximum(log_p[n, z], np.log(PROBABILITY_FLOOR))
    return round(float(-floored.mean()), 4)


def _our_map(train: Survey, plan: StorePlan | None, survey_weight: float) -> RadioMap:
    if plan is None:
        return fingerprint_map(train)
    model = path_loss_map(plan)
    return combine(model, fingerprint_map(train), survey_weight)


def classifier_features(rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """What an off-the-shelf classifier gets: RSSI (samples × anchors) with
    "not heard" (NaN) as ``KNN_MISSING_DBM``, as FIND3 does."""
    return np.nan_to_num(rssi, nan=KNN_MISSING_DBM)


def _knn_predict(train: Survey, test: Survey, seed: int) -> tuple[list[str], dict[str, Any]]:
    from sklearn.model_selection import (  # type: ignore[import-untyped]
        GridSearchCV,
        StratifiedKFold,
    )
    from sklearn.neighbors import KNeighborsClassifier

    anchors = train.anchors
    x_train = classifier_features(train.rssi)
    test_aligned, _ = align_readings(test, anchors)
    x_test = classifier_features(test_aligned)
    labels = list(train.zones)
    smallest = min(Counter(labels).values())
    folds = min(5, smallest)
    grid = {
        "n_neighbors": [
            k for k in KNN_NEIGHBOURS if k <= len(labels) - len(labels) // max(folds, 2)
        ],
        "weights": ["uniform", "distance"],
    }
    if folds >= 2:
        search = GridSearchCV(
            KNeighborsClassifier(),
            grid,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        search.fit(x_train, labels)
        best = search.best_params_
    else:  # too few samples per zone to cross-validate
        best = {"n_neighbors": min(5, len(labels)), "weights": "uniform"}
    model = KNeighborsClassifier(**best).fit(x_train, labels)
    predicted = [str(z) for z in model.predict(x_test)]
    return predicted, {
        "k": int(best["n_neighbors"]),
        "weights": str(best["weights"]),
        "missing_dbm": KNN_MISSING_DBM,
        "tuned_by": f"{folds}-fold cross-validation on train" if folds >= 2 else "default",
    }


def _summary(truth: tuple[str, ...], predicted: list[str]) -> dict[str, Any]:
    confusion: dict[str, dict[str, int]] = {}
    for true_zone, guess in zip(truth, predicted, strict=True):
        row = confusion.setdefault(true_zone, {})
        row[guess] = row.get(guess, 0) + 1
    right = sum(t == p for t, p in zip(truth, predicted, strict=True))
    per_zone = {
        zone: round(row.get(zone, 0) / sum(row.values()), 4) for zone, row in confusion.items()
    }
    return {
        "zone_accuracy": round(right / len(truth), 4) if truth else 0.0,
        "n_test": len(truth),
        "per_zone_accuracy": per_zone,
        "confusion": {zone: dict(sorted(row.items())) for zone, row in confusion.items()},
    }
