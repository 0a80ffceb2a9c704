"""tlviz.calibration: ECE, reliability bins, temperature scaling inside the training split."""

from __future__ import annotations

import numpy as np
import pytest

from tlviz.calibration import (
    calibrate,
    choose_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability,
    softmax,
)
from tlviz.errors import BadInput
from tlviz.heads import create_head


def reference_ece(proba, y, n_bins=15):
    """Straight from the definition: bins (lo, hi], a loop over bins and rows."""
    proba, y = np.asarray(proba), np.asarray(y)
    n, total = len(y), 0.0
    rows = []
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        members = [i for i in range(n) if lo < proba[i].max() <= hi or (m == 0 and proba[i].max() == 0)]
        if not members:
            continue
        conf = sum(proba[i].max() for i in members) / len(members)
        acc = sum(int(proba[i].argmax() == y[i]) for i in members) / len(members)
        rows.append((len(members), conf, acc))
        total += len(members) / n * abs(acc - conf)
    return total, rows


def random_proba(n, k, seed, sharp=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * sharp
    return softmax(z), rng.integers(0, k, n)


def test_ece_hand_computed_cases():
    # perfectly calibrated: 3 of 4 right at 75% confidence
    p = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(p, [0, 0, 0, 1]) == pytest.approx(0.0)
    # always sure and always wrong: the gap is the confidence
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 3), [1, 1, 1]) == pytest.approx(1.0)
    # two bins: 0.9 right (gap 0.1); 0.58 and 0.55, one right (mean conf 0.565, gap 0.065)
    p = np.array([[0.9, 0.1], [0.58, 0.42], [0.45, 0.55]])
    y = np.array([0, 0, 0])
    assert expected_calibration_error(p, y) == pytest.approx((0.1 + 2 * 0.065) / 3)
    assert [b["count"] for b in reliability(p, y)] == [2, 1]
    # the number of bins matters: one bin averages the gaps away
    assert expected_calibration_error(p, y, n_bins=1) == pytest.approx(abs(2 / 3 - (0.9 + 0.58 + 0.55) / 3))


@pytest.mark.parametrize("seed,k,n_bins", [(0, 2, 15), (1, 5, 15), (2, 10, 10), (3, 3, 7)])
def test_ece_and_bins_match_the_reference_implementation(seed, k, n_bins):
    p, y = random_proba(300, k, seed)
    ref, rows = reference_ece(p, y, n_bins)
    assert expected_calibration_error(p, y, n_bins) == pytest.approx(ref, abs=1e-12)
    bins = reliability(p, y, n_bins)
    assert [(b["count"], pytest.approx(b["confidence"]), pytest.approx(b["accuracy"])) for b in bins] \
        == [(c, conf, acc) for c, conf, acc in rows]
    assert sum(b["count"] for b in bins) == len(y)
    assert all(b["lo"] < b["confidence"] <= b["hi"] for b in bins)


def test_bad_shapes_are_refused():
    with pytest.raises(BadInput):
        expected_calibration_error(np.ones((3, 2)), [0, 1])


