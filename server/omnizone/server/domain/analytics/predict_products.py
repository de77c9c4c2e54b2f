"""The products a shopper is most likely to buy next (issue 18, point 9).

Inputs are plain interactions of known shoppers: purchases, wishlist and cart
additions and product views (the profile events, in store and online), and
the taps and try-ons the analytics attribute to their stays. Each product of
the catalog has a category (the zone it is displayed in).

The model is a conditional logit over the catalog: for a shopper at a time
``t`` each product ``p`` gets features

- per interaction kind, the time-decayed count of the shopper's interactions
  with ``p`` (``log1p`` of a sum of ``0.5 ** (age / half-life)``);
- per kind, the same over ``p``'s category;
- ``p``'s popularity: the log share of all purchases in the 28 days before ``t``;

and ``P(p) = softmax(w . x_p)``. ``w`` is fitted by Newton's method (L2
penalty) on earlier windows of the history only: features up to a cut
``t1``, the label the first product bought in ``[t1, t1 + horizon)``, for a
few cuts that all end before the history does (no purchase the model is
later judged on is seen). The naive baseline ranks every shopper alike, by
the popularity alone. ``ranking_scores`` gives hit rate at k and the mean
reciprocal rank of the first product bought. Pure numpy; no clock, no I/O.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .timeline import DAY_MS

__all__ = [
    "KINDS",
    "Interaction",
    "ProductModel",
    "category_ranking",
    "feature_tensor",
    "fit_product_model",
    "next_purchases",
    "popular_ranking",
    "rank_many",
    "rank_products",
    "ranking_scores",
]

Floats = NDArray[np.float64]

KINDS = ("purchase", "wishlist", "cart", "view", "tap", "try_on")
POPULARITY_DAYS = 28
HALF_LIFE_DAYS = 14.0
_L2 = 1.0
_FEATURES = 2 * len(KINDS) + 1


@dataclass(frozen=True, slots=True)
class Interaction:
    shopper: str
    kind: str  # one of KINDS
    gtin: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ProductModel:
    gtins: tuple[str, ...]
    categories: tuple[str, ...]  # per gtin
    weights: Floats  # (_FEATURES,)
    popularity: Floats  # log share per gtin, as of ``as_of_ms``
    as_of_ms: int
    trained_on: int  # training cases (shopper and window)

    def feature_names(self) -> list[str]:
        return [
            *(f"{k}_product" for k in KINDS),
            *(f"{k}_category" for k in KINDS),
            "popularity",
        ]


def _popularity(events: Sequence[Interaction], gtins: Sequence[str], at_ms: int) -> Floats:
    """Log share of each product among all purchases in the window before ``at_ms``."""
    index = {g: i for i, g in enumerate(gtins)}
    counts = np.ones(len(gtins), dtype=np.float64)  # add-one: no product is impossible
    since = at_ms - POPULARITY_DAYS * DAY_MS
    for e in events:
        if e.kind == "purchase" and since <= e.at_ms < at_ms and e.gtin in index:
            counts[index[e.gtin]] += 1
    return np.asarray(np.log(counts / counts.sum()), dtype=np.float64)


def feature_tensor(
    events: Mapping[str, Sequence[Interaction]],
    shoppers: Sequence[str],
    gtins: Sequence[str],
    categories: Sequence[str],
    popularity: Floats,
    at_ms: int,
) -> Floats:
    """(S, P, F): each shopper's features of each product; only events
    before ``at_ms`` count."""
    index = {g: i for i, g in enumerate(gtins)}
    names = sorted(set(categories))
    cat_of = np.array([names.index(c) for c in categories], dtype=np.int64)
    kind_index = {k: i for i, k in enumerate(KINDS)}
    rows: list[int] = []
    products: list[int] = []
    kinds: list[int] = []
    ages: list[int] = []
    for row, shopper in enumerate(shoppers):
        for e in events.get(shopper, ()):
            if e.at_ms < at_ms and e.gtin in index and e.kind in kind_index:
                rows.append(row)
                products.append(index[e.gtin])
                kinds.append(kind_index[e.kind])
                ages.append(at_ms - e.at_ms)
    r = np.array(rows, dtype=np.int64)
    p = np.array(products, dtype=np.int64)
    k = np.array(kinds, dtype=np.int64)
    weight = 0.5 ** (np.array(ages, dtype=np.float64) / (HALF_LIFE_DAYS * DAY_MS))
    per_product = np.zeros((len(shoppers), len(gtins), len(KINDS)))
    per_category = np.zeros((len(shoppers), len(names), len(KINDS)))
    np.add.at(per_product, (r, p, k), weight)
    np.add.at(per_category, (r, cat_of[p], k), weight)
    pop = np.broadcast_to(popularity[None, :, None], (len(shoppers), len(gtins), 1))
    x = np.concatenate([np.log1p(per_product), np.log1p(per_category[:, cat_of, :]), pop], axis=2)
    return np.asarray(x, dtype=np.float64)


def next_purchases(
    events: Iterable[Interaction], from_ms: int, to_ms: int, gtins: Sequence[str] | None = None
) -> dict[str, str]:
    """Per shopper, the first product bought in ``[from_ms, to_ms)``."""
    known = set(gtins) if gtins is not None else None
    first: dict[str, tuple[int, str]] = {}
    for e in events:
        if e.kind != "purchase" or not from_ms <= e.at_ms < to_ms:
            continue
        if known is not None and e.gtin not in known:
            continue
        if e.shopper not in first or e.at_ms < first[e.shopper][0]:
            first[e.shopper] = (e.at_ms, e.gtin)
    return {s: g for s, (_, g) in first.items()}


def _by_shopper(events: Iterable[Interaction]) -> dict[str, list[Interaction]]:
    found: dict[str, list[Interaction]] = {}
    for e in events:
        found.setdefault(e.shopper, []).append(e)
    return found


def fit_product_model(
    events: Sequence[Interaction],
    gtins: Sequence[str],
    categories: Sequence[str],
    as_of_ms: int,
    *,
    horizon_days: int = 7,
    windows: int = 3,
) -> ProductModel:
    """Fit on events before ``as_of_ms`` only (later ones are ignored)."""
    if len(gtins) != len(categories) or not gtins:
        raise ValueError("one category per product, and at least one product")
    past = [e for e in events if e.at_ms < as_of_ms]
    shoppers = _by_shopper(past)
    first_ms = min((e.at_ms for e in past), default=as_of_ms)
    cases: list[tuple[Floats, int]] = []
    index = {g: i for i, g in enumerate(gtins)}
    for w in range(1, windows + 1):
        cut = as_of_ms - w * horizon_days * DAY_MS
        if cut - first_ms < horizon_days * DAY_MS:
            break  # too little history before this cut to learn from
        labels = next_purchases(past, cut, cut + horizon_days * DAY_MS, gtins)
        popularity = _popularity(past, gtins, cut)
        # Nothing known of a shopper before the cut: nothing to learn from them.
        known = [s for s in labels if any(e.at_ms < cut for e in shoppers.get(s, ()))]
        x = feature_tensor(shoppers, known, gtins, categories, popularity, cut)
        cases += [(x[i], index[labels[s]]) for i, s in enumerate(known)]
    weights = _newton(cases)
    return ProductModel(
        gtins=tuple(gtins),
        categories=tuple(categories),
        weights=weights,
        popularity=_popularity(past, gtins, as_of_ms),
        as_of_ms=as_of_ms,
        trained_on=len(cases),
    )


def _newton(cases: Sequence[tuple[Floats, int]], steps: int = 25) -> Floats:
    """Maximise the penalised conditional-logit likelihood. Without cases the
    model falls back to the popularity alone (the baseline)."""
    w = np.zeros(_FEATURES)
    w[-1] = 1.0
    if not cases:
        return w
    x = np.stack([c[0] for c in cases])  # (N, P, F)
    chosen = x[np.arange(len(cases)), np.array([c[1] for c in cases])]  # (N, F)
    for _ in range(steps):
        scores = x @ w  # (N, P)
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=1, keepdims=True)
        mean = np.einsum("np,npf->nf", p, x)
        grad = (chosen - mean).sum(axis=0) - _L2 * w
        second = np.einsum("np,npf,npg->fg", p, x, x) - mean.T @ mean
        hess = -second - _L2 * np.eye(_FEATURES)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if float(np.abs(step).max()) < 1e-6:
            break
    return np.asarray(w, dtype=np.float64)


def rank_products(
    model: ProductModel, events: Iterable[Interaction], at_ms: int | None = None
) -> list[tuple[str, float]]:
    """One shopper's products, most likely first, with their probability."""
    return rank_many(model, {"": list(events)}, [""], at_ms)[""]


