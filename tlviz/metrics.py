"""Separation metrics on full-dimensional features, and prediction metrics.

All are computed on the features themselves, never on a 2D layout: a projection can
make classes look apart (or together) when they are not.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion
from sklearn.metrics import silhouette_score as _sk_silhouette
from sklearn.neighbors import NearestNeighbors

from tlviz.errors import BadInput


def _check(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise BadInput("X must be (n, d) with one label per row")
    return X, y


def silhouette(X, y, max_samples: int = 4000, seed: int = 0) -> float:
    """Mean silhouette (euclidean), on a seeded sample of at most ``max_samples`` rows."""
    X, y = _check(X, y)
    if len(np.unique(y)) < 2 or len(X) < 3:
        return float("nan")
    n = min(len(X), max_samples)
    return float(_sk_silhouette(X, y, sample_size=n if n < len(X) else None, random_state=seed))


def knn_loo_accuracy(X, y, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (majority vote, ties to the nearest)."""
    X, y = _check(X, y)
    if len(X) < 2:
        return float("nan")
    k = min(k, len(X) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X)
    _, idx = nn.kneighbors(X)
    neigh = y[idx[:, 1:]]  # drop self (column 0 is the point itself, distance 0)
    classes, inv = np.unique(y, return_inverse=True)
    codes = np.searchsorted(classes, neigh)
    votes = np.zeros((len(X), len(classes)))
    weights = 1.0 + 1e-6 * np.arange(k, 0, -1)  # nearer neighbours break ties
    np.add.at(votes, (np.repeat(np.arange(len(X)), k), codes.ravel()), np.tile(weights, len(X)))
    return float((votes.argmax(1) == inv).mean())


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


def separation_report(X, y, k: int = 5) -> dict[str, float]:
    """All three separation metrics, as a dict for a table beside a plot."""
    return {"silhouette": silhouette(X, y), f"knn{k}_loo_accuracy": knn_loo_accuracy(X, y, k),
            "scatter_ratio": scatter_ratio(X, y)}


METRIC_HELP = {
    "silhouette": "-1..1: how much closer images are to their own class than to the nearest other",
    "knn5_loo_accuracy": "accuracy of a 5-nearest-neighbour vote, each image left out in turn",
    "scatter_ratio": "spread between class centres / spread within classes (higher = apart)",
}


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    return _sk_confusion(y_true, y_pred, labels=list(range(n_classes)))
