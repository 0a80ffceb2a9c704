"""A deterministic, parallel UMAP for a few thousand to ~50k points (what a class looks at).

umap-learn, when seeded, runs single-threaded and compiles its numba kernels in every
new process. This is the same algorithm (fuzzy simplicial set of the k nearest neighbours,
spectral initialisation, negative-sampling SGD with umap-learn's curve parameters) with:

- exact k nearest neighbours by BLAS on the (PCA-reduced) data;
- an SGD layout that is parallel *and* deterministic: within an epoch every point moves
  against a snapshot of the others (Jacobi-style), and its random negative samples come
  from a counter-based generator keyed by (seed, epoch, point), so the picture is the same
  for a seed whatever the number of threads;
- numba kernels cached on disk (``cache=True``) in a per-machine folder, so the compile
  cost is paid once per machine, not per app start.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 10)).astype("float32")
>>> FastUMAP(seed=0).fit_transform(X).shape
(200, 2)
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp


def numba_cache_dir() -> Path:
    """Per-machine folder for compiled kernels: ``$NUMBA_CACHE_DIR``, else
    ``~/.cache/tlviz/numba`` (per machine, not per TLVIZ_HOME: compiled code holds no data,
    and a new home must not pay the compile again)."""
    raw = os.environ.get("NUMBA_CACHE_DIR") or Path.home() / ".cache" / "tlviz" / "numba"
    p = Path(raw).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


# numba reads its cache folder when a cached kernel is defined (below), so setting its config
# here is enough; the process environment is left alone.
if not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = str(numba_cache_dir())

_FLAGS = {"nogil": True, "fastmath": True, "cache": True}


@numba.njit(parallel=True, **_FLAGS)
def _topk_rows(d, k, out_idx, out_dist, offset):
    """Indices and values of the k smallest entries of each row of ``d`` (sorted, stable)."""
    for r in numba.prange(d.shape[0]):
        row = d[r]
        bi = np.empty(k, np.int64)
        bv = np.full(k, np.inf, np.float32)
        for j in range(row.shape[0]):
            v = row[j]
            if v < bv[k - 1]:
                p = k - 1
                while p > 0 and bv[p - 1] > v:
                    bv[p] = bv[p - 1]
                    bi[p] = bi[p - 1]
                    p -= 1
                bv[p] = v
                bi[p] = j
        for j in range(k):
            out_idx[offset + r, j] = bi[j]
            out_dist[offset + r, j] = bv[j]


@numba.njit(inline="always", **{k: v for k, v in _FLAGS.items() if k != "cache"})
def _rand(state):
    """splitmix64 step: (new state, 31-bit random int)."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = z ^ (z >> np.uint64(31))
    return state, np.int64(z >> np.uint64(33))


@numba.njit(parallel=True, **_FLAGS)
def _layout(head, tail, fixed_tail, indptr, indices, eps, n_epochs, a, b, gamma, alpha0,
            neg_rate, seed):
    """UMAP's SGD, one point per parallel task; ``tail`` is ``head``'s snapshot when not fixed.

    umap-learn applies each edge of the symmetric graph to both of its ends (``move_other``),
    so every pair is pulled twice per sampling, once from each side. Here a point moves only
    itself, once per edge of its row: when the layout is being fitted (``tail`` not fixed),
    its attractive step counts twice, for the reverse edge's pull on it. Negative samples move
    the point alone, as in umap-learn. New points (``transform``) move once, as there.
    """
    n, dim = head.shape
    pull = np.float32(1.0) if fixed_tail else np.float32(2.0)
    n_tail = tail.shape[0]
    n_edges = eps.shape[0]
    next_s = eps.copy()
    eps_neg = eps / neg_rate
    next_neg = eps_neg.copy()
    clip = np.float32(4.0)
    zero, one, two, tiny = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.001)
    for epoch in range(n_epochs):
        alpha = np.float32(alpha0 * (1.0 - epoch / n_epochs))
        if not fixed_tail:
            tail[:] = head
        for i in numba.prange(n):
            state = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                     + np.uint64(epoch) * np.uint64(0xD1B54A32D192ED03)
                     + np.uint64(i) * np.uint64(0x8CB92BA72F3D8DD7))
            for e in range(indptr[i], indptr[i + 1]):
                if next_s[e] > epoch:
                    continue
                j = indices[e]
                d2 = zero
                for c in range(dim):
                    diff = head[i, c] - tail[j, c]
                    d2 += diff * diff
                if d2 > zero:
                    pb = d2**b
                    coef = -two * a * b * pb / (d2 * (a * pb + one))
                    for c in range(dim):
                        g = coef * (head[i, c] - tail[j, c])
                        g = min(max(g, -clip), clip)
                        head[i, c] += pull * g * alpha
                next_s[e] += eps[e]
                n_neg = int((epoch - next_neg[e]) / eps_neg[e])
                for _ in range(n_neg):
                    state, r = _rand(state)
                    k = r % n_tail
                    if not fixed_tail and k == i:
                        continue
                    d2 = zero
                    for c in range(dim):
                        diff = head[i, c] - tail[k, c]
                        d2 += diff * diff
                    if d2 <= zero:
                        continue
                    coef = two * gamma * b / ((tiny + d2) * (a * d2**b + one))
                    for c in range(dim):
                        g = coef * (head[i, c] - tail[k, c])
                        g = min(max(g, -clip), clip)
                        head[i, c] += g * alpha
                next_neg[e] += n_neg * eps_neg[e]
    return n_edges