def rank_many(
    model: ProductModel,
    events: Mapping[str, Sequence[Interaction]],
    shoppers: Sequence[str],
    at_ms: int | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """Each shopper's products, most likely first, with their probability."""
    at = model.as_of_ms if at_ms is None else at_ms
    x = feature_tensor(events, shoppers, model.gtins, model.categories, model.popularity, at)
    scores = x @ model.weights  # (S, P)
    scores -= scores.max(axis=1, keepdims=True) if len(shoppers) else 0.0
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    order = np.argsort(-p, axis=1, kind="stable")  # ties: catalog order
    out: dict[str, list[tuple[str, float]]] = {}
    for row, shopper in enumerate(shoppers):
        out[shopper] = [(model.gtins[i], round(float(p[row, i]), 4)) for i in order[row]]
    return out


def category_ranking(
    ranking: Sequence[tuple[str, float]], category_of: Mapping[str, str]
) -> list[tuple[str, float]]:
    """The categories, most likely first: their products' probabilities summed."""
    total: dict[str, float] = {}
    for gtin, p in ranking:
        category = category_of.get(gtin)
        if category is not None:
            total[category] = total.get(category, 0.0) + p
    return sorted(((c, round(p, 4)) for c, p in total.items()), key=lambda cp: (-cp[1], cp[0]))


def popular_ranking(
    events: Sequence[Interaction], gtins: Sequence[str], as_of_ms: int
) -> list[str]:
    """The naive baseline: the catalog by purchases in the window before ``as_of_ms``."""
    popularity = _popularity(events, gtins, as_of_ms)
    order = np.lexsort((np.arange(len(gtins)), -popularity))
    return [gtins[i] for i in order]


def ranking_scores(
    rankings: Mapping[str, Sequence[str]], truth: Mapping[str, str], k: int = 3
) -> dict[str, float | int | None]:
    """Hit rate at ``k`` and mean reciprocal rank of each shopper's first
    bought product, over the shoppers in ``truth`` that have a ranking."""
    hits = 0
    reciprocal = 0.0
    n = 0
    for shopper, gtin in truth.items():
        ranked = rankings.get(shopper)
        if ranked is None:
            continue
        n += 1
        if gtin in ranked:
            rank = list(ranked).index(gtin) + 1
            reciprocal += 1.0 / rank
            hits += rank <= k
    return {
        "shoppers": n,
        f"hit_rate_at_{k}": round(hits / n, 4) if n else None,
        "mrr": round(reciprocal / n, 4) if n else None,
    }
