"""``omnizone eval fingerprint``: our zone classifier against FIND3-style kNN on surveys.

Both are trained on one survey and classify each sample of another on its
own (no filter, no time): this measures the radio map and the likelihood
alone. Ours is ``fingerprint_map(train)`` (blended with the floor plan's
path-loss map when a store plan is given) and the zone with the highest
``log_likelihood``. The baseline is scikit-learn's ``KNeighborsClassifier``
on the raw RSSI vectors with "not heard" replaced by -100 dBm, as FIND3 does;
``n_neighbors`` (1-25) and ``weights`` (uniform/distance) are chosen by 5-fold
cross-validation on the training survey, so the baseline gets its best shot.
"""

from collections import Counter
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
from omnizone.store import StorePlan, load_store

KNN_MISSING_DBM = -100.0
KNN_NEIGHBOURS = (1, 3, 5, 7, 9, 15, 25)


def evaluate_fingerprint(
    train: Survey,
    test: Survey,
    *,
    plan: StorePlan | None = None,
    survey_weight: float = 0.7,
    seed: int = 0,
) -> dict[str, Any]:
    """Zone accuracy and confusion on ``test`` for ours and for the kNN baseline."""
    radio = _our_map(train, plan, survey_weight)
    aligned, present = _align(test, radio.anchors)
    scores = log_likelihood(radio, aligned, present)
    ours = np.array(radio.zones, dtype=object)[scores.argmax(axis=1)]
    knn, chosen = _knn_predict(train, test, seed)
    method = "fingerprint+path-loss" if plan is not None else "fingerprint"
    return {
        **_summary(test.zones, ours.tolist()),
        "method": method,
        "n_train": len(train),
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


def _our_map(train: Survey, plan: StorePlan | None, survey_weight: float) -> RadioMap:
    if plan is None:
        return fingerprint_map(train)
    model = path_loss_map(plan)
    return combine(model, fingerprint_map(train), survey_weight)


def _align(
    survey: Survey, anchors: tuple[str, ...]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The survey's readings in ``anchors`` order; anchors it lacks are "not reported"."""
    column = {anchor: i for i, anchor in enumerate(survey.anchors)}
    matrix = np.full((len(survey), len(anchors)), np.nan)
    present = np.zeros(len(anchors), dtype=bool)
    for j, anchor in enumerate(anchors):
        if anchor in column:
            matrix[:, j] = survey.rssi[:, column[anchor]]
            present[j] = True
    return matrix, present


def classifier_features(rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """What an off-the-shelf classifier gets: RSSI (samples × anchors) with
    "not heard" (NaN) as ``KNN_MISSING_DBM``, as FIND3 does."""
    return np.nan_to_num(rssi, nan=KNN_MISSING_DBM)


def _knn_predict(train: Survey, test: Survey, seed: int) -> tuple[list[str], dict[str, Any]]:
    from sklearn.model_selection import (  # type: ignore[import-untyped]
        GridSearchCV,
        StratifiedKFold,
    )
    from sklearn.neighbors import KNeighborsClassifier  # type: ignore[import-untyped]

    anchors = train.anchors
    x_train = classifier_features(train.rssi)
    test_aligned, _ = _align(test, anchors)
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
