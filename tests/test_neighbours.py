"""tlviz.neighbours against scikit-learn as the oracle (exact kNN, silhouette)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples as sk_silhouette_samples
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors

from tlviz.metrics import knn_loo_accuracy, silhouette
from tlviz.neighbours import knn, silhouette_samples


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.data[:700].astype(np.float32) + np.random.default_rng(0).normal(0, 1e-3, (700, 64))
    return X.astype(np.float32), d.target[:700]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_matches_sklearn(digits, metric):
    X, _ = digits
    dist, idx = knn(X, 10, metric=metric)
    ref_d, ref_i = NearestNeighbors(n_neighbors=11, metric=metric, algorithm="brute").fit(X) \
        .kneighbors(X)
    np.testing.assert_array_equal(idx, ref_i[:, 1:])  # sklearn lists the point itself first
    np.testing.assert_allclose(dist, ref_d[:, 1:], atol=1e-5)
    q = X[:50] + 0.5
    d2, i2 = knn(q, 5, ref=X, metric=metric)
    r2d, r2i = NearestNeighbors(n_neighbors=5, metric=metric, algorithm="brute").fit(X).kneighbors(q)
    np.testing.assert_array_equal(i2, r2i)
    np.testing.assert_allclose(d2, r2d, atol=1e-5)


def test_ties_go_to_the_lower_index_and_self_is_excluded():
    X = np.array([[0.0], [1.0], [-1.0], [1.0]])
    dist, idx = knn(X, 3)
    assert idx[0].tolist() == [1, 2, 3] and dist[0].tolist() == [1.0, 1.0, 1.0]
    assert idx[1].tolist() == [3, 0, 2]  # the duplicate first, at distance 0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_silhouette_matches_sklearn(digits, metric):
    X, y = digits
    np.testing.assert_allclose(silhouette_samples(X, y, metric),
                               sk_silhouette_samples(X, y, metric=metric), atol=1e-6)
    assert silhouette(X, y, max_samples=300, seed=3, metric=metric) == pytest.approx(
        silhouette_score(X, y, metric=metric, sample_size=300, random_state=3), abs=1e-6)
    y1 = y.copy()
    y1[0] = 99  # a class of one: silhouette 0 for that point, as in scikit-learn
    np.testing.assert_allclose(silhouette_samples(X, y1), sk_silhouette_samples(X, y1), atol=1e-6)


def test_knn_loo_accuracy_matches_sklearn_vote(digits):
    X, y = digits
    _, idx = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X)
    votes = np.array([np.bincount(y[r[1:]], minlength=10) for r in idx])
    ref = (votes.argmax(1) == y).mean()
    assert knn_loo_accuracy(X, y, 5) == pytest.approx(ref, abs=3 / len(y))  # vote ties may differ


def test_the_cached_embed_path_imports_neither_torch_nor_sklearn(tmp_path):
    """A cache hit of ``tlviz embed`` (features + the separation numbers) stays light."""
    import os
    import subprocess
    import sys

    from conftest import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", n_classes=2, per_class=6, size=24)
    env = {**os.environ, "TLVIZ_HOME": str(tmp_path / "home")}
    warm = [sys.executable, "-m", "tlviz.cli", "embed", "--dataset", str(folder),
            "--backbone", "tiny_random"]
    subprocess.run(warm, env=env, check=True, capture_output=True)
    code = (f"import sys; from tlviz.cli import main; rc = main(['embed', '--dataset', {str(folder)!r}, "
            "'--backbone', 'tiny_random', '--json']); "
            "print([m for m in ('torch', 'sklearn', 'torchvision', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()
    assert '"from_cache": true' in out[-2]
    assert out[-1] == "[]"
