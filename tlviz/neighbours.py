"""Nearest neighbours: one module for every k-NN question tlviz asks.

Exact search by BLAS in row blocks (float64 distances, ties broken by index), for the
metrics, the kNN head, Explore's neighbours and the projection's graph; numpy only, so the
numbers beside a plot need no scikit-learn import. Tested against scikit-learn's
``NearestNeighbors`` and ``silhouette_score`` as oracles.

Large reference sets (:data:`INDEX_ABOVE` rows and more, when the caller names them with
an ``index_key`` and FAISS is installed) are searched through a FAISS index instead,
built once per embedding and cached on disk: exact (``IndexFlatIP`` on L2-normalised rows
for cosine, ``IndexFlatL2`` for euclidean) up to :data:`IVF_ABOVE` rows, an inverted-file
index (IVF, approximate; recall@10 tested >= 0.95) above.

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [3.0]])
>>> knn(X, 1)[1].tolist()
[[1], [0], [1]]
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np

from tlviz import config
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
        exclude_self: bool = True, index_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of the ``k`` nearest rows of ``ref`` (default: ``X`` itself) for
    each row of ``X``, nearest first; ties go to the lower index. ``exclude_self`` (when
    ``ref`` is ``X``): a row is not its own neighbour.

    ``index_key`` names the reference rows (e.g. an embedding's cache key and subset): with
    it, a reference of :data:`INDEX_ABOVE` rows or more is searched through its cached FAISS
    index (:func:`index_for`) when FAISS is installed."""
    self_search = ref is None
    n_ref = len(X) if self_search else len(ref)
    k = min(int(k), n_ref - (1 if self_search and exclude_self else 0))
    if k < 1:
        raise BadInput("not enough points for a neighbour search")
    if index_key is not None and n_ref >= INDEX_ABOVE and faiss_available():
        index = index_for(X if self_search else ref, metric, index_key)
        if not (self_search and exclude_self):
            return index_search(index, X, k, metric)
        d, i = index_search(index, X, k + 1, metric)
        return drop_self(d, i, np.arange(len(X)), k)
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


# ----------------------------------------------------------------------------- FAISS indexes

INDEX_ABOVE = 20_000  # reference rows from which a keyed search goes through a FAISS index
IVF_ABOVE = 100_000  # exact flat index below, inverted file (approximate) from here on
NPROBE = 32  # IVF lists visited per query (of sqrt(n)): recall@10 >= 0.95 on clustered data
_MEMO: dict[tuple, object] = {}
_MEMO_LOCK = threading.Lock()


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _prepare32(X: np.ndarray, metric: str) -> np.ndarray:
    if metric not in METRICS:
        raise BadInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    X = np.array(X, dtype=np.float32, order="C", copy=True)
    if X.ndim != 2:
        raise BadInput("features must be a 2-D array (n, d)")
    if metric == "cosine":
        import faiss

        faiss.normalize_L2(X)
    return X


def build_index(X: np.ndarray, metric: str = "cosine", *, ivf: bool | None = None,
                nlist: int | None = None, nprobe: int = NPROBE, seed: int = 0):
    """A FAISS index of the rows of ``X``: exact flat below :data:`IVF_ABOVE` rows (or
    ``ivf=False``), IVF-flat with ``nlist`` lists (default sqrt(n)), trained on a
    seeded sample, above (or ``ivf=True``)."""
    import faiss

    Xp = _prepare32(X, metric)
    n, d = Xp.shape
    inner = metric == "cosine"
    ivf = n >= IVF_ABOVE if ivf is None else ivf
    if not ivf:
        index = faiss.IndexFlatIP(d) if inner else faiss.IndexFlatL2(d)
    else:
        nlist = nlist or max(1, min(n // 39, int(math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(d) if inner else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist,
                                   faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2)
        train = Xp
        if n > 64 * nlist:  # k-means on a seeded sample (64 rows per list, FAISS's advice)
            train = Xp[np.random.default_rng(seed).choice(n, 64 * nlist, replace=False)]
        index.train(train)
        index.nprobe = min(nprobe, nlist)
    index.add(Xp)
    return index


def index_search(index, Q: np.ndarray, k: int, metric: str = "cosine"):
    """(distances, indices) of ``k`` neighbours of each row of ``Q`` from a FAISS index of
    :func:`build_index`, in :func:`knn`'s units (cosine distance 1 - cos, or euclidean)."""
    D, idx = index.search(_prepare32(np.atleast_2d(Q), metric), int(k))
    D = D.astype(np.float64)
    D = np.clip(1.0 - D, 0.0, 2.0) if metric == "cosine" else np.sqrt(np.maximum(D, 0.0))
    return D, idx.astype(np.int64)


def drop_self(d: np.ndarray, i: np.ndarray, rows: np.ndarray, k: int):
    """k of k+1 results per row without the row itself (or without the farthest)."""
    own = i == rows[:, None]
    keep = ~own
    keep[~own.any(1), -1] = False
    return d[keep].reshape(len(d), k), i[keep].reshape(len(i), k)


def index_for(X: np.ndarray, metric: str, key: str, **build):
    """The FAISS index of ``X`` named ``key`` (with the metric and kind), built once and kept
    in memory and under ``$TLVIZ_HOME/cache/indexes``; a damaged or stale file is rebuilt."""
    import faiss

    kind = "ivf" if build.get("ivf", len(X) >= IVF_ABOVE) else "flat"
    name = f"{key}-{metric}-{kind}-{len(X)}"
    with _MEMO_LOCK:
        index = _MEMO.get(name)
    if index is not None:
        return index
    path = config.cache_dir("indexes") / f"{name}.faiss"
    with config.file_lock(path.with_suffix(".lock")):
        if path.exists():
            with contextlib.suppress(RuntimeError, OSError):
                index = faiss.read_index(str(path))
                if index.ntotal != len(X) or index.d != X.shape[1]:
                    index = None
        if index is None:
            index = build_index(X, metric, **build)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            faiss.write_index(index, str(tmp))
            os.replace(tmp, path)
    if kind == "ivf":
        index.nprobe = min(build.get("nprobe", NPROBE), index.nlist)
    with _MEMO_LOCK:
        if len(_MEMO) >= 4:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[name] = index
    return index


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row's exact neighbours that the approximate search found."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(approx, exact)]))


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


__all__ = ["INDEX_ABOVE", "IVF_ABOVE", "METRICS", "build_index", "distance_blocks", "drop_self",
           "faiss_available", "index_for", "index_search", "knn", "pairwise", "recall_at",
           "silhouette_samples", "vote"]
