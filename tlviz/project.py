"""Projections of features to 2D or 3D: UMAP (default), PCA, t-SNE — seeded and cached.

A classroom must see the same picture every time, so every method is seeded by
default. Results are cached on disk under a key of the features and the parameters.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(60, 8)).astype("float32")
>>> project(X, "pca", dim=2).shape
(60, 2)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tlviz import config
from tlviz.errors import BadInput, UnknownName

METHODS = ("umap", "pca", "tsne")


UMAP_ENGINES = ("fast", "umap-learn")


@dataclass(frozen=True)
class ProjectionConfig:
    method: str = "umap"
    dim: int = 2
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    perplexity: float = 30.0
    pca_first: int = 50  # reduce to this many dims with PCA before UMAP / t-SNE (0 = off)
    engine: str = "fast"  # UMAP: "fast" (tlviz.fastumap, parallel + deterministic) or "umap-learn"
    n_epochs: int | None = None  # UMAP: None = 500 up to 5k rows, else 200 (fast engine)

    def __post_init__(self):
        if self.method not in METHODS:
            raise UnknownName(f"unknown projection {self.method!r}; use one of {', '.join(METHODS)}")
        if self.dim not in (2, 3):
            raise BadInput("dim must be 2 or 3")
        if self.engine not in UMAP_ENGINES:
            raise UnknownName(f"unknown UMAP engine {self.engine!r}; use one of {', '.join(UMAP_ENGINES)}")


class CovariancePCA:
    """Exact PCA of tall data from the d x d covariance (one BLAS product, a partial eigh)."""

    def __init__(self, n_components: int):
        self.n_components = n_components

    def fit(self, X: np.ndarray) -> CovariancePCA:
        from scipy.linalg import eigh

        self.mean_ = X.mean(0, dtype=np.float64).astype(np.float32)
        Xc = X - self.mean_
        C = (Xc.T @ Xc).astype(np.float64)
        d, k = C.shape[0], self.n_components
        _, vecs = eigh(C, subset_by_index=[d - k, d - 1])
        comp = vecs[:, ::-1].T  # largest variance first
        comp *= np.sign(comp[np.arange(k), np.abs(comp).argmax(1)])[:, None]  # sign like svd_flip
        self.components_ = comp.astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float32) - self.mean_) @ self.components_.T


class Projector:
    """A fitted projection: ``embedding_`` for the fitted rows, ``transform`` for new rows."""

    def __init__(self, cfg: ProjectionConfig):
        self.cfg = cfg

    def fit(self, X: np.ndarray) -> Projector:
        from sklearn.decomposition import PCA

        cfg = self.cfg
        X = np.asarray(X, dtype=np.float32)
        self.X_ = X
        n, d = X.shape
        if n < 3:
            raise BadInput("need at least 3 images to make a projection")
        self.pca_ = None
        Z = X
        if cfg.method == "pca" or (cfg.pca_first and d > cfg.pca_first and n > cfg.pca_first):
            k = cfg.dim if cfg.method == "pca" else cfg.pca_first
            k = min(k, n, d)
            self.pca_ = (CovariancePCA(k) if n >= 2 * d else
                         PCA(n_components=k, random_state=cfg.seed)).fit(X)
            Z = self.pca_.transform(X).astype(np.float32)
        if cfg.method == "pca":
            emb = Z
            if emb.shape[1] < cfg.dim:  # fewer components than asked (tiny data): pad
                emb = np.pad(emb, ((0, 0), (0, cfg.dim - emb.shape[1])))
        elif cfg.method == "umap" and cfg.engine == "fast":
            from tlviz.fastumap import FastUMAP

            self.umap_ = FastUMAP(n_components=cfg.dim, n_neighbors=cfg.n_neighbors,
                                  min_dist=cfg.min_dist, n_epochs=cfg.n_epochs, seed=cfg.seed)
            emb = self.umap_.fit_transform(Z)
        elif cfg.method == "umap":
            from tlviz.fastumap import numba_cache_dir

            os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
            import umap

            nn = max(2, min(cfg.n_neighbors, n - 1))
            init = "spectral" if n > cfg.dim + 2 else "random"
            self.umap_ = umap.UMAP(n_components=cfg.dim, n_neighbors=nn, min_dist=cfg.min_dist,
                                   random_state=cfg.seed, init=init, n_epochs=cfg.n_epochs)
            emb = self.umap_.fit_transform(Z)
        else:
            from sklearn.manifold import TSNE

            perp = min(cfg.perplexity, max(1.0, (n - 1) / 3))
            emb = TSNE(n_components=cfg.dim, perplexity=perp, random_state=cfg.seed,
                       init="pca").fit_transform(Z)
        self.Z_ = Z
        self.embedding_ = np.asarray(emb, dtype=np.float32)
        return self

    def transform(self, X_new: np.ndarray, k: int = 10) -> np.ndarray:
        """Place new rows in the fitted layout: exact for PCA, UMAP's own ``transform`` for
        UMAP, and for t-SNE the distance-weighted mean position of the k nearest fitted rows."""
        X_new = np.asarray(X_new, dtype=np.float32)
        Z = self.pca_.transform(X_new).astype(np.float32) if self.pca_ is not None else X_new
        if self.cfg.method == "pca":
            return Z if Z.shape[1] == self.cfg.dim else np.pad(Z, ((0, 0), (0, self.cfg.dim - Z.shape[1])))
        if self.cfg.method == "umap" and hasattr(self, "umap_"):
            return np.asarray(self.umap_.transform(Z), dtype=np.float32)
        from sklearn.neighbors import NearestNeighbors

        k = min(k, len(self.Z_))
        dist, idx = NearestNeighbors(n_neighbors=k).fit(self.Z_).kneighbors(Z)
        w = 1.0 / (dist + 1e-6)
        w /= w.sum(1, keepdims=True)
        return (self.embedding_[idx] * w[..., None]).sum(1).astype(np.float32)


def features_digest(X: np.ndarray) -> str:
    X = np.ascontiguousarray(X, dtype=np.float32)
    return hashlib.blake2b(X.tobytes(), digest_size=12).hexdigest() + f"-{X.shape}"


def project(X: np.ndarray, method: str = "umap", dim: int = 2, seed: int = 0, *,
            key: str | None = None, cache: bool = True, **params) -> np.ndarray:
    """Project features to ``dim`` dimensions, cached under (features, parameters).

    ``key`` (e.g. an :class:`~tlviz.embed.Embeddings` key plus a subset tag) saves
    hashing the features.
    """
    cfg = ProjectionConfig(method=method, dim=dim, seed=seed, **params)
    if not cache:
        return Projector(cfg).fit(X).embedding_
    raw = json.dumps({"x": key or features_digest(X), "n": int(len(X)), **asdict(cfg)}, sort_keys=True)
    path = config.cache_dir("projections") / f"{hashlib.sha256(raw.encode()).hexdigest()[:24]}.npy"
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            data = path.read_bytes()  # served only when its digest sidecar matches
            if path.with_suffix(".sum").read_text() == _digest(data):
                arr = np.load(io.BytesIO(data))
                if arr.shape == (len(X), dim) and np.isfinite(arr).all():
                    return arr
    t0 = time.perf_counter()
    emb = Projector(cfg).fit(X).embedding_
    _save(path, emb)
    project.last_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return emb


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _save(path: Path, arr: np.ndarray) -> None:
    """Write the array and its digest sidecar, each atomically (process- and thread-unique)."""
    buf = io.BytesIO()
    np.save(buf, arr)
    tag = f"{os.getpid()}.{threading.get_ident()}"
    for dst, data in ((path, buf.getvalue()), (path.with_suffix(".sum"), _digest(buf.getvalue()).encode())):
        tmp = dst.with_name(f".{dst.name}.{tag}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dst)


__all__ = ["METHODS", "ProjectionConfig", "Projector", "features_digest", "project"]