def knn(Z: np.ndarray, k: int, ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (euclidean) of the rows of ``Z`` among ``ref`` (default Z).

    Distances by BLAS in row blocks, selection in parallel numba. Returns (indices, dists).
    """
    self_knn = ref is None
    ref = Z if ref is None else ref
    Z = np.ascontiguousarray(Z, np.float32)
    ref = np.ascontiguousarray(ref, np.float32)
    k = min(k, len(ref))
    sq_ref = np.einsum("ij,ij->i", ref, ref)
    idx = np.empty((len(Z), k), np.int64)
    dist = np.empty((len(Z), k), np.float32)
    block = max(64, int(3e7 // max(len(ref), 1)))
    for s in range(0, len(Z), block):
        q = Z[s:s + block]
        d = q @ ref.T
        d *= -2.0
        d += sq_ref[None, :]
        d += np.einsum("ij,ij->i", q, q)[:, None]
        np.maximum(d, 0.0, out=d)
        if self_knn:  # exactly 0 to itself (float cancellation leaves ~1e-6)
            d[np.arange(len(q)), np.arange(s, s + len(q))] = 0.0
        _topk_rows(d, k, idx, dist, s)
    return idx, np.sqrt(dist)


def fuzzy_graph(idx: np.ndarray, dist: np.ndarray, n_ref: int, fit: bool = True) -> sp.csr_matrix:
    """UMAP's fuzzy simplicial set from kNN (``smooth_knn_dist`` + fuzzy union), in numpy.

    ``fit``: the kNN of the data among itself (self at distance 0, symmetrised); otherwise
    new rows against fitted ones (local connectivity 0, not symmetrised), as in transform.
    """
    n, k = dist.shape
    d = dist.astype(np.float64)
    # rho: distance to the nearest neighbour at a positive distance (local_connectivity = 1)
    pos = d > 0
    first = np.where(pos.any(1), pos.argmax(1), 0)
    rho = np.where(pos.any(1), d[np.arange(n), first], 0.0) if fit else np.zeros(n)
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    dd = np.maximum(d[:, 1:] - rho[:, None], 0.0)
    for _ in range(64):
        psum = np.exp(-dd / mid[:, None]).sum(1)
        if np.all(np.abs(psum - target) < 1e-5):
            break
        big = psum > target
        hi = np.where(big, mid, hi)
        lo = np.where(big, lo, mid)
        mid = np.where(big, (lo + hi) / 2, np.where(np.isinf(hi), mid * 2, (lo + hi) / 2))
    mean_all = d.mean()
    floor = 1e-3 * np.where(rho > 0, d.mean(1), mean_all)
    sigma = np.maximum(np.maximum(mid, floor), 1e-12)
    vals = np.exp(-np.maximum(d - rho[:, None], 0.0) / sigma[:, None])
    if fit:
        vals[idx == np.arange(n)[:, None]] = 0.0
    rows = np.repeat(np.arange(n), k)
    P = sp.csr_matrix((vals.ravel().astype(np.float32), (rows, idx.ravel())), shape=(n, n_ref))
    P.eliminate_zeros()
    if fit:
        Pt = P.T.tocsr()
        P = (P + Pt - P.multiply(Pt)).tocsr()
    P.sort_indices()
    return P


def find_ab(spread: float = 1.0, min_dist: float = 0.1) -> tuple[float, float]:
    """umap-learn's fit of 1 / (1 + a d^2b) to the min_dist curve."""
    from scipy.optimize import curve_fit

    x = np.linspace(0, spread * 3, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), x, y)
    return float(a), float(b)


