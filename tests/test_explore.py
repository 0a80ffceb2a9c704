"""tlviz.explore: neighbours, label issues, selections, satellites, before/after fine-tuning."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from conftest import shared_dataset
from sklearn.neighbors import NearestNeighbors

from tlviz import explore
from tlviz.augment import AugmentConfig
from tlviz.backbones import get_backbone_spec, tiny_cnn
from tlviz.data import load_dataset
from tlviz.embed import embed
from tlviz.explore import (
    before_after,
    compare_augmentations,
    export_selection,
    label_issues,
    neighbours,
    procrustes_align,
    satellites,
    selection_summary,
)


def _blobs(n=30, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (n, d)), rng.normal(8, 1, (n, d))]).astype(np.float32)
    y = np.repeat([0, 1], n)
    return X, y


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_neighbours_match_sklearn_and_skip_self(metric):
    X, y = _blobs()
    X[:, 0] += 1.0  # keep cosine away from the origin
    got = neighbours(X, y, 7, k=5, metric=metric)
    nn = NearestNeighbors(n_neighbors=6, metric=metric, algorithm="brute").fit(X)
    dist, idx = nn.kneighbors(X[7:8])
    assert got["index"].tolist() == idx[0, 1:].tolist()
    np.testing.assert_allclose(got["distance"], dist[0, 1:], rtol=1e-5, atol=1e-6)
    assert 7 not in got["index"].tolist()
    assert (got["same_class"] == (y[got["index"]] == y[7])).all()


def test_neighbours_flag_other_class_and_respect_mask():
    X, y = _blobs()
    y = y.copy()
    y[3] = 1  # a "mislabelled" image inside class 0
    got = neighbours(X, y, 0, k=59, metric="euclidean")
    assert not got.loc[got["index"] == 3, "same_class"].item()
    mask = np.ones(len(X), bool)
    mask[got["index"].iloc[0]] = False
    assert got["index"].iloc[0] not in neighbours(X, y, 0, k=5, mask=mask)["index"].tolist()
    with pytest.raises(IndexError):
        neighbours(X, y, len(X), k=3)


def test_label_issues_ranks_planted_mislabels_first():
    X, y = _blobs(n=25)
    y = y.copy()
    y[[4, 30]] = 1 - y[[4, 30]]  # two wrong labels, one in each blob
    issues = label_issues(X, y)
    assert set(issues["index"].head(2)) == {4, 30}
    top = issues[issues["index"] == 4].iloc[0]
    assert top["label"] == 1 and top["suggested"] == 0
    assert top["given_prob"] < 0.5 < top["suggested_prob"]
    assert issues["given_prob"].is_monotonic_increasing  # ranked by self-confidence
    assert label_issues(*_blobs(n=25)).empty  # clean blobs: nothing flagged


def test_out_of_fold_probabilities_never_come_from_a_model_that_saw_the_row():
    """A planted duplicate with the other label: in-sample it would be fitted, out of fold its
    given label stays improbable."""
    from tlviz.explore import out_of_fold_proba

    rng = np.random.default_rng(0)  # two directions: blobs that L2 normalisation keeps apart
    X = np.concatenate([rng.normal(0, 1, (20, 6)) + [8, 0, 0, 0, 0, 0],
                        rng.normal(0, 1, (20, 6)) + [0, 8, 0, 0, 0, 0]]).astype(np.float32)
    y = np.repeat([0, 1], 20)
    y[5] = 1
    P = out_of_fold_proba(X, y, cv=5)
    assert P.shape == (40, 2) and np.allclose(P.sum(1), 1)
    assert P[5, 1] < 0.5 and (P[np.arange(40) != 5, y[np.arange(40) != 5]] > 0.5).all()


def test_selection_summary_and_export(tiny_split_folder):
    ds = load_dataset(tiny_split_folder)
    sel = [0, 1, len(ds) - 1]
    summary = selection_summary(sel, ds.labels, ds.classes)
    assert summary["class"].tolist() == ds.classes
    assert summary["count"].sum() == 3
    assert summary["count"].tolist() == np.bincount(ds.labels[sel], minlength=3).tolist()
    rows = list(csv.DictReader(io.StringIO(export_selection(ds, sel))))
    assert [int(r["index"]) for r in rows] == sel
    assert rows[0]["path"] == ds.path(0) and rows[2]["class"] == ds.classes[ds.labels[-1]]
    assert export_selection(ds, sel, "txt").splitlines() == [ds.path(i) for i in sel]
    assert selection_summary([], ds.labels, ds.classes)["count"].sum() == 0


@pytest.fixture
def tiny_emb(tiny_folder):
    ds = load_dataset(tiny_folder)
    return ds, embed(ds, "tiny_random")


def test_identity_satellites_land_on_their_original(tiny_emb):
    ds, emb = tiny_emb
    s = satellites(ds, emb, [0, 13], AugmentConfig.none(), n_copies=4)
    cop, orig = s.points[s.points["copy"] >= 0], s.points[s.points["copy"] == -1]
    assert len(cop) == 8 and len(orig) == 2
    np.testing.assert_allclose(cop["distance"], 0, atol=1e-5)
    for i in (0, 13):
        o = orig[orig["index"] == i][["x", "y"]].to_numpy()
        np.testing.assert_allclose(cop[cop["index"] == i][["x", "y"]].to_numpy(),
                                   np.repeat(o, 4, 0), atol=1e-4)
        # the original itself lands where its dataset embedding lands
        np.testing.assert_allclose(emb.features[i], explore._features_of(
            [ds.load(i, size=32)], "tiny_random", get_backbone_spec("tiny_random"))[0], rtol=1e-4,
            atol=1e-5)
    assert s.ratio == pytest.approx(0, abs=1e-5)
    assert (cop["knn_class"].to_numpy() == np.repeat(orig["knn_class"].to_numpy(), 4)).all()
    assert s.class_distance > 0


def test_real_augmentation_moves_copies_and_is_seeded(tiny_emb):
    ds, emb = tiny_emb
    cfg = AugmentConfig(rotation_range=90, horizontal_flip=True, zoom_range=0.3)
    a = satellites(ds, emb, [2, 20], cfg, n_copies=5, seed=3)
    b = satellites(ds, emb, [2, 20], cfg.to_dict(), n_copies=5, seed=3)
    assert (a.points["distance"][a.points["copy"] >= 0] > 0).mean() > 0.5
    assert a.ratio > 0 and a.ratio == pytest.approx(b.ratio)
    assert a.ratio == pytest.approx(a.mean_distance / a.class_distance)
    assert len(a.copies[2]) == 5 and a.copies[2][0].size == ds.load(2, size=32).size
    assert a.per_image["index"].tolist() == [2, 20]
    assert 0 <= a.crossed_share <= 1
    with pytest.raises(ValueError):
        satellites(ds, emb, [], cfg)


def test_satellites_use_the_given_projector(tiny_emb):
    ds, emb = tiny_emb
    X, _ = emb.split(None)
    proj = explore.fit_projector(X, "pca")
    s = satellites(ds, emb, [5], AugmentConfig.none(), n_copies=2, projector=proj)
    np.testing.assert_allclose(s.points[["x", "y"]].to_numpy()[0], proj.embedding_[5], atol=1e-4)


def test_compare_augmentations_orders_identity_below_real_changes(tiny_emb):
    ds, emb = tiny_emb
    df = compare_augmentations(ds, emb, [0, 1, 12, 13], {
        "none": AugmentConfig.none(), "rotate": AugmentConfig(rotation_range=90)}, n_copies=3)
    assert df["augmentation"].tolist() == ["none", "rotate"]
    assert df["ratio"].iloc[0] == pytest.approx(0, abs=1e-5)
    assert df["ratio"].iloc[1] > df["ratio"].iloc[0]
    assert {f"crossed: {c}" for c in ds.classes} <= set(df.columns)


def test_procrustes_recovers_a_rotated_scaled_shifted_copy():
    from scipy.spatial import procrustes

    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 2))
    t = 0.7
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    B = 3.0 * A @ R @ np.diag([1, -1]) + [5, -2]  # rotate, reflect, scale, shift
    aligned, disparity = procrustes_align(A, B)
    np.testing.assert_allclose(aligned, A, atol=1e-5)
    assert disparity == pytest.approx(0, abs=1e-10)
    noisy = B + rng.normal(scale=0.5, size=B.shape)
    assert procrustes_align(A, noisy)[1] == pytest.approx(procrustes(A, noisy)[2], rel=1e-6)


def test_before_after_of_a_net_with_itself_is_identical(tiny_split_folder):
    ds = load_dataset(tiny_split_folder)
    spec, net = get_backbone_spec("tiny_random"), tiny_cnn(seed=0)
    r = before_after(ds, net, net, spec=spec)
    np.testing.assert_allclose(r.after, r.before, atol=1e-4)
    assert r.disparity == pytest.approx(0, abs=1e-8)
    np.testing.assert_allclose(r.report["after"], r.report["before"], rtol=1e-5)
    assert {"all", "train", "val"} == set(r.report.index.get_level_values("split"))
    assert set(r.report.index.get_level_values("metric")) == {
        "silhouette", "knn5_loo_accuracy", "scatter_ratio"}


def test_before_after_of_two_nets_differs_and_joint_works(tiny_split_folder):
    ds = load_dataset(tiny_split_folder)
    spec = get_backbone_spec("tiny_random")
    a, b = tiny_cnn(seed=0), tiny_cnn(seed=1)
    r = before_after(ds, a, b, spec=spec, indices=np.arange(20))
    assert r.before.shape == r.after.shape == (20, 2)
    assert r.disparity > 1e-3
    assert not np.allclose(r.report["before"], r.report["after"])
    j = before_after(ds, a, b, spec=spec, align="joint", X_before=explore.embed_with(ds, a, spec))
    assert j.before.shape == (len(ds), 2) and np.isfinite(j.after).all()
    assert len(explore.tween(r.before, r.after, 5)) == 5
    with pytest.raises(ValueError):
        before_after(ds, a, b, spec=spec, align="sideways")
    with pytest.raises(ValueError):
        before_after(ds, a, b)  # a FeatureNet needs its spec


@pytest.mark.slow
@pytest.mark.realdata
def test_hymenoptera_neighbours_issues_and_satellites():
    shared_dataset("hymenoptera")
    ds = load_dataset("hymenoptera")
    sub = ds.subset(np.concatenate([np.flatnonzero((ds.splits == "val") & (ds.labels == c))[:30]
                                    for c in (0, 1)]))
    emb = embed(sub, "mobilenet_v2")
    X, y = emb.split(None)
    same = np.mean([neighbours(emb.features, emb.labels, i, k=5, mask=emb.valid)["same_class"].mean()
                    for i in emb.indices()])
    assert same > 0.8  # pretrained features: neighbours mostly share the class
    issues = label_issues(emb.features, emb.labels, mask=emb.valid)
    assert len(issues) < len(X) * 0.10  # a clean set: few flags
    s_id = satellites(sub, emb, [0, 35], AugmentConfig.none(), n_copies=2)
    s_book = satellites(sub, emb, [0, 35], AugmentConfig.book(), n_copies=6)
    assert s_id.ratio < 1e-3
    assert 0.05 < s_book.ratio < 3


def test_before_after_of_a_real_fine_tune_run(tiny_split_folder):
    from tlviz.runs import Ledger
    from tlviz.train import TrainConfig, load_predictor, train

    led = Ledger()
    res = train(TrainConfig(dataset=str(tiny_split_folder), backbone="tiny_random",
                            mode="fine-tune", epochs=3, augment={},
                            extra={"head_epochs": 3, "lr": 1e-2}), ledger=led)
    net = load_predictor(led, res.run_id).feature_net
    ds = load_dataset(tiny_split_folder)
    emb = embed(ds, "tiny_random")
    r = before_after(ds, "tiny_random", net, X_before=np.asarray(emb.features))
    # the frozen pass through torch agrees with the cached (ONNX) embeddings
    frozen = before_after(ds, "tiny_random", net)
    np.testing.assert_allclose(frozen.before, r.before, atol=1e-3)
    assert r.disparity > 0  # the unfrozen stage moved the images
    assert not np.allclose(r.report["after"], r.report["before"])
