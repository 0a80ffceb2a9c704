"""Projection at scale: above a threshold, fit on a stratified sample and place the rest."""

from __future__ import annotations

import numpy as np
import pytest

from tlviz.project import ProjectionConfig, Projector, layout, project


def blobs(n=900, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(3, d))[y] * 5 + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_fit_on_a_stratified_sample_and_place_the_rest(method):
    X, y = blobs()
    lay = layout(X, method, 2, labels=y, fit_max=300, cache=False, n_epochs=50)
    assert lay.coords.shape == (900, 2) and np.isfinite(lay.coords).all()
    assert lay.n_fitted == 300 and lay.fitted.dtype == bool
    shares = np.bincount(y[lay.fitted], minlength=3) / 300
    np.testing.assert_allclose(shares, np.bincount(y, minlength=3) / 900, atol=0.01)
    if method == "pca":  # the placed points are the fitted PCA's transform of them
        proj = Projector(ProjectionConfig("pca", 2)).fit(X[lay.fitted])
        np.testing.assert_allclose(lay.coords[~lay.fitted], proj.transform(X[~lay.fitted]),
                                   atol=1e-4)
    else:  # placed points land among their own class's fitted points
        from tlviz.neighbours import knn

        _, nb = knn(lay.coords[~lay.fitted], 5, ref=lay.coords[lay.fitted])
        same = (y[lay.fitted][nb] == y[~lay.fitted][:, None]).mean()
        assert same > 0.9


def test_sampled_layouts_are_cached_with_their_fitted_rows():
    X, y = blobs(seed=1)
    a = layout(X, "pca", 2, labels=y, fit_max=200, key="t-sampled")
    b = layout(X, "pca", 2, labels=y, fit_max=200, key="t-sampled")
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.fitted, b.fitted)
    full = layout(X, "pca", 2, key="t-sampled")  # below the default threshold: all fitted
    assert full.fitted is None and full.n_fitted == len(X)
    np.testing.assert_array_equal(project(X, "pca", 2, key="t-sampled"), full.coords)