def spectral_init(P: sp.csr_matrix, dim: int, Z: np.ndarray, seed: int) -> np.ndarray:
    """Eigenvectors of the normalised Laplacian (connected graph), else PCA of the data."""
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import eigsh

    n = P.shape[0]
    n_comp, _ = connected_components(P, directed=False)
    if n_comp == 1 and n > dim + 2:
        deg = np.asarray(P.sum(0)).ravel()
        Dm = sp.diags(1.0 / np.sqrt(deg))
        L = sp.identity(n) - Dm @ P @ Dm
        k = dim + 1
        try:
            vals, vecs = eigsh(L, k, which="SM", ncv=max(2 * k + 1, int(np.sqrt(n))), tol=1e-4,
                               v0=np.ones(n), maxiter=n * 5)
            return vecs[:, np.argsort(vals)[1:k]].astype(np.float64)
        except Exception:  # noqa: BLE001 - ARPACK may not converge: fall back to PCA
            pass
    Zc = (Z - Z.mean(0))[:, :100].astype(np.float64)
    _, _, vt = np.linalg.svd(Zc, full_matrices=False)
    Y = Zc @ vt[:dim].T
    if Y.shape[1] < dim:  # fewer features than output dimensions: pad with small noise
        extra = np.random.RandomState(seed).normal(scale=1e-3, size=(n, dim - Y.shape[1]))
        Y = np.hstack([Y, extra])
    return Y


def _scale(Y: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    Y = Y * (10.0 / max(np.abs(Y).max(), 1e-12))
    Y = Y + rng.normal(scale=1e-4, size=Y.shape)
    return (10.0 * (Y - Y.min(0)) / np.maximum(Y.max(0) - Y.min(0), 1e-12)).astype(np.float32)


def _epochs_per_sample(P: sp.csr_matrix, n_epochs: int) -> sp.csr_matrix:
    """Drop weak edges (as umap-learn does) and give each edge its sampling period."""
    P = P.copy()
    P.data[P.data < P.data.max() / n_epochs] = 0.0
    P.eliminate_zeros()
    eps = (P.data.max() / P.data).astype(np.float64)
    return P, eps


APPROX_ABOVE = 20_000  # exact neighbours (BLAS, O(n^2)) up to here, NN-descent above


def approximate_knn(Z: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of each row's ``k`` nearest rows, itself first, by pynndescent's
    NN-descent (umap-learn's own search for large data); recall@15 >= 0.95 is tested."""
    from pynndescent import NNDescent

    index = NNDescent(Z, n_neighbors=k, random_state=seed, n_jobs=1, low_memory=True,
                      compressed=True)
    idx, dist = index.neighbor_graph
    return idx.astype(np.int64), dist.astype(np.float32)


class FastUMAP:
    """UMAP with a scikit-learn face: ``fit``/``fit_transform``, ``embedding_``, ``transform``."""

    def __init__(self, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 n_epochs: int | None = None, seed: int = 0, negative_sample_rate: int = 5):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.seed = seed
        self.negative_sample_rate = negative_sample_rate

    def fit(self, Z: np.ndarray) -> FastUMAP:
        Z = np.ascontiguousarray(Z, np.float32)
        n = len(Z)
        k = max(2, min(self.n_neighbors, n - 1))
        idx, dist = knn(Z, k) if n <= APPROX_ABOVE else approximate_knn(Z, k, self.seed)
        P = fuzzy_graph(idx, dist, n)
        n_epochs = self.n_epochs or (500 if n <= 10_000 else 200)  # umap-learn's own rule
        self.a_, self.b_ = find_ab(1.0, self.min_dist)
        Y = _scale(spectral_init(P, self.n_components, Z, self.seed), self.seed)
        P, eps = _epochs_per_sample(P, n_epochs)
        _layout(Y, Y.copy(), False, P.indptr.astype(np.int64), P.indices.astype(np.int64), eps,
                n_epochs, np.float32(self.a_), np.float32(self.b_), np.float32(1.0), 1.0,
                float(self.negative_sample_rate), self.seed)
        self.Z_, self.k_, self.n_epochs_ = Z, k, n_epochs
        self.embedding_ = Y
        return self

    def fit_transform(self, Z: np.ndarray) -> np.ndarray:
        return self.fit(Z).embedding_

    def transform(self, Z_new: np.ndarray) -> np.ndarray:
        """Place new rows against the fixed fitted layout (as umap-learn's ``transform``)."""
        Z_new = np.ascontiguousarray(Z_new, np.float32)
        idx, dist = knn(Z_new, self.k_, self.Z_)
        P = fuzzy_graph(idx, dist, len(self.Z_), fit=False)
        W = P.multiply(1.0 / np.maximum(np.asarray(P.sum(1)), 1e-12)).tocsr()
        Y = np.asarray(W @ self.embedding_, dtype=np.float32)
        n_epochs = max(10, self.n_epochs_ // 3)
        P, eps = _epochs_per_sample(P, n_epochs)
        _layout(Y, self.embedding_, True, P.indptr.astype(np.int64), P.indices.astype(np.int64),
                eps, n_epochs, np.float32(self.a_), np.float32(self.b_), np.float32(1.0), 0.25,
                float(self.negative_sample_rate), self.seed + 1)
        return Y


__all__ = ["FastUMAP", "fuzzy_graph", "knn", "numba_cache_dir"]
