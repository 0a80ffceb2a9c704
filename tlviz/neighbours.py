"""Nearest neighbours: one module for every k-NN question tlviz asks.

Exact search by BLAS in row blocks (float64 distances, ties broken by index), for the
metrics, the kNN head, Explore's neighbours and the projection's graph; numpy only, so the
numbers beside a plot need no scikit-learn import. Tested against scikit-learn's
``NearestNeighbors`` and ``silhouette_score`` as oracles.

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [3.0]])
>>> knn(X, 1)[1].tolist()
[[1], [0], [1]]
"""

from __future__ import annotations

import numpy as np

from tlviz.errors import BadInput

METRICS = ("cosine", "euclidean")  # cosine first: the geometry pretrained features are made for
_BLOCK_ELEMENTS = 1 << 24  # distances computed per block (128 MB of float64)


def _prepare(X: np.ndarray, metric: str) -> np.ndarray:
    if metric not in METRICS:
        raise BadInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise BadInput("features must be a 2-D array (n, d)")
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.where(norms > 0, norms, 1.0)
    return X


def pairwise(A: np.ndarray, B: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """(len(A), len(B)) distances: cosine (1 - cosine similarity) or euclidean."""
    A = _prepare(np.atleast_2d(A), metric)
    B = _prepare(np.atleast_2d(B), metric)
    return _distances(A, B, np.einsum("ij,ij->i", B, B), metric)


def _distances(q: np.ndarray, R: np.ndarray, sq_r: np.ndarray, metric: str) -> np.ndarray:
    g = q @ R.T
    if metric == "cosine":
        return np.clip(1.0 - g, 0.0, 2.0)
    D = np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * g + sq_r[None, :]
    return np.sqrt(np.maximum(D, 0.0, out=D), out=D)


def distance_blocks(X: np.ndarray, ref: np.ndarray | None = None, metric: str = "euclidean"):
    """Yield (start, D) with D the (b, n_ref) distances of rows ``start:start+b`` of ``X`` to
    ``ref`` (default ``X``): euclidean, or cosine distance 1 - cos."""
    Xp = _prepare(X, metric)
    Rp = Xp if ref is None else _prepare(ref, metric)
    sq_r = np.einsum("ij,ij->i", Rp, Rp)
    block = max(1, _BLOCK_ELEMENTS // max(len(Rp), 1))
    for s in range(0, len(Xp), block):
        q = Xp[s:s + block]
        D = _distances(q, Rp, sq_r, metric)
        if ref is None:  # exactly 0 to itself
            D[np.arange(len(q)), np.arange(s, s + len(q))] = 0.0
        yield s, D


def knn(X: np.ndarray, k: int, *, ref: np.ndarray | None = None, metric: str = "euclidean",
        exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of the ``k`` nearest rows of ``ref`` (default: ``X`` itself) for
    each row of ``X``, nearest first; ties go to the lower index. ``exclude_self`` (when
    ``ref`` is ``X``): a row is not its own neighbour."""
    self_search = ref is None
    n_ref = len(X) if self_search else len(ref)
    k = min(int(k), n_ref - (1 if self_search and exclude_self else 0))
    if k < 1:
        raise BadInput("not enough points for a neighbour search")
    dist = np.empty((len(X), k))
    idx = np.empty((len(X), k), np.int64)
    for s, D in distance_blocks(X, ref, metric):
        if self_search and exclude_self:
            D[np.arange(len(D)), np.arange(s, s + len(D))] = np.inf
        part = np.argpartition(D, k - 1, axis=1)[:, :k] if k < n_ref else \
            np.broadcast_to(np.arange(n_ref), (len(D), n_ref))
        pd = np.take_along_axis(D, part, 1)
        order = np.lexsort((part, pd), axis=1)  # by distance, then index
        idx[s:s + len(D)] = np.take_along_axis(part, order, 1)
        dist[s:s + len(D)] = np.take_along_axis(pd, order, 1)
    return dist, idx


def vote(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) votes of each row's neighbours (nearest first, integer labels); a tie
    goes to the class of the nearer neighbour (each vote weighs a hair more than the next)."""
    n, k = neighbour_labels.shape
    votes = np.zeros((n, n_classes))
    weights = 1.0 + 1e-6 * np.arange(k, 0, -1)
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbour_labels.ravel()), np.tile(weights, n))
    return votes


def silhouette_samples(X: np.ndarray, y: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Per-point silhouette (b - a) / max(a, b), 0 for a point alone in its class."""
    y = np.asarray(y)
    classes, inv = np.unique(y, return_inverse=True)
    onehot = np.zeros((len(y), len(classes)))
    onehot[np.arange(len(y)), inv] = 1.0
    counts = onehot.sum(0)
    out = np.zeros(len(y))
    for s, D in distance_blocks(X, None, metric):
        sums = D @ onehot  # (b, C): summed distance to each class
        rows = np.arange(s, s + len(D))
        own = inv[rows]
        n_own = counts[own] - 1
        a = np.where(n_own > 0, sums[np.arange(len(D)), own] / np.maximum(n_own, 1), 0.0)
        mean_other = sums / counts[None, :]
        mean_other[np.arange(len(D)), own] = np.inf
        b = mean_other.min(1)
        denom = np.maximum(a, b)
        out[s:s + len(D)] = np.where((n_own > 0) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1), 0.0)
    return out


__all__ = ["METRICS", "distance_blocks", "knn", "pairwise", "silhouette_samples", "vote"]
