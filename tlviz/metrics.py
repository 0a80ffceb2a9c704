"""Separation metrics on full-dimensional features, and prediction metrics.

All are computed on the features themselves, never on a 2D layout: a projection can
make classes look apart (or together) when they are not.
"""

from __future__ import annotations

import numpy as np

from tlviz.errors import BadInput
from tlviz.neighbours import (
    INDEX_ABOVE,
    distance_blocks,
    drop_self,
    faiss_available,
    index_for,
    index_search,
    knn,
    silhouette_samples,
    vote,
)

LOO_QUERIES = 10_000  # large indexed sets: kNN accuracy estimated on this many left-out rows


def _check(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise BadInput("X must be (n, d) with one label per row")
    return X, y


def silhouette(X, y, max_samples: int = 4000, seed: int = 0, metric: str = "euclidean") -> float:
    """Mean silhouette, on a seeded sample of at most ``max_samples`` rows (the same sample
    as scikit-learn's ``silhouette_score(..., sample_size, random_state=seed)``)."""
    X, y = _check(X, y)
    if len(np.unique(y)) < 2 or len(X) < 3:
        return float("nan")
    if len(X) > max_samples:
        pick = np.random.RandomState(seed).permutation(len(X))[:max_samples]
        X, y = X[pick], y[pick]
        if len(np.unique(y)) < 2:
            return float("nan")
    return float(silhouette_samples(X, y, metric).mean())


def knn_loo_accuracy(X, y, k: int = 5, metric: str = "euclidean", index_key: str | None = None,
                     seed: int = 0) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (majority vote, ties to the nearest).

    ``index_key`` (large sets, FAISS installed): neighbours from the cached index of ``X``,
    each of a seeded sample of :data:`LOO_QUERIES` rows left out in turn (an estimate)."""
    X, y = _check(X, y)
    if len(X) < 2:
        return float("nan")
    k = min(k, len(X) - 1)
    classes, inv = np.unique(y, return_inverse=True)
    if index_key is not None and len(X) >= INDEX_ABOVE and faiss_available():
        rows = np.arange(len(X))
        if len(X) > LOO_QUERIES:
            rows = np.sort(np.random.default_rng(seed).choice(len(X), LOO_QUERIES, replace=False))
        d, i = index_search(index_for(X, metric, index_key), X[rows], k + 1, metric)
        _, idx = drop_self(d, i, rows, k)
        return float((vote(inv[idx], len(classes)).argmax(1) == inv[rows]).mean())
    _, idx = knn(X, k, metric=metric)
    votes = vote(inv[idx], len(classes))  # each point's k nearest others
    return float((votes.argmax(1) == inv).mean())


def knn_loo_size(n: int, indexed: bool = True) -> int:
    """How many left-out rows :func:`knn_loo_accuracy` averages over for ``n`` rows (its
    interval's n): all of them, or :data:`LOO_QUERIES` for a large indexed set."""
    big = indexed and n >= INDEX_ABOVE and faiss_available()
    return min(n, LOO_QUERIES) if big else n


def scatter_ratio(X, y) -> float:
    """trace(between-class scatter) / trace(within-class scatter); larger = more separated."""
    X, y = _check(X, y)
    mu = X.mean(0)
    between = within = 0.0
    for c in np.unique(y):
        Xc = X[y == c]
        mc = Xc.mean(0)
        between += len(Xc) * float(((mc - mu) ** 2).sum())
        within += float(((Xc - mc) ** 2).sum())
    return between / within if within > 0 else float("inf")


def separation_report(X, y, k: int = 5, metric: str = "cosine",
                      index_key: str | None = None) -> dict[str, float]:
    """All three separation metrics, as a dict for a table beside a plot.

    Silhouette and the kNN score use one distance, ``metric`` (cosine by default: the
    geometry pretrained features are compared in, and the heads' default). They answer
    different questions: the silhouette compares an image's *average* distance to its own
    class with the nearest other class's, so a class spread over several looks (ants on
    flowers, ants on soil) scores low even when every image's few nearest neighbours share
    its label, which is what the kNN score measures. ``index_key``: see
    :func:`knn_loo_accuracy` (large sets).
    """
    return {"silhouette": silhouette(X, y, metric=metric),
            f"knn{k}_loo_accuracy": knn_loo_accuracy(X, y, k, metric=metric, index_key=index_key),
            "scatter_ratio": scatter_ratio(X, y)}


def projection_ranks(X, Y, k: int = 10, metric: str = "cosine",
                     rows: np.ndarray | None = None) -> np.ndarray:
    """(len(rows), k) rank, in feature space, of each point's ``k`` nearest neighbours on
    the map (``rows``: the points asked about, default all).

    ``Y`` is the projection (euclidean), ``X`` the features (``metric``: cosine on
    L2-normalised rows, as the other metrics). Rank 1 is the nearest other point in
    feature space; ties go to the lower index (as :func:`tlviz.neighbours.knn`). One pass
    over the asked rows' feature distances in row blocks: memory stays bounded.
    """
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise BadInput("features and projection must have one row per point")
    n = len(X)
    if n < 3:
        raise BadInput("at least 3 points are needed")
    k = min(int(k), n - 1)
    if rows is None:
        rows = np.arange(n)
        _, nb_map = knn(Y, k, metric="euclidean")
    else:
        rows = np.asarray(rows, dtype=np.int64)
        _, cand = knn(Y[rows], k + 1, ref=Y, metric="euclidean")  # may hold the row itself
        nb_map = np.array([[j for j in c if j != r][:k] for r, c in zip(rows, cand)])
    ranks = np.empty((len(rows), k), np.int64)
    cols = np.arange(n)
    for s, D in distance_blocks(X[rows], X, metric):
        b = len(D)
        D[np.arange(b), rows[s:s + b]] = np.inf  # a point is not its own neighbour
        nb = nb_map[s:s + b]
        dj = np.take_along_axis(D, nb, 1)
        for c in range(k):
            d = dj[:, c:c + 1]
            ranks[s:s + b, c] = 1 + (D < d).sum(1) + ((D == d) & (cols[None, :] < nb[:, c:c + 1])).sum(1)
    return ranks


def neighbours_kept(X, Y, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """Per point: how many of its ``k`` nearest neighbours in feature space are also among
    its ``k`` nearest on the map (0..k). Low values: the picture moved its neighbourhood."""
    return (projection_ranks(X, Y, k, metric) <= min(k, len(X) - 1)).sum(1)


def trustworthiness(X, Y, k: int = 10, metric: str = "cosine",
                    ranks: np.ndarray | None = None) -> float:
    """Trustworthiness of a projection (Venna & Kaski; scikit-learn's formula): 1 when
    every point's ``k`` map neighbours are also feature-space neighbours, lower as map
    neighbours come from farther away in feature space. ``k`` must be below n / 2.
    ``ranks``: :func:`projection_ranks` of all points, or of a sample of them (then the
    result is the sample's estimate of the same number)."""
    n = len(X)
    if not 1 <= k < n / 2:
        raise BadInput(f"trustworthiness needs k < n/2 (k={k}, n={n})")
    r = projection_ranks(X, Y, k, metric) if ranks is None else np.asarray(ranks)
    excess = r - k
    t = float(excess[excess > 0].sum())
    return 1.0 - t * (2.0 / (len(r) * k * (2.0 * n - 3.0 * k - 1.0)))


def projection_quality(X, Y, k: int = 10, metric: str = "cosine",
                       sample: int | None = None, seed: int = 0) -> dict:
    """``{"trustworthiness": float (nan when n <= 2k), "kept": (n,) ints or None, "k": k,
    "sample": rows asked or None}`` from one pass over the feature distances.

    ``sample``: above this many points, trustworthiness is estimated on a seeded sample of
    that many points (each against all points) and ``kept`` is None: a 20,000-point map
    costs 1/10 of the full pass (20,000 x 20,000 distances, ~40 s on 2 cores)."""
    n = len(X)
    k = min(int(k), n - 1)
    rows = None
    if sample is not None and n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    ranks = projection_ranks(X, Y, k, metric, rows)
    trust = trustworthiness(X, Y, k, metric, ranks) if k < n / 2 else float("nan")
    return {"trustworthiness": trust, "kept": None if rows is not None else (ranks <= k).sum(1),
            "k": k, "sample": rows}


METRIC_HELP = {
    "silhouette": "-1..1 (cosine distance): how much closer images are on average to their own "
                  "class than to the nearest other. Low while kNN is high means classes with "
                  "several looks: neighbours agree, averages do not",
    "knn5_loo_accuracy": "accuracy of a 5-nearest-neighbour vote (cosine), each image left out "
                         "in turn",
    "scatter_ratio": "spread between class centres / spread within classes (higher = apart)",
}
# of the 2D picture, not of the features (:func:`projection_quality`)
PROJECTION_HELP = {
    "trustworthiness": "0..1: how far the map's neighbours can be trusted. 1 = every image's 10 "
                       "nearest on the map are among its nearest in feature space (cosine); "
                       "lower = the picture puts strangers side by side",
}


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    return sk_confusion(y_true, y_pred, labels=list(range(n_classes)))


def accuracy_interval(acc: float | None, n: int | None) -> tuple[float, float]:
    """:func:`wilson_interval` of an accuracy (a fraction, e.g. a mean over seeds) on ``n``
    images; (nan, nan) when either is missing."""
    if acc is None or n is None or acc != acc or n != n or not n:
        return float("nan"), float("nan")
    return wilson_interval(round(float(acc) * int(n)), int(n))


def accuracy_text(acc: float | None, n: int | None, std: float | None = None) -> str:
    """An accuracy with its 95% Wilson interval on ``n`` images, for tables and metrics;
    ``std``: the spread over seeds, shown as ± (percentage points).

    >>> accuracy_text(0.912, 250), accuracy_text(0.9, 10, std=0.02), accuracy_text(None, 5)
    ('91.2% (87.0–94.1)', '90.0% ± 2.0 (59.6–98.2)', '—')
    """
    if acc is None or acc != acc:
        return "—"
    spread = "" if std is None or std != std else f" ± {100 * std:.1f}"
    lo, hi = accuracy_interval(acc, n)
    ci = "" if lo != lo else f" ({100 * lo:.1f}–{100 * hi:.1f})"
    return f"{100 * acc:.1f}%{spread}{ci}"


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy of ``correct`` out of ``n`` (nan, nan for n = 0).

    >>> lo, hi = wilson_interval(146, 153)  # 95.4% on 153 validation images
    >>> round(lo, 3), round(hi, 3)
    (0.909, 0.978)
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))

