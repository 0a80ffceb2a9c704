"""Classifier heads on frozen features, in scikit-learn's estimator style.

``__init__`` stores parameters; ``fit`` returns self; learned attributes end in ``_``.
Every head can export its learned state as plain arrays (``get_state``) and be rebuilt
from them (``from_state``), so heads are stored as safetensors, never pickled.

>>> import numpy as np
>>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2))]; y = np.r_[[0] * 5, [1] * 5]
>>> create_head("knn", n_neighbors=3).fit(X, y).score(X, y)
1.0
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from tlviz.data import cv_folds
from tlviz.errors import BadInput, UnknownName
from tlviz.loop import EpochCallback, train_epochs


class _StateMixin:
    """Learned state as a dict of numpy arrays, and back."""

    _state_keys: tuple[str, ...] = ()
    _dim_key = "mean_"  # a state array whose last axis is the number of features

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)) for k in self._state_keys}

    def set_state(self, state: dict[str, np.ndarray]):
        for k in self._state_keys:
            setattr(self, k, np.asarray(state[k]))
        self.n_features_in_ = int(np.asarray(state[self._dim_key]).shape[-1])
        return self


def _fit_xy(est, X, y):
    """Checked float32 (X, y) for ``fit`` (finite, 2D, same length, class labels)."""
    X, y = validate_data(est, X, y, dtype=np.float32)
    check_classification_targets(y)
    return X, y


def _predict_x(est, X):
    """Checked float32 X for prediction: fitted, 2D, finite, as many features as in fit."""
    check_is_fitted(est)
    return validate_data(est, X, dtype=np.float32, reset=False)


def _temperature(est, X, y, fold_params: dict, cv: int) -> None:
    """Set ``temperature_`` (and ``chosen_["temperature"]``): ``temperature="auto"`` fits it on
    ``cv``-fold out-of-fold logits inside the training rows (:func:`tlviz.calibration.calibrate`;
    the fold copies get ``fold_params``), kept only when it lowers their calibration error; a
    number fixes it."""
    if isinstance(est.temperature, str):
        if est.temperature != "auto":
            raise BadInput(f"temperature must be a positive number or 'auto', not {est.temperature!r}")
        from tlviz.calibration import calibrate

        t = calibrate(est, X, y, fold_params, cv)["temperature"]
    else:
        t = float(est.temperature)
        if not t > 0:
            raise BadInput(f"temperature must be positive, not {est.temperature!r}")
    est.temperature_ = np.asarray([t], np.float32)  # 1-d: safetensors
    est.chosen_ = {**getattr(est, "chosen_", {}), "temperature": round(t, 4)}


def _t(est) -> float:
    """The fitted temperature (1.0 for heads saved before temperature scaling)."""
    return float(np.ravel(getattr(est, "temperature_", 1.0))[0])


K_GRID = (1, 3, 5, 7, 9, 15)


class KNNHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """k-nearest neighbours (cosine or euclidean) — Teachable Machine's and LearningML's head.

    ``n_neighbors="auto"`` / ``metric="auto"`` (defaults) choose k from :data:`K_GRID` and
    the metric by leave-one-out accuracy on the training data (one neighbour search per
    metric); the choice is ``chosen_``. Never val or test.
    """

    _state_keys = ("X_", "y_", "classes_", "k_", "cosine_")
    _dim_key = "X_"

    def __init__(self, n_neighbors: int | str = "auto", metric: str = "auto"):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def _choose(self, X: np.ndarray, y: np.ndarray) -> tuple[int, str]:
        from tlviz.neighbours import knn, vote

        metrics = ("cosine", "euclidean") if self.metric == "auto" else (self.metric,)
        ks = [k for k in K_GRID if k < len(X)] if self.n_neighbors == "auto" else [int(self.n_neighbors)]
        ks = ks or [1]
        codes = np.searchsorted(self.classes_, y)
        scores = {}
        for m in metrics:
            _, idx = knn(X, min(max(ks), len(X) - 1), metric=m)
            for k in ks:
                votes = vote(codes[idx[:, :k]], len(self.classes_))
                scores[(k, m)] = float((votes.argmax(1) == codes).mean())
        self.loo_scores_ = {f"{m} k={k}": s for (k, m), s in scores.items()}
        # best leave-one-out accuracy; ties to cosine, then to the larger (smoother) k
        return max(scores, key=lambda km: (round(scores[km], 9), km[1] == "cosine", km[0]))

    def fit(self, X, y):
        X, y = _fit_xy(self, X, y)
        if self.metric not in ("auto", "cosine", "euclidean"):
            raise BadInput(f"metric must be auto, cosine or euclidean, not {self.metric!r}")
        if isinstance(self.n_neighbors, str) and self.n_neighbors != "auto":
            raise BadInput(f"n_neighbors must be a positive integer or 'auto', not {self.n_neighbors!r}")
        self.classes_ = np.unique(y)
        self.X_, self.y_ = X, y
        auto = self.metric == "auto" or self.n_neighbors == "auto"
        if auto and len(X) > 2:
            k, metric = self._choose(X, y)
        else:
            k = 5 if self.n_neighbors == "auto" else int(self.n_neighbors)
            metric = "cosine" if self.metric == "auto" else self.metric
            self.loo_scores_ = {}
        self.k_, self.cosine_ = np.asarray([k]), np.asarray([metric == "cosine"])  # 1-d: safetensors
        self.chosen_ = {"n_neighbors": k, "metric": metric}
        self.history_ = []
        return self

    def set_state(self, state: dict[str, np.ndarray]):
        if "k_" not in state:  # saved before k and the metric could be chosen: its parameters
            k = 5 if self.n_neighbors == "auto" else int(self.n_neighbors)
            state = {**state, "k_": np.asarray([k]), "cosine_": np.asarray([self.metric != "euclidean"])}
        return super().set_state(state)

    def predict_proba(self, X):
        """The share of the ``k`` nearest training rows in each class ("4 of 5 neighbours")."""
        from tlviz.neighbours import knn

        X = _predict_x(self, X)
        k = max(1, min(int(np.ravel(self.k_)[0]), len(self.X_)))
        cosine = bool(np.ravel(self.cosine_)[0])
        _, idx = knn(X, k, ref=self.X_, metric="cosine" if cosine else "euclidean")
        codes = np.searchsorted(self.classes_, self.y_[idx])
        proba = np.zeros((len(X), len(self.classes_)))
        for c in range(len(self.classes_)):
            proba[:, c] = (codes == c).mean(1)
        return proba

    def predict(self, X):
        proba = self.predict_proba(X)  # checks X (and being fitted) first
        return self.classes_[proba.argmax(1)]


C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
CV_DIMS = 128  # C is chosen on the features' first principal components (speed; see fit)


def fit_softmax(X: np.ndarray, y: np.ndarray, C: float, n_classes: int,
                start: np.ndarray | None = None, tol: float = 1e-3, max_iter: int = 150) -> np.ndarray:
    """Multinomial logistic regression as scikit-learn defines it (minimise
    ``0.5 ||W||^2 + C * sum cross-entropy``, intercept unpenalised) by L-BFGS, from ``start``
    (warm starts along a C path). Returns the flat (W, b) vector. Used for choosing C; the
    head itself is fitted by scikit-learn (this solver is tested against it)."""
    from scipy.optimize import minimize

    n, d = X.shape
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1.0

    def loss_grad(theta):
        W, b = theta[:d * n_classes].reshape(d, n_classes), theta[d * n_classes:]
        Z = X @ W + b
        Z -= Z.max(1, keepdims=True)  # softmax and log-sum-exp, stably
        E = np.exp(Z)
        s = E.sum(1)
        G = E / s[:, None]
        G -= Y
        G *= C
        loss = C * float(np.log(s).sum() - (Z * Y).sum()) + 0.5 * float((W * W).sum())
        return loss, np.concatenate([(X.T @ G + W).ravel(), G.sum(0)])

    theta = np.zeros(d * n_classes + n_classes) if start is None else start
    res = minimize(loss_grad, theta, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol})
    return res.x


class LogisticHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression (L2 penalty ``C``) on normalised features.

    ``normalize="l2"`` (default) scales each feature vector to unit length — the cosine
    geometry pretrained embeddings are made for; "standard" standardises each column.
    ``C="auto"`` (default) chooses C from :data:`C_GRID` by stratified ``cv``-fold
    cross-validation inside the training data (accuracy, then log-loss); the choice is
    ``chosen_["C"]`` and the scores ``cv_scores_``. Never val or test.
    ``temperature="auto"`` (default) divides the logits by a temperature fitted on
    out-of-fold logits of the training data (see :mod:`tlviz.calibration`), ``temperature_``.
    """

    _state_keys = ("mean_", "scale_", "coef_", "intercept_", "classes_", "temperature_")

    def __init__(self, C: float | str = "auto", normalize: str = "l2", max_iter: int = 2000,
                 cv: int = 3, temperature: float | str = "auto"):
        self.C = C
        self.normalize = normalize
        self.max_iter = max_iter
        self.cv = cv
        self.temperature = temperature

    def _choose_C(self, Xn: np.ndarray, y: np.ndarray) -> float:
        """The C of :data:`C_GRID` with the best cross-validated accuracy inside the training
        data (ties to the smaller, more regularised C). For speed the folds are fitted on the
        first :data:`CV_DIMS` principal components (over 80% of the variance of these
        features; the choice matches the full features' on the shared datasets, see
        bench/RESULTS.md), each fold's C path warm-started, BLAS on one thread."""
        folds = cv_folds(y, self.cv)
        if not folds:
            self.cv_scores_ = {}
            return 1.0
        codes = np.searchsorted(np.unique(y), y)
        n_cls = int(codes.max()) + 1
        acc = np.zeros((len(folds), len(C_GRID)))
        Z = Xn.astype(np.float64)
        if Z.shape[1] > CV_DIMS and len(Z) > CV_DIMS:
            from sklearn.decomposition import PCA

            Z = PCA(CV_DIMS, svd_solver="randomized", random_state=0).fit_transform(Z)
        d = Z.shape[1]
        for f, (tr, te) in enumerate(folds):
            theta = None
            for j, c in enumerate(C_GRID):
                theta = fit_softmax(Z[tr], codes[tr], c, n_cls, theta)
                W, b = theta[:d * n_cls].reshape(d, n_cls), theta[d * n_cls:]
                acc[f, j] = ((Z[te] @ W + b).argmax(1) == codes[te]).mean()
        mean = acc.mean(0)
        self.cv_scores_ = {float(c): float(a) for c, a in zip(C_GRID, mean)}
        return float(C_GRID[int(np.flatnonzero(mean >= mean.max() - 1e-9)[0])])

    def _norm(self, X):
        if self.normalize == "l2":
            X = X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)
        return (X - self.mean_) / self.scale_

    def fit(self, X, y):
        """Fit (choosing C first when ``C="auto"``), with BLAS on one thread: these are many
        small products, and two OpenBLAS threads on a busy 2-core machine were measured 20x
        slower than one (6.5 s vs 0.3 s for digits), the normal state of a shared server."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self._fit(X, y)

    def _fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        if self.normalize not in ("l2", "standard", "none"):
            raise BadInput("normalize must be l2, standard or none")
        X, y = _fit_xy(self, X, y)
        self.mean_ = np.zeros(X.shape[1], np.float32)
        self.scale_ = np.ones(X.shape[1], np.float32)
        if self.normalize == "standard":
            self.mean_, self.scale_ = X.mean(0), X.std(0) + 1e-6
        Xn = self._norm(X)
        if isinstance(self.C, str):
            if self.C != "auto":
                raise BadInput(f"C must be a positive number or 'auto', not {self.C!r}")
            C = self._choose_C(Xn, y)
        else:
            C = float(self.C)
            self.cv_scores_ = {}
        self.chosen_ = {"C": C}
        lr = LogisticRegression(C=C, max_iter=self.max_iter)
        lr.fit(Xn, y)
        self.coef_, self.intercept_, self.classes_ = lr.coef_, lr.intercept_, lr.classes_
        self.n_iter_ = lr.n_iter_
        self.history_ = []
        _temperature(self, X, y, {"C": C}, self.cv)
        return self

    def set_state(self, state: dict[str, np.ndarray]):
        return super().set_state({"temperature_": np.ones(1, np.float32), **state})

    def decision_function(self, X):
        X = _predict_x(self, X)
        z = self._norm(X) @ self.coef_.T + self.intercept_
        return z[:, 0] if z.shape[1] == 1 else z  # binary: one score per row, as in sklearn

    def predict_proba(self, X):
        """Softmax (binary: sigmoid) of the logits divided by the temperature ``temperature_``."""
        z = self.decision_function(X) / _t(self)
        if z.ndim == 1:  # binary
            p = 1 / (1 + np.exp(-z))
            return np.c_[1 - p, p]
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)  # checks X (and being fitted) first
        return self.classes_[proba.argmax(1)]


class _MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int, n_out: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(0.0)]
        if hidden:
            layers = [nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d_in = hidden
        self.net = nn.Sequential(*layers, nn.Linear(d_in, n_out))

    def forward(self, x):
        return self.net(x)


class MLPHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """Dense(hidden) + ReLU + Dropout + softmax in torch — the seeds' Dense(256) + Dropout(0.6).

    Records ``history_``: one dict per epoch with train/val loss and accuracy. With
    validation data and ``patience``, stops early and restores the best epoch.
    ``temperature="auto"`` (default): logits divided by a temperature fitted inside the
    training data, as for :class:`LogisticHead`.
    """

    def __init__(self, hidden: int = 256, dropout: float = 0.6, epochs: int = 30,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 32,
                 patience: int | None = None, seed: int = 0, temperature: float | str = "auto"):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.temperature = temperature

    def _module(self, d_in: int, n_out: int) -> _MLP:
        return _MLP(d_in, self.hidden, n_out, self.dropout)

    def fit(self, X, y, X_val=None, y_val=None, on_epoch: EpochCallback | None = None):
        """Train; ``on_epoch(record)`` is called after each epoch and may return True to stop."""
        X, y = _fit_xy(self, X, y)
        torch.manual_seed(self.seed)
        g = torch.Generator().manual_seed(self.seed)
        self.classes_ = np.unique(y)
        self.mean_ = X.mean(0)
        self.scale_ = X.std(0) + 1e-6
        Xt = torch.from_numpy((X - self.mean_) / self.scale_)
        yt = torch.from_numpy(np.searchsorted(self.classes_, y)).long()
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            Xv = torch.from_numpy((np.asarray(X_val, np.float32) - self.mean_) / self.scale_)
            yv = torch.from_numpy(np.searchsorted(self.classes_, np.asarray(y_val))).long()
        self.module_ = self._module(X.shape[1], len(self.classes_))
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        out = train_epochs(self.module_, opt, self.epochs, lambda e: (Xt, yt),
                           Xv=Xv if has_val else None, yv=yv if has_val else None,
                           batch_size=self.batch_size, patience=self.patience, gen=g,
                           on_epoch=on_epoch)
        self.history_, self.best_epoch_ = out.history, out.best_epoch
        self.chosen_ = {}
        # two folds (one more fit's worth of training), each copy trained as long as this
        # model was (its epochs, or up to the best one)
        restored = self.patience and has_val and self.best_epoch_ is not None
        used = self.best_epoch_ if restored else len(self.history_)
        _temperature(self, X, y, {"epochs": max(1, used), "patience": None}, 2)
        return self

    def _logits(self, X) -> torch.Tensor:
        X = _predict_x(self, X)
        with torch.no_grad():
            return self.module_(torch.from_numpy((X - self.mean_) / self.scale_))

    def decision_function(self, X):
        """The logits before the temperature (binary: one score per row, as in sklearn)."""
        z = self._logits(X).numpy()
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X):
        return torch.softmax(self._logits(X) / _t(self), 1).numpy()

    def predict(self, X):
        proba = self.predict_proba(X)  # checks X (and being fitted) first
        return self.classes_[proba.argmax(1)]

    def get_state(self) -> dict[str, np.ndarray]:
        state = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        state.update(mean_=self.mean_, scale_=self.scale_, classes_=np.asarray(self.classes_),
                     temperature_=np.asarray(getattr(self, "temperature_", [1.0]), np.float32))
        return state

    def set_state(self, state: dict[str, np.ndarray]):
        self.mean_, self.scale_ = state["mean_"], state["scale_"]
        self.classes_ = state["classes_"]
        self.temperature_ = np.asarray(state.get("temperature_", [1.0]), np.float32)
        d_in = self.n_features_in_ = self.mean_.shape[0]
        self.module_ = self._module(d_in, len(self.classes_))
        self.module_.load_state_dict({k[7:]: torch.from_numpy(np.asarray(v))
                                      for k, v in state.items() if k.startswith("module.")})
        self.module_.eval()
        return self


HEADS: dict[str, type] = {"knn": KNNHead, "logistic": LogisticHead, "mlp": MLPHead}
HEAD_HELP = {
    "knn": "k-nearest neighbours: no training, votes of the most similar training images",
    "logistic": "logistic regression: one linear layer, fitted to convergence",
    "mlp": "small neural network: Dense(hidden) + Dropout, trained for some epochs",
}


def create_head(name: str, **params):
    """A head by name with its hyper-parameters (unknown parameters are an error)."""
    try:
        cls = HEADS[name]
    except KeyError:
        raise UnknownName(f"unknown head {name!r}; use one of {', '.join(HEADS)}") from None
    known = cls._get_param_names()
    if unknown := sorted(set(params) - set(known)):
        raise UnknownName(f"unknown parameter(s) {', '.join(unknown)} for the {name} head; "
                         f"it takes {', '.join(known)}")
    return cls(**params)


def head_from_state(name: str, params: dict, state: dict[str, np.ndarray]):
    """Rebuild a fitted head from its parameters and arrays (e.g. loaded from safetensors)."""
    return create_head(name, **params).set_state(state)


__all__ = ["HEADS", "HEAD_HELP", "KNNHead", "LogisticHead", "MLPHead", "create_head",
           "head_from_state"]
