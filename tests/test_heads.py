"""tlviz.heads: the scikit-learn estimator contract, state round trips, MLP history and early stop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from safetensors.numpy import load, save
from sklearn.base import clone

from tlviz.heads import HEAD_HELP, HEADS, create_head, head_from_state

# small, quick settings; the MLP's learning rate lets it fit sklearn's checks in 30 steps
PARAMS = {"knn": {"n_neighbors": 3}, "logistic": {"C": 1.0},
          "mlp": {"hidden": 16, "dropout": 0.0, "epochs": 30, "lr": 0.05, "batch_size": 1024}}


def blobs(n_per=20, d=8, k=3, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    C = rng.normal(0, 4, (k, d))
    X = np.concatenate([c + rng.normal(0, noise, (n_per, d)) for c in C]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread; two threads on a busy machine spin and wait."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_head_is_documented():
    assert set(HEADS) == set(HEAD_HELP) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_estimator_contract(name):
    from sklearn.utils.estimator_checks import check_estimator

    X, y = blobs()
    est = create_head(name, **PARAMS[name])
    assert est.get_params()  # __init__ only stores parameters
    assert not [k for k in vars(est) if k.endswith("_")]
    assert est.fit(X, y) is est
    learned = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert {"classes_", "n_features_in_"} <= set(learned)
    assert est.n_features_in_ == 8 and list(est.classes_) == [0, 1, 2]
    proba = est.predict_proba(X[:7])
    assert proba.shape == (7, 3) and np.allclose(proba.sum(1), 1) and (proba >= 0).all()
    pred = est.predict(X[:7])
    assert pred.shape == (7,) and np.array_equal(pred, est.classes_[proba.argmax(1)])
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :5])
    with pytest.raises(ValueError):
        create_head(name, **PARAMS[name]).fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        create_head(name, **PARAMS[name]).fit(np.where(X > 3, np.nan, X), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(clone(est))  # scikit-learn's own conformance checks, all of them


@pytest.mark.parametrize("name", sorted(HEADS))
def test_state_round_trip_through_safetensors(name):
    X, y = blobs(seed=1)
    est = create_head(name, **PARAMS[name]).fit(X[::2], y[::2])
    blob = save({k: np.ascontiguousarray(v) for k, v in est.get_state().items()})
    again = head_from_state(name, PARAMS[name], load(blob))
    assert np.array_equal(again.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(again.predict(X), est.predict(X))
    assert again.n_features_in_ == 8


def test_unknown_head_or_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown head 'svm'.*knn"):
        create_head("svm")
    with pytest.raises(ValueError, match="unknown parameter.*hiden.*hidden"):
        create_head("mlp", hiden=3)
    with pytest.raises(ValueError, match="normalize"):
        create_head("logistic", normalize="max").fit(*blobs())


def test_knn_on_string_labels_and_metrics():
    X, y = blobs()
    names = np.array(["ant", "bee", "wasp"])[y]
    for metric in ("cosine", "euclidean"):
        est = create_head("knn", n_neighbors=1, metric=metric).fit(X, names)
        assert list(est.classes_) == ["ant", "bee", "wasp"] and est.score(X, names) == 1.0


# --------------------------------------------------------------------------- MLP training


def test_mlp_history_has_one_record_per_epoch():
    X, y = blobs()
    Xv, yv = blobs(seed=0, n_per=5)
    seen = []
    est = create_head("mlp", hidden=8, epochs=6).fit(X, y, X_val=Xv, y_val=yv, on_epoch=seen.append)
    assert [r["epoch"] for r in est.history_] == list(range(1, 7)) and seen == est.history_
    for rec in est.history_:
        assert set(rec) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
        assert rec["train_loss"] > 0 and 0 <= rec["train_acc"] <= 1 and 0 <= rec["val_acc"] <= 1
    assert est.history_[-1]["train_loss"] < est.history_[0]["train_loss"]
    without_val = create_head("mlp", hidden=8, epochs=2).fit(X, y)
    rec = without_val.history_[0]  # the same record shape as every training loop's, val empty
    assert rec["val_loss"] is None and rec["val_acc"] is None and without_val.best_epoch_ is None
    stopped = create_head("mlp", hidden=8, epochs=50).fit(X, y, on_epoch=lambda r: r["epoch"] == 3)
    assert len(stopped.history_) == 3


def test_mlp_seeded_training_is_reproducible():
    X, y = blobs()
    a = create_head("mlp", hidden=8, epochs=3, seed=5).fit(X, y).predict_proba(X)
    b = create_head("mlp", hidden=8, epochs=3, seed=5).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


def test_mlp_early_stopping_restores_the_best_epoch():
    import torch

    # few, noisily labelled training rows and a big, fast network: it overfits, val gets worse
    rng = np.random.default_rng(3)
    X, y = blobs(n_per=12, noise=3.0, seed=3)
    y = np.where(rng.random(len(y)) < 0.3, rng.integers(0, 3, len(y)), y)
    Xv, yv = blobs(n_per=40, noise=3.0, seed=3)
    est = create_head("mlp", hidden=512, dropout=0.0, epochs=200, lr=3e-3, patience=5,
                      batch_size=8).fit(X, y, X_val=Xv, y_val=yv)
    hist = est.history_
    best = max(range(len(hist)), key=lambda i: hist[i]["val_acc"])  # first best epoch
    assert est.best_epoch_ == best + 1 < len(hist) < 200  # stopped early, after the best
    assert len(hist) == est.best_epoch_ + 5  # patience epochs without improvement
    # the model now is the best epoch's model, not the last one's
    z = torch.from_numpy(est.decision_function(Xv))  # logits: the history is before temperature
    val_loss = float(torch.nn.functional.cross_entropy(z, torch.from_numpy(yv)))
    assert val_loss == pytest.approx(hist[best]["val_loss"], rel=1e-5)
    assert val_loss != pytest.approx(hist[-1]["val_loss"], rel=1e-5)
    assert (est.predict(Xv) == yv).mean() == pytest.approx(hist[best]["val_acc"])


def test_default_heads_pass_sklearn_checks_with_auto_hyper_parameters():
    """The defaults (C="auto", n_neighbors="auto", metric="auto") keep the estimator contract."""
    from sklearn.utils.estimator_checks import check_estimator

    for name in ("knn", "logistic"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_estimator(HEADS[name]())


def test_softmax_solver_matches_scikit_learn():
    """The solver used to choose C gives scikit-learn's LogisticRegression (the oracle)."""
    from sklearn.linear_model import LogisticRegression

    from tlviz.heads import fit_softmax

    X, y = blobs(n_per=30, d=6, k=3, noise=3.0)
    X = X.astype(np.float64)
    theta = fit_softmax(X, y, 0.5, 3, tol=1e-8, max_iter=2000)
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    W, b = theta[:18].reshape(6, 3), theta[18:]
    # sklearn's multinomial parameters are defined up to a shift per feature: compare centred
    np.testing.assert_allclose(W.T - W.T.mean(0), ref.coef_ - ref.coef_.mean(0), atol=1e-4)
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), rtol=1e-3)


def test_auto_C_is_chosen_inside_the_training_data_and_recorded():
    X, y = blobs(n_per=40, d=8, k=3, noise=6.0, seed=2)
    h = create_head("logistic").fit(X, y)
    assert h.chosen_["C"] in h.cv_scores_ and h.cv_scores_[h.chosen_["C"]] == max(h.cv_scores_.values())
    # the choice depends on the training rows only: the same rows give the same choice
    assert create_head("logistic").fit(X, y).chosen_ == h.chosen_
    fixed = create_head("logistic", C=h.chosen_["C"]).fit(X, y)
    np.testing.assert_allclose(fixed.predict_proba(X), h.predict_proba(X))


def test_auto_knn_choice_is_the_best_leave_one_out_vote():
    X, y = blobs(n_per=25, d=5, k=3, noise=5.0, seed=4)
    h = create_head("knn").fit(X, y)
    k, metric = h.chosen_["n_neighbors"], h.chosen_["metric"]
    assert h.loo_scores_[f"{metric} k={k}"] == max(h.loo_scores_.values())
    same = create_head("knn", n_neighbors=k, metric=metric).fit(X, y)
    np.testing.assert_array_equal(same.predict_proba(X), h.predict_proba(X))