def overconfident(n=20000, k=4, t_true=3.0, seed=0):
    """Labels drawn from softmax(z); the model reports z * t_true: over-confident by t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    p = softmax(z)
    y = (rng.random(n)[:, None] > p.cumsum(1)).sum(1)
    return z * t_true, y


def test_temperature_recovers_a_known_over_confidence():
    z, y = overconfident(t_true=3.0)
    assert fit_temperature(z, y) == pytest.approx(3.0, rel=0.05)
    z, y = overconfident(t_true=0.5, seed=1)  # under-confident: T < 1
    assert fit_temperature(z, y) == pytest.approx(0.5, rel=0.05)
    got = choose_temperature(*overconfident(n=5000, t_true=2.0, seed=2))
    assert got["ece_after"] < got["ece_before"] and got["temperature"] == got["fitted"]


def test_temperature_is_kept_only_when_it_lowers_the_ece():
    z, y = overconfident(n=3000, t_true=1.0, seed=4)  # calibrated already
    got = choose_temperature(z, y)
    assert got["temperature"] == (got["fitted"] if got["ece_after"] < got["ece_before"] else 1.0)
    assert got["fitted"] == pytest.approx(1.0, rel=0.1)


def test_temperature_never_changes_the_predicted_class():
    z, y = overconfident(n=500, seed=5)
    for t in (0.3, 1.0, 4.0):
        assert np.array_equal(softmax(z, t).argmax(1), z.argmax(1))


def blobs(n_per=60, d=10, k=3, noise=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2
    X = np.concatenate([c + rng.normal(size=(n_per, d)) * noise for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("head", ["logistic", "mlp"])
def test_heads_apply_their_temperature(head):
    X, y = blobs()
    params = {"epochs": 15, "hidden": 32} if head == "mlp" else {"C": 30.0}
    h = create_head(head, **params).fit(X, y)
    t = float(h.temperature_[0])
    assert h.chosen_["temperature"] == pytest.approx(t, abs=1e-4) and t > 0
    z = h.decision_function(X)
    np.testing.assert_allclose(h.predict_proba(X), softmax(z, t), atol=1e-5)
    plain = create_head(head, **params, temperature=1.0).fit(X, y)
    assert np.array_equal(plain.predict(X), h.predict(X))  # same model, same arg-max
    fixed = create_head(head, **params, temperature=2.0).fit(X, y)
    np.testing.assert_allclose(fixed.predict_proba(X), softmax(plain.decision_function(X), 2.0),
                               atol=1e-5)
    again = create_head(head, **params).set_state(h.get_state())  # saved and loaded
    np.testing.assert_allclose(again.predict_proba(X), h.predict_proba(X), atol=1e-6)
    with pytest.raises(BadInput):
        create_head(head, temperature="hot").fit(X, y)


def test_the_temperature_comes_from_out_of_fold_logits_of_the_training_rows():
    X, y = blobs(seed=3)
    h = create_head("logistic", C=30.0).fit(X, y)
    got = calibrate(h, X, y, {"C": 30.0})
    assert float(h.temperature_[0]) == pytest.approx(got["temperature"], rel=1e-6)
    # an over-fitted head is over-confident out of fold: the temperature is above 1
    assert got["fitted"] > 1.0


def test_old_head_states_load_with_temperature_one():
    X, y = blobs()
    h = create_head("logistic", temperature=2.0).fit(X, y)
    state = {k: v for k, v in h.get_state().items() if k != "temperature_"}
    old = create_head("logistic").set_state(state)
    assert float(old.temperature_[0]) == 1.0
    mlp = create_head("mlp", epochs=2, temperature=2.0).fit(X, y)
    state = {k: v for k, v in mlp.get_state().items() if k != "temperature_"}
    assert float(create_head("mlp").set_state(state).temperature_[0]) == 1.0


def test_val_labels_do_not_affect_the_temperature():
    """Training through ``train``: shuffling the val labels changes the val accuracy and
    ECE, never the temperature (fitted inside the training split)."""
    from tlviz.data import load_dataset
    from tlviz.train import TrainConfig, train

    ds = load_dataset("digits", seed=0).ensure_val(seed=0)
    other = ds.subset(np.arange(len(ds)))
    va = other.indices("val")
    other.labels[va] = np.random.default_rng(0).permutation(other.labels[va])
    cfg = TrainConfig(dataset="digits", backbone="pixels", head="logistic")
    a = train(cfg, dataset=ds, ledger=None)
    b = train(cfg, dataset=other, ledger=None)
    assert a.temperature is not None and a.temperature != 1.0  # a fitted, kept temperature
    assert a.temperature == b.temperature
    assert a.val_accuracy != b.val_accuracy and a.val_ece != b.val_ece
    assert a.val_ece == pytest.approx(sum(r["count"] * abs(r["accuracy"] - r["confidence"])
                                          for r in a.reliability) / sum(r["count"] for r in a.reliability))
    # MLP (no early stopping): the val data are only watched
    X, y = blobs(seed=6)
    Xv, yv = blobs(n_per=20, seed=7)
    t1 = create_head("mlp", epochs=10).fit(X, y, X_val=Xv, y_val=yv).temperature_
    t2 = create_head("mlp", epochs=10).fit(X, y, X_val=Xv, y_val=yv[::-1].copy()).temperature_
    assert t1[0] == t2[0]


def test_knn_is_not_temperature_scaled():
    from tlviz.data import load_dataset
    from tlviz.train import TrainConfig, train

    ds = load_dataset("digits", seed=0)
    r = train(TrainConfig(dataset="digits", backbone="pixels", head="knn"), dataset=ds, ledger=None)
    assert r.temperature is None and "temperature" not in r.chosen
    assert r.val_ece is not None and r.reliability  # vote shares still get an ECE


def test_reliability_figure_draws_bins_against_the_diagonal():
    from tlviz.plots import reliability_figure

    p, y = random_proba(200, 3, 9)
    one = reliability_figure({"val": reliability(p, y)})
    kinds = [t.type for t in one.data]
    assert kinds == ["scatter", "bar", "scatter"] and one.data[0].name == "perfectly calibrated"
    assert list(one.data[1].customdata) == [b["count"] for b in reliability(p, y)]
    two = reliability_figure({"<b>#1</b>": reliability(p, y), "#2": reliability(*random_proba(50, 3, 1))})
    assert [t.type for t in two.data] == ["scatter"] * 3 and "<b>" not in two.data[1].name
