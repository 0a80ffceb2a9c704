"""Sweeps and morphs: scores checked against scikit-learn, alignment, caching, the page."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness as sk_trust

from tlviz import sweeps
from tlviz.explore import animation_figure


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    rows = np.arange(0, len(d.target), 4)  # 450 images: quick, still 10 classes
    return d.data[rows].astype(np.float32), d.target[rows]


def test_grid_shapes():
    assert len(sweeps.grid("umap")) == 9 and len(sweeps.grid("tsne")) == 3
    with pytest.raises(ValueError, match="no sweep"):
        sweeps.grid("isomap")


def test_trustworthiness_is_sklearns_and_samples_large_sets(digits):
    X, _ = digits
    Y = X[:, :2] + 0.0
    assert sweeps.trustworthiness(X, Y) == pytest.approx(
        sk_trust(X, Y, n_neighbors=10, metric="cosine"))
    rows = np.linspace(0, len(X) - 1, 100).round().astype(int)
    assert sweeps.trustworthiness(X, Y, sample=100) == pytest.approx(
        sk_trust(X[rows], Y[rows], n_neighbors=10, metric="cosine"))


def test_umap_grid_scores_each_picture_and_seeds_align(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path))
    X, y = digits
    cells = sweeps.sweep(X, y, "umap", [{"n_neighbors": 5, "min_dist": 0.0},
                                        {"n_neighbors": 30, "min_dist": 0.5}])
    assert [c.params for c in cells] == [{"n_neighbors": 5, "min_dist": 0.0},
                                         {"n_neighbors": 30, "min_dist": 0.5}]
    for c in cells:
        assert c.coords.shape == (len(X), 2) and 0.8 < c.trustworthiness <= 1.0
        assert 0.8 < c.knn_accuracy <= 1.0  # digits separate on any sensible map
    seen = []
    runs = sweeps.sweep(X, y, "umap", seeds=(0, 1), progress=lambda d, t, m: seen.append(d))
    assert [c.params for c in runs] == [{"seed": 0}, {"seed": 1}] and seen[-1] == 2
    assert runs[0].disparity == 0 and 0 < runs[1].disparity < 1  # Procrustes: 0 same .. 1
    again = sweeps.sweep(X, y, "umap", seeds=(0, 1))  # from the disk cache: the same pictures
    np.testing.assert_array_equal(again[1].coords, runs[1].coords)


def test_morph_aligns_a_rotated_copy_exactly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    theta = 0.7
    R = np.eye(5, dtype=np.float32)
    R[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    a, b, disparity = sweeps.morph(X, 3 * X @ R, "pca", "pca", cache=False)
    assert disparity < 1e-6
    np.testing.assert_allclose(b, a, atol=1e-3)
    with pytest.raises(ValueError, match="same images"):
        sweeps.morph(X, X[:10], cache=False)


def test_morph_figure_names_its_ends():
    a = np.zeros((4, 2))
    fig = animation_figure(a, a + 1, np.array([0, 0, 1, 1]), ["x", "y"], np.arange(4),
                           steps=3, names=("PCA", "UMAP"))
    assert len(fig.frames) == 3
    assert fig.layout.sliders[0].currentvalue.prefix.startswith("PCA → UMAP")


def test_sweep_figure_has_one_panel_per_cell(digits):
    X, y = digits
    cells = sweeps.sweep(X, y, "pca", cache=False)
    fig = sweeps.sweep_figure(cells * 4, y, [str(k) for k in range(10)])
    assert len(fig.layout.annotations) == 4 and "trust" in fig.layout.annotations[0].text
