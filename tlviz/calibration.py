"""Probabilities that mean what they say: calibration error and temperature scaling.

* :func:`reliability` bins the top-class confidence into ``n_bins`` equal-width bins
  ``((m-1)/M, m/M]`` and gives, per non-empty bin, the count, the mean confidence and the
  accuracy: the data of a reliability diagram.
* :func:`expected_calibration_error` (ECE) is the count-weighted mean gap between
  confidence and accuracy over those bins (Guo et al. 2017; 15 bins by default).
* :func:`fit_temperature` finds the one temperature ``T`` that minimises the negative
  log-likelihood of ``softmax(logits / T)``; :func:`calibrate` fits it on out-of-fold
  logits *inside the training split* (never val or test) and keeps it only when it lowers
  the ECE there. Dividing logits by ``T`` never changes the arg-max: accuracy is untouched.

kNN probabilities are vote shares ("4 of 5 nearest"), not logits: they are not scaled.

>>> import numpy as np
>>> p = np.array([[0.9, 0.1], [0.85, 0.15], [0.3, 0.7]]); y = np.array([0, 1, 1])
>>> round(expected_calibration_error(p, y), 4)  # (|1 - 0.9| + |0 - 0.85| + |1 - 0.7|) / 3
0.4167
"""

from __future__ import annotations

import numpy as np

from tlviz.errors import BadInput

N_BINS = 15
T_BOUNDS = (0.05, 20.0)


def _top(proba, y) -> tuple[np.ndarray, np.ndarray]:
    """Top-class confidence and whether the top class is right, per row."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y)
    if proba.ndim != 2 or len(proba) != len(y):
        raise BadInput("probabilities must be (n, classes) with one label per row")
    return proba.max(1), (proba.argmax(1) == y).astype(np.float64)


def _bin_of(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin m (0-based) holds confidences in (m/M, (m+1)/M]; a confidence of 0 goes to bin 0."""
    return np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability(proba, y, n_bins: int = N_BINS) -> list[dict]:
    """Per non-empty bin: ``lo``, ``hi``, ``count``, mean ``confidence``, ``accuracy``.

    ``y`` are column indices of ``proba`` (class codes). Plain floats, ready for JSON.
    """
    conf, right = _top(proba, y)
    b = _bin_of(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    sum_conf = np.bincount(b, conf, minlength=n_bins)
    sum_right = np.bincount(b, right, minlength=n_bins)
    return [{"lo": m / n_bins, "hi": (m + 1) / n_bins, "count": int(count[m]),
             "confidence": float(sum_conf[m] / count[m]), "accuracy": float(sum_right[m] / count[m])}
            for m in range(n_bins) if count[m]]


def ece_from_bins(bins: list[dict]) -> float:
    """The ECE of :func:`reliability`'s bins (nan when there are no rows)."""
    n = sum(b["count"] for b in bins)
    if not n:
        return float("nan")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / n)


def expected_calibration_error(proba, y, n_bins: int = N_BINS) -> float:
    """Count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return ece_from_bins(reliability(proba, y, n_bins))


# ----------------------------------------------------------------------------- temperature


def as_logits(z) -> np.ndarray:
    """(n, classes) logits; a binary decision function (one score per row) becomes [0, z]."""
    z = np.asarray(z, dtype=np.float64)
    return np.c_[np.zeros(len(z)), z] if z.ndim == 1 else z


def softmax(z, temperature: float = 1.0) -> np.ndarray:
    z = as_logits(z) / float(temperature)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(z, y, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of class codes ``y`` under ``softmax(z / T)``."""
    z = as_logits(z) / float(temperature)
    m = z.max(1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
    return float((lse - z[np.arange(len(z)), y]).mean())


def fit_temperature(z, y, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The ``T`` within ``bounds`` minimising :func:`nll` (a 1-D search over log T)."""
    from scipy.optimize import minimize_scalar

    z, y = as_logits(z), np.asarray(y, dtype=int)
    if not len(z):
        return 1.0
    res = minimize_scalar(lambda s: nll(z, y, np.exp(s)), bounds=np.log(bounds), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def choose_temperature(z, y, n_bins: int = N_BINS) -> dict:
    """Fit ``T`` on logits ``z`` and labels ``y`` and keep it only if it lowers their ECE.

    Returns ``temperature`` (1.0 when not kept), ``fitted``, ``ece_before``, ``ece_after``.
    """
    z, y = as_logits(z), np.asarray(y, dtype=int)
    t = fit_temperature(z, y)
    before = expected_calibration_error(softmax(z), y, n_bins)
    after = expected_calibration_error(softmax(z, t), y, n_bins)
    return {"temperature": t if after < before else 1.0, "fitted": t,
            "ece_before": before, "ece_after": after}


def oof_logits(head, X: np.ndarray, y: np.ndarray, params: dict | None = None, cv: int = 3,
               seed: int = 0) -> np.ndarray | None:
    """Out-of-fold logits of ``head``'s kind inside (X, y): each row scored by a copy fitted
    without it, with ``params`` (the hyper-parameters ``head`` ended up with) and no
    temperature. None when there are too few rows per class for two folds."""
    from sklearn.base import clone

    from tlviz.data import cv_folds

    folds = cv_folds(y, cv, seed)
    if not folds:
        return None
    out = np.zeros((len(y), len(head.classes_)))
    for tr, te in folds:
        h = clone(head).set_params(**(params or {}), temperature=1.0).fit(X[tr], y[tr])
        if len(h.classes_) != len(head.classes_):
            return None
        out[te] = as_logits(h.decision_function(X[te]))
    return out


def calibrate(head, X: np.ndarray, y: np.ndarray, params: dict | None = None, cv: int = 3) -> dict:
    """The temperature for a fitted ``head`` from out-of-fold logits on its training rows
    (see :func:`choose_temperature`); ``temperature`` 1.0 when it cannot be fitted."""
    z = oof_logits(head, X, y, params, cv)
    if z is None:
        return {"temperature": 1.0, "fitted": None, "ece_before": None, "ece_after": None}
    return choose_temperature(z, np.searchsorted(head.classes_, y))


__all__ = ["N_BINS", "as_logits", "calibrate", "choose_temperature", "ece_from_bins",
           "expected_calibration_error", "fit_temperature", "nll", "oof_logits", "reliability",
           "softmax"]
