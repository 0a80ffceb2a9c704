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

from collections.abc import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from tlviz.errors import BadInput, UnknownName


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


class KNNHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """k-nearest neighbours (cosine or euclidean) — Teachable Machine's and LearningML's head."""

    _state_keys = ("X_", "y_", "classes_")
    _dim_key = "X_"

    def __init__(self, n_neighbors: int = 5, metric: str = "cosine"):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, X, y):
        X, y = _fit_xy(self, X, y)
        self.classes_ = np.unique(y)
        self.X_, self.y_ = X, y
        self.history_ = []
        return self

    def predict_proba(self, X):
        """The share of the ``k`` nearest training rows in each class ("4 of 5 neighbours")."""
        from tlviz.neighbours import knn

        X = _predict_x(self, X)
        k = max(1, min(self.n_neighbors, len(self.X_)))
        _, idx = knn(X, k, ref=self.X_, metric=self.metric)
        codes = np.searchsorted(self.classes_, self.y_[idx])
        proba = np.zeros((len(X), len(self.classes_)))
        for c in range(len(self.classes_)):
            proba[:, c] = (codes == c).mean(1)
        return proba

    def predict(self, X):
        proba = self.predict_proba(X)  # checks X (and being fitted) first
        return self.classes_[proba.argmax(1)]


class LogisticHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression (L2 penalty ``C``) on normalised features.

    ``normalize="l2"`` (default) scales each feature vector to unit length — the cosine
    geometry pretrained embeddings are made for; "standard" standardises each column.
    """

    _state_keys = ("mean_", "scale_", "coef_", "intercept_", "classes_")

    def __init__(self, C: float = 1.0, normalize: str = "l2", max_iter: int = 2000):
        self.C = C
        self.normalize = normalize
        self.max_iter = max_iter

    def _norm(self, X):
        if self.normalize == "l2":
            X = X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)
        return (X - self.mean_) / self.scale_

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        if self.normalize not in ("l2", "standard", "none"):
            raise BadInput("normalize must be l2, standard or none")
        X, y = _fit_xy(self, X, y)
        self.mean_ = np.zeros(X.shape[1], np.float32)
        self.scale_ = np.ones(X.shape[1], np.float32)
        if self.normalize == "standard":
            self.mean_, self.scale_ = X.mean(0), X.std(0) + 1e-6
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter)
        lr.fit(self._norm(X), y)
        self.coef_, self.intercept_, self.classes_ = lr.coef_, lr.intercept_, lr.classes_
        self.n_iter_ = lr.n_iter_
        self.history_ = []
        return self

    def decision_function(self, X):
        X = _predict_x(self, X)
        z = self._norm(X) @ self.coef_.T + self.intercept_
        return z[:, 0] if z.shape[1] == 1 else z  # binary: one score per row, as in sklearn

    def predict_proba(self, X):
        z = self.decision_function(X)
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


EpochCallback = Callable[[dict], bool | None]


class MLPHead(_StateMixin, ClassifierMixin, BaseEstimator):
    """Dense(hidden) + ReLU + Dropout + softmax in torch — the seeds' Dense(256) + Dropout(0.6).

    Records ``history_``: one dict per epoch with train/val loss and accuracy. With
    validation data and ``patience``, stops early and restores the best epoch.
    """

    def __init__(self, hidden: int = 256, dropout: float = 0.6, epochs: int = 30,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 32,
                 patience: int | None = None, seed: int = 0):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed

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
        loss_fn = nn.CrossEntropyLoss()
        self.history_: list[dict] = []
        best, best_state, bad = -1.0, None, 0
        for epoch in range(1, self.epochs + 1):
            self.module_.train()
            perm = torch.randperm(len(Xt), generator=g)
            tot_loss = tot_ok = 0.0
            for k in range(0, len(Xt), self.batch_size):
                b = perm[k:k + self.batch_size]
                out = self.module_(Xt[b])
                loss = loss_fn(out, yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot_loss += float(loss.detach()) * len(b)
                tot_ok += float((out.argmax(1) == yt[b]).sum())
            rec = {"epoch": epoch, "train_loss": tot_loss / len(Xt), "train_acc": tot_ok / len(Xt)}
            if has_val:
                self.module_.eval()
                with torch.no_grad():
                    out = self.module_(Xv)
                    rec["val_loss"] = float(loss_fn(out, yv))
                    rec["val_acc"] = float((out.argmax(1) == yv).float().mean())
                if rec["val_acc"] > best:
                    best, bad = rec["val_acc"], 0
                    best_state = {k: v.clone() for k, v in self.module_.state_dict().items()}
                    self.best_epoch_ = epoch
                else:
                    bad += 1
            self.history_.append(rec)
            if on_epoch and on_epoch(rec):
                break
            if self.patience and has_val and bad >= self.patience:
                break
        if best_state is not None and self.patience:
            self.module_.load_state_dict(best_state)
        self.module_.eval()
        return self

    def predict_proba(self, X):
        X = _predict_x(self, X)
        with torch.no_grad():
            z = self.module_(torch.from_numpy((X - self.mean_) / self.scale_))
            return torch.softmax(z, 1).numpy()

    def predict(self, X):
        proba = self.predict_proba(X)  # checks X (and being fitted) first
        return self.classes_[proba.argmax(1)]

    def get_state(self) -> dict[str, np.ndarray]:
        state = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        state.update(mean_=self.mean_, scale_=self.scale_, classes_=np.asarray(self.classes_))
        return state

    def set_state(self, state: dict[str, np.ndarray]):
        self.mean_, self.scale_ = state["mean_"], state["scale_"]
        self.classes_ = state["classes_"]
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
