"""FAISS indexes behind tlviz.neighbours: exact flat equals the numpy search, IVF keeps
recall@10 >= 0.95 on clustered data, indexes are cached on disk, and the kNN metric and
Explore's neighbours go through them for large sets."""

from __future__ import annotations

import numpy as np
import pytest

from tlviz import config, neighbours
from tlviz.explore import neighbours as explore_neighbours
from tlviz.metrics import knn_loo_accuracy
from tlviz.neighbours import build_index, index_for, index_search, knn, recall_at

pytest.importorskip("faiss", reason="FAISS is not installed (pip install -r requirements-scale.txt)")


def clustered(n: int, d: int = 32, centres: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, d)).astype(np.float32) * 4
    y = rng.integers(0, centres, n)
    return (C[y] + rng.normal(size=(n, d)).astype(np.float32)), y % 10


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_flat_index_is_exact(metric):
    X, _ = clustered(3000, seed=1)
    d_ref, i_ref = knn(X[:200], 10, ref=X, metric=metric)
    d, i = index_search(build_index(X, metric, ivf=False), X[:200], 10, metric)
    assert recall_at(i, i_ref) > 0.999
    np.testing.assert_allclose(d, d_ref, atol=1e-4)


def test_ivf_recall_at_10_is_at_least_095():
    X, _ = clustered(30_000, seed=2)
    q = X[np.random.default_rng(3).choice(len(X), 500, replace=False)]
    _, exact = knn(q, 10, ref=X, metric="cosine")
    index = build_index(X, "cosine", ivf=True)
    assert index.nlist > 100
    _, approx = index_search(index, q, 10, "cosine")
    assert recall_at(approx, exact) >= 0.95


def test_keyed_search_builds_once_and_serves_metrics_and_explore(monkeypatch):
    monkeypatch.setattr(neighbours, "INDEX_ABOVE", 1000)
    import tlviz.explore
    import tlviz.metrics

    monkeypatch.setattr(tlviz.metrics, "INDEX_ABOVE", 1000)
    monkeypatch.setattr(tlviz.explore, "INDEX_ABOVE", 1000)
    X, y = clustered(4000, seed=4)
    exact = knn_loo_accuracy(X, y, 5, metric="cosine")
    via = knn_loo_accuracy(X, y, 5, metric="cosine", index_key="t-keyed")
    assert abs(via - exact) < 1e-9  # a flat index: the same neighbours
    files = list(config.cache_dir("indexes").glob("t-keyed-cosine-flat-4000.faiss"))
    assert len(files) == 1
    neighbours._MEMO.clear()
    assert index_for(X, "cosine", "t-keyed").ntotal == 4000  # read back from disk

    mask = np.ones(len(X), bool)
    mask[::2] = False
    a = explore_neighbours(X, y, 7, k=8, metric="cosine", mask=mask, index_key="t-keyed")
    b = explore_neighbours(X, y, 7, k=8, metric="cosine", mask=mask)
    assert a["index"].tolist() == b["index"].tolist()
    assert mask[a["index"]].all() and 7 not in a["index"].tolist()
    d, i = knn(X, 5, metric="cosine", index_key="t-keyed")
    d_ref, i_ref = knn(X, 5, metric="cosine")
    assert recall_at(i, i_ref) > 0.999


def test_the_scale_libraries_load_only_when_used():
    import subprocess
    import sys

    code = ("import sys, tlviz.embed, tlviz.neighbours, tlviz.metrics, tlviz.project, tlviz.plots, "
            "tlviz.synth, tlviz.cli; from tlviz.data import list_datasets; list_datasets(); "
            "print(sorted(m for m in ('ray', 'faiss', 'datashader', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
