"""tlviz.project (UMAP / PCA / t-SNE) and tlviz.metrics against scikit-learn oracles."""

from __future__ import annotations

import numpy as np
import pytest

from tlviz import config
from tlviz.metrics import (
    METRIC_HELP,
    accuracy,
    confusion_matrix,
    knn_loo_accuracy,
    scatter_ratio,
    separation_report,
    silhouette,
)
from tlviz.project import METHODS, ProjectionConfig, Projector, project


@pytest.fixture(autouse=True)
def one_blas_thread():
    """60-point problems: one OpenMP/BLAS thread is 3-5x quicker than two on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def blobs(n_per: int = 20, d: int = 10, centres: int = 3, spread: float = 6.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    C = rng.normal(0, spread, (centres, d))
    X = np.concatenate([c + rng.normal(0, 1, (n_per, d)) for c in C]).astype(np.float32)
    return X, np.repeat(np.arange(centres), n_per)


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize("method", METHODS)
def test_shapes_determinism_and_quality(method):
    from sklearn.manifold import trustworthiness

    X, _ = blobs()
    for dim in (2, 3):
        a = project(X, method, dim, seed=0, cache=False)
        assert a.shape == (60, dim) and a.dtype == np.float32 and np.isfinite(a).all()
        assert trustworthiness(X, a, n_neighbors=5) > 0.85  # neighbours stay neighbours
    a = project(X, method, 2, seed=0, cache=False)
    assert np.array_equal(a, project(X, method, 2, seed=0, cache=False))  # same seed, same picture
    if method == "umap":  # PCA, and t-SNE from a PCA start, use no random numbers
        assert not np.allclose(a, project(X, method, 2, seed=1, cache=False))


def test_cache_hit_returns_the_stored_layout():
    X, _ = blobs(seed=1)
    folder = config.cache_dir("projections")
    before = set(folder.glob("*.npy"))
    a = project(X, "pca", 2, seed=0)
    (path,) = set(folder.glob("*.npy")) - before
    stamp = path.stat().st_mtime_ns
    assert np.array_equal(project(X, "pca", 2, seed=0), a)
    assert path.stat().st_mtime_ns == stamp  # served from the file, not recomputed and rewritten
    np.save(path, a + 1.0)  # tampered (or half-written): not served, recomputed
    assert np.array_equal(project(X, "pca", 2, seed=0), a)
    n = len(set(folder.glob("*.npy")))
    project(X, "pca", 2, seed=0, key="my-key")  # another key, another entry
    project(X, "pca", 3, seed=0)  # other parameters, another entry
    assert len(set(folder.glob("*.npy"))) == n + 2


@pytest.mark.parametrize("method", METHODS)
def test_transform_places_fitted_rows_near_their_own_position(method):
    X, _ = blobs(seed=2)
    p = Projector(ProjectionConfig(method=method, dim=2, seed=0)).fit(X)
    new = p.transform(X[:15])
    own = p.embedding_[:15]
    if method == "pca":
        np.testing.assert_allclose(new, own, atol=1e-4)
    else:
        diameter = float(np.ptp(p.embedding_, axis=0).max())
        assert float(np.linalg.norm(new - own, axis=1).mean()) < 0.15 * diameter


def test_projection_input_errors():
    with pytest.raises(ValueError, match="unknown projection"):
        ProjectionConfig(method="mds")
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        ProjectionConfig(dim=4)
    with pytest.raises(ValueError, match="at least 3"):
        project(np.zeros((2, 4), np.float32), "pca", cache=False)


def test_pca_on_tiny_data_is_padded():
    X = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    assert project(X, "pca", 3, cache=False).shape == (4, 3)


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silhouette_matches_sklearn(seed):
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(80, 6)), rng.integers(0, 3, 80)
    assert silhouette(X, y) == pytest.approx(silhouette_score(X, y), abs=1e-5)
    assert np.isnan(silhouette(X, np.zeros(80)))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_knn_loo_accuracy_matches_sklearn(seed):
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    # two classes and an odd k: no vote ties, so any tie rule gives the same answer
    X = rng.normal(size=(70, 5))
    y = (X[:, 0] + rng.normal(0, 1, 70) > 0).astype(int)
    ref = cross_val_score(KNeighborsClassifier(n_neighbors=5), X, y, cv=LeaveOneOut()).mean()
    assert knn_loo_accuracy(X, y, k=5) == pytest.approx(ref)
    assert 0.5 < ref < 1.0  # neither trivial nor perfect data


def test_scatter_ratio_orders_separation():
    apart, y = blobs(spread=8.0)
    overlapping, _ = blobs(spread=0.3)
    assert scatter_ratio(apart, y) > 10 * scatter_ratio(overlapping, y)
    rep_apart, rep_over = separation_report(apart, y), separation_report(overlapping, y)
    assert set(rep_apart) == set(METRIC_HELP)
    assert rep_apart["silhouette"] > rep_over["silhouette"]
    assert rep_apart["knn5_loo_accuracy"] == 1.0 > rep_over["knn5_loo_accuracy"]


def test_prediction_metrics():
    assert accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75 and np.isnan(accuracy([], []))
    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], n_classes=4)
    assert cm.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="one label per row"):
        silhouette(np.zeros((3, 2)), [0, 1])
