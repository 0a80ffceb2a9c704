"""Trust in the picture: trustworthiness and "neighbours kept" against scikit-learn, and the
map's thumbnails (sprite sheets, stratified sample)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import NearestNeighbors

from tlviz.errors import BadInput
from tlviz.metrics import neighbours_kept, projection_quality, trustworthiness


def _normalised(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("n,d", [(60, 5), (300, 32), (1100, 64)])
def test_trustworthiness_matches_sklearn(n, d):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)).astype(np.float32) + 0.5
    Y = X[:, :2] + 0.3 * rng.normal(size=(n, 2))  # a lossy "projection"
    ours = trustworthiness(X, Y, k=10, metric="cosine")
    expected = sk_trustworthiness(_normalised(X.astype(np.float64)), Y, n_neighbors=10,
                                  metric="cosine")
    assert ours == pytest.approx(expected, abs=1e-9)
    assert trustworthiness(X, Y, k=10, metric="euclidean") == pytest.approx(
        sk_trustworthiness(X.astype(np.float64), Y, n_neighbors=10), abs=1e-9)
    assert projection_quality(X, Y)["trustworthiness"] == pytest.approx(ours, abs=1e-12)


def test_a_faithful_map_is_fully_trusted_and_keeps_every_neighbour():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(200, 2))
    X = np.c_[Y, np.zeros((200, 3))]  # the map *is* the feature space
    assert trustworthiness(X, Y, metric="euclidean") == pytest.approx(1.0)
    assert neighbours_kept(X, Y, metric="euclidean").tolist() == [10] * 200


def test_neighbours_kept_matches_sklearn_neighbour_sets():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 16)).astype(np.float32)
    Y = rng.normal(size=(400, 2)) + X[:, :2]
    kept = neighbours_kept(X, Y, k=10, metric="cosine")
    # kneighbors() without X leaves each point out of its own neighbours
    nx = NearestNeighbors(n_neighbors=10, metric="cosine").fit(X).kneighbors(return_distance=False)
    ny = NearestNeighbors(n_neighbors=10).fit(Y).kneighbors(return_distance=False)
    expected = [len(set(a[:10]) & set(b)) for a, b in zip(nx, ny)]
    assert kept.tolist() == expected
    assert 0 <= kept.min() and kept.max() <= 10 and 0 < kept.mean() < 10


def test_a_sample_of_rows_gives_the_same_ranks_and_estimates_trustworthiness():
    from tlviz.metrics import projection_ranks

    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 24)).astype(np.float32)
    Y = X[:, :2] + 0.5 * rng.normal(size=(800, 2))
    rows = np.array([0, 5, 17, 400, 799])
    assert (projection_ranks(X, Y, rows=rows) == projection_ranks(X, Y)[rows]).all()
    full = projection_quality(X, Y)["trustworthiness"]
    est = projection_quality(X, Y, sample=300)
    assert est["kept"] is None and len(est["sample"]) == 300
    assert est["trustworthiness"] == pytest.approx(full, abs=0.02)


def test_quality_guards_small_inputs():
    with pytest.raises(BadInput):
        trustworthiness(np.zeros((10, 3)), np.zeros((10, 2)), k=10)
    q = projection_quality(np.eye(6) + 0.1, np.arange(12.0).reshape(6, 2), k=10)
    assert np.isnan(q["trustworthiness"]) and q["k"] == 5 and len(q["kept"]) == 6


# ----------------------------------------------------------------------------- thumbnails


def test_sprite_sheets_hold_every_image_in_dataset_order(tiny_folder):
    from tlviz.data import load_dataset
    from tlviz.sprites import build_sprite_sheets, thumbnail

    ds = load_dataset(str(tiny_folder))  # 24 images
    sp = build_sprite_sheets(ds, tile=32, cols=4, per_sheet=8, quality=95)
    assert len(sp.sheets) == 3 and sp.n == 24
    assert sp.layout() == {"n": 24, "tile": 32, "cols": 4, "per_sheet": 8}
    for i in (0, 5, 13, 23):
        want = np.asarray(thumbnail(ds, i, 32), float)
        got = np.asarray(sp.tile_image(i), float)
        assert got.shape == (32, 32, 3) and np.abs(got - want).mean() < 12  # JPEG, not exact
    again = build_sprite_sheets(ds, tile=32, cols=4, per_sheet=8, quality=95)  # from disk
    assert again.sheets == sp.sheets


def test_stratified_sample_keeps_class_shares():
    from tlviz.sprites import stratified_sample

    labels = np.repeat([0, 1, 2], [700, 250, 50])
    pick = stratified_sample(labels, 100, seed=0)
    assert len(pick) == 100 and len(set(pick.tolist())) == 100 and (np.diff(pick) > 0).all()
    assert np.bincount(labels[pick]).tolist() == [70, 25, 5]
    assert stratified_sample(labels, 2000).tolist() == list(range(1000))
    rare = np.r_[np.zeros(999, int), 1]
    assert 1 in rare[stratified_sample(rare, 10)]  # a small class is not dropped
    assert len(stratified_sample(rare, 10)) == 10
