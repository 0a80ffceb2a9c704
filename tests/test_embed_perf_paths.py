"""Correctness of the fast paths (no timings here: speed lives in bench/).

- the batch preprocessing in tlviz.embed gives spec.preprocess's pixels;
- INT8 (static QDQ) features track FP32 features;
- tlviz.fastumap: exact kNN, the same picture for a seed whatever the thread count,
  trustworthiness close to umap-learn's, sensible ``transform``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from tlviz.backbones import get_backbone_spec
from tlviz.data import load_dataset
from tlviz.embed import _decode, embed
from tlviz.fastumap import FastUMAP, knn
from tlviz.project import ProjectionConfig, Projector, project


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data[:600].astype(np.float32), d.target[:600]


def _torchvision_reference(prep, im):
    """The same preprocessing written with torchvision's transforms (resize the whole image,
    then centre crop): the oracle for tlviz's crop-box resampling."""
    import torch
    from torchvision.transforms import v2 as T

    whole = min(im.size) < prep.size  # a thumbnail keeps its whole frame (no border crop)
    t = T.Compose([T.Resize(prep.size if whole else prep.resize or prep.size,
                            interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                   T.CenterCrop(prep.size), T.PILToTensor(),
                   T.ToDtype(torch.float32, scale=True), T.Normalize(prep.mean, prep.std)])
    return t(im.convert("L" if prep.grayscale else "RGB")).numpy()


def test_batch_preprocessing_matches_spec_preprocess(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs" / "a"
    d.mkdir(parents=True)
    for k, (w, h) in enumerate([(500, 375), (240, 260), (64, 700), (224, 224), (1000, 900)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"{k}.jpg")
    ds = load_dataset(tmp_path / "imgs")
    for name in ("mobilenet_v2", "efficientnet_lite2", "pixels"):  # RGB / other size+norm / gray
        spec = get_backbone_spec(name)
        idx = np.arange(len(ds))
        batch, failed = _decode(ds, spec.preprocess, idx)
        size = spec.preprocess.load_size
        one = np.stack([spec.preprocess(ds.load(int(i), size=size)) for i in idx])
        assert not failed and batch.shape == one.shape and batch.dtype == np.float32
        np.testing.assert_array_equal(batch, one)  # one implementation: batch == single image
        ref = np.stack([_torchvision_reference(spec.preprocess, ds.load(int(i), size=size))
                        for i in idx])
        one_level = 1.0 / 255.0 / min(spec.std)
        err = np.abs(batch - ref)
        assert err.mean() < 0.25 * one_level, (name, err.mean() / one_level)


def test_int8_features_track_fp32(tiny_split_folder):
    ds = load_dataset(tiny_split_folder)
    fp = np.asarray(embed(ds, "tiny_random", backend="onnx").features)
    q8 = embed(ds, "tiny_random", int8=True)
    assert q8.key != embed(ds, "tiny_random").key  # cached apart
    q = np.asarray(q8.features)
    assert q.shape == fp.shape and np.isfinite(q).all()
    assert np.corrcoef(fp.ravel(), q.ravel())[0, 1] > 0.98
    with pytest.raises(ValueError, match="ONNX Runtime"):
        embed(ds, "tiny_random", backend="torch", int8=True, cache=False)


def test_knn_is_exact():
    X = np.random.default_rng(0).normal(size=(700, 12)).astype(np.float32)
    idx, dist = knn(X, 10)
    ref_d, ref_i = NearestNeighbors(n_neighbors=10).fit(X).kneighbors(X)
    assert np.allclose(dist, ref_d, atol=1e-4)
    assert (idx == ref_i).mean() > 0.999  # ties aside
    assert (idx[:, 0] == np.arange(len(X))).all()


def test_same_picture_for_a_seed_whatever_the_threads(digits):
    import numba

    X, _ = digits
    a = FastUMAP(seed=3).fit_transform(X)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = FastUMAP(seed=3).fit_transform(X)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, FastUMAP(seed=4).fit_transform(X))
    assert np.array_equal(project(X, "umap", seed=3, cache=False), project(X, "umap", seed=3, cache=False))


@pytest.mark.slow
def test_trustworthiness_close_to_umap_learn(digits):
    import umap

    X, _ = digits
    ours = project(X, "umap", seed=0, cache=False)
    theirs = umap.UMAP(random_state=0).fit_transform(X)
    t_ours, t_theirs = trustworthiness(X, ours, n_neighbors=10), trustworthiness(X, theirs, n_neighbors=10)
    assert t_ours >= t_theirs - 0.02, (t_ours, t_theirs)


def test_clusters_stay_apart_and_transform_lands_near_neighbours(digits):
    X, y = digits
    p = Projector(ProjectionConfig(seed=0)).fit(X[:500])
    emb = p.embedding_
    centres = np.stack([emb[y[:500] == c].mean(0) for c in range(10)])
    within = np.mean([np.linalg.norm(emb[y[:500] == c] - centres[c], axis=1).mean() for c in range(10)])
    between = np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(10, 1)].mean()
    assert between > 2 * within
    new = p.transform(X[500:])
    assert new.shape == (100, 2) and np.isfinite(new).all()
    _, nn = NearestNeighbors(n_neighbors=1).fit(emb).kneighbors(new)
    assert (y[:500][nn[:, 0]] == y[500:]).mean() > 0.8  # placed among its own class


@pytest.mark.parametrize("n,d", [(3, 5), (4, 1), (6, 300), (40, 2)])
def test_tiny_and_degenerate_inputs(n, d):
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    for dim in (2, 3):
        Y = project(X, "umap", dim=dim, cache=False)
        assert Y.shape == (n, dim) and np.isfinite(Y).all()
    assert np.isfinite(project(np.zeros((12, 4), np.float32), "umap", cache=False)).all()


def test_approximate_neighbours_recall(monkeypatch):
    """Above the size threshold the UMAP graph uses NN-descent: recall@15 >= 0.95 against the
    exact search, and the layout is still the same for a seed."""
    from tlviz import fastumap

    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(3000, 32)) + rng.integers(0, 6, (3000, 1)) * 3).astype(np.float32)
    exact, _ = knn(Z, 15)
    approx, _ = fastumap.approximate_knn(Z, 15, seed=0)
    recall = np.mean([len(set(a) & set(e)) / 15 for a, e in zip(approx, exact)])
    assert recall >= 0.95
    monkeypatch.setattr(fastumap, "APPROX_ABOVE", 1000)
    a = FastUMAP(seed=1, n_epochs=30).fit_transform(Z)
    b = FastUMAP(seed=1, n_epochs=30).fit_transform(Z)
    assert np.array_equal(a, b)


def test_layout_pulls_both_ends_like_umap_learn(digits):
    """Trustworthiness within 0.01 of umap-learn's on digits (same input, same seed)."""
    import umap

    X, _ = digits
    ours = FastUMAP(seed=0).fit_transform(X)
    theirs = umap.UMAP(random_state=0).fit_transform(X)
    assert abs(trustworthiness(X, ours, n_neighbors=10) - trustworthiness(X, theirs, n_neighbors=10)) <= 0.01
