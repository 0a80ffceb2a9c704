"""The fitted heads as torch modules (features -> probabilities over all the run's classes).

Used to export a ``feature-extraction`` run as one ONNX graph (backbone + head): each
module computes exactly what the head's ``predict_proba`` computes (tested to 1e-5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _temperature(head) -> torch.Tensor:
    """The head's temperature (its logits are divided by it; 1.0 for heads without one)."""
    return torch.as_tensor(np.ravel(getattr(head, "temperature_", [1.0])).astype(np.float32)[:1])


def _class_map(head_classes: np.ndarray, n_classes: int) -> torch.Tensor:
    """(k, n_classes) 0/1 matrix: the head's classes -> all of the run's classes."""
    m = torch.zeros(len(head_classes), n_classes)
    m[torch.arange(len(head_classes)), torch.as_tensor(np.asarray(head_classes, np.int64))] = 1
    return m


class _LogisticModule(nn.Module):
    def __init__(self, head, n_classes: int):
        super().__init__()
        self.l2 = head.normalize == "l2"
        self.binary = np.asarray(head.coef_).shape[0] == 1  # sklearn keeps one column
        self.register_buffer("mean", torch.as_tensor(np.asarray(head.mean_, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(head.scale_, np.float32)))
        self.register_buffer("w", torch.as_tensor(np.asarray(head.coef_, np.float32)).T.contiguous())
        self.register_buffer("b", torch.as_tensor(np.asarray(head.intercept_, np.float32)))
        self.register_buffer("t", _temperature(head))
        self.register_buffer("m", _class_map(head.classes_, n_classes))

    def forward(self, x):
        if self.l2:
            x = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-12)
        z = (((x - self.mean) / self.scale) @ self.w + self.b) / self.t
        if self.binary:
            z = torch.cat([torch.zeros_like(z), z], 1)
        return torch.softmax(z, 1) @ self.m


class _MLPModule(nn.Module):
    def __init__(self, head, n_classes: int):
        super().__init__()
        self.net = head.module_
        self.register_buffer("mean", torch.as_tensor(np.asarray(head.mean_, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(head.scale_, np.float32)))
        self.register_buffer("t", _temperature(head))
        self.register_buffer("m", _class_map(head.classes_, n_classes))

    def forward(self, x):
        return torch.softmax(self.net((x - self.mean) / self.scale) / self.t, 1) @ self.m


class _KNNModule(nn.Module):
    def __init__(self, head, n_classes: int):
        super().__init__()
        self.cosine = bool(np.ravel(head.cosine_)[0])
        X = torch.as_tensor(np.asarray(head.X_, np.float32))
        if self.cosine:
            X = X / (torch.linalg.vector_norm(X, dim=1, keepdim=True) + 1e-12)
        self.register_buffer("X", X)
        codes = np.searchsorted(head.classes_, head.y_)
        self.register_buffer("onehot", torch.eye(len(head.classes_))[torch.as_tensor(codes)])
        self.k = max(1, min(int(np.ravel(head.k_)[0]), len(X)))
        self.register_buffer("m", _class_map(head.classes_, n_classes))

    def forward(self, x):
        if self.cosine:
            x = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-12)
            sim = x @ self.X.T
        else:
            sim = -((x * x).sum(1, keepdim=True) - 2 * x @ self.X.T + (self.X * self.X).sum(1))
        idx = torch.topk(sim, self.k, dim=1).indices
        return self.onehot[idx].mean(1) @ self.m


HEAD_MODULES = {"logistic": _LogisticModule, "mlp": _MLPModule, "knn": _KNNModule}


class Probabilities(nn.Module):
    """images -> probabilities: a backbone + a head module (or a model + softmax)."""

    def __init__(self, body: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x):
        z = self.body(x)
        return torch.softmax(z, 1) if self.head is None else self.head(z)


def head_module(name: str, head, n_classes: int) -> nn.Module:
    """The torch module of a fitted head (``knn``, ``logistic`` or ``mlp``)."""
    return HEAD_MODULES[name](head, n_classes)


__all__ = ["HEAD_MODULES", "Probabilities", "head_module"]
