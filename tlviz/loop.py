"""The one mini-batch training loop: epochs, validation, early stopping, cancel, seeded order.

Every torch-trained model in tlviz goes through :func:`train_epochs`: the MLP head of
``feature-extraction``, ``pixels-mlp``, ``scratch-cnn``, and both phases of ``fine-tune``.

* ``epoch_data(epoch) -> (X, y)``: the stored training tensors of that epoch (fine-tuning
  rotates cached augmented views); ``prep_train(xb, gen)`` / ``prep_eval(xb)`` turn stored
  batches into model inputs (augmentation, normalisation); identity by default.
* the batch order comes from ``gen`` (seeded by the caller), so a run repeats exactly;
* one record per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc`` (the val
  fields are None without validation data); ``on_epoch(record)`` may return True to stop;
* ``check_stop()`` is called after every batch and raises :class:`tlviz.errors.Cancelled`;
* with ``patience``: stop after that many epochs without a better val accuracy and
  restore the best epoch's weights (the val accuracy is then an optimistic estimate);
* ``freeze_bn``: BatchNorm layers stay in eval mode while training (frozen statistics,
  as Keras does when fine-tuning).

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) and None
>>> X = torch.randn(40, 3); y = (X[:, 0] > 0).long()
>>> model = nn.Linear(3, 2)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.5)
>>> out = train_epochs(model, opt, 3, lambda e: (X, y), Xv=X, yv=y)
>>> [r["epoch"] for r in out.history], out.history[-1]["val_acc"] > 0.9
([1, 2, 3], True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

EpochCallback = Callable[[dict], "bool | None"]


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None  # the epoch with the best val accuracy (None without val)


def _identity_train(xb, _gen=None):
    return xb


def _identity(xb):
    return xb


def set_train_mode(model: nn.Module, freeze_bn: bool = False) -> None:
    """``model.train()``, with BatchNorm layers left in eval mode when ``freeze_bn``."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, X: torch.Tensor, prep: Callable = _identity,
                   batch_size: int = 64) -> torch.Tensor:
    """The model's outputs for ``X`` in eval mode, in batches."""
    model.eval()
    outs = [model(prep(X[k:k + batch_size])) for k in range(0, len(X), batch_size)]
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def train_epochs(model: nn.Module, opt: torch.optim.Optimizer, epochs: int,
                 epoch_data: Callable[[int], tuple], *, prep_train: Callable = _identity_train,
                 prep_eval: Callable = _identity, Xv: torch.Tensor | None = None,
                 yv: torch.Tensor | None = None, batch_size: int = 32,
                 patience: int | None = None, freeze_bn: bool = False,
                 gen: torch.Generator | None = None, first_epoch: int = 1,
                 check_stop: Callable[[], None] | None = None,
                 on_epoch: EpochCallback | None = None) -> LoopResult:
    """Train ``model`` for up to ``epochs`` epochs; see the module docstring."""
    loss_fn = nn.CrossEntropyLoss()
    has_val = Xv is not None and yv is not None and len(Xv) > 0
    out = LoopResult()
    best, best_state, bad = -1.0, None, 0
    for epoch in range(first_epoch, first_epoch + epochs):
        X, y = epoch_data(epoch)
        set_train_mode(model, freeze_bn)
        perm = torch.randperm(len(X), generator=gen)
        tot_loss = tot_ok = 0.0
        for k in range(0, len(X), batch_size):
            b = perm[k:k + batch_size]
            logits = model(prep_train(X[b], gen))
            loss = loss_fn(logits, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(b)
            tot_ok += float((logits.argmax(1) == y[b]).sum())
            if check_stop:
                check_stop()
        rec = {"epoch": epoch, "train_loss": tot_loss / max(len(X), 1),
               "train_acc": tot_ok / max(len(X), 1), "val_loss": None, "val_acc": None}
        if has_val:
            z = predict_logits(model, Xv, prep_eval)
            rec["val_loss"] = float(loss_fn(z, yv))
            rec["val_acc"] = float((z.argmax(1) == yv).float().mean())
            if rec["val_acc"] > best:
                best, bad, out.best_epoch = rec["val_acc"], 0, epoch
                if patience:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
        out.history.append(rec)
        if on_epoch and on_epoch(rec):
            break
        if patience and has_val and bad >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return out


__all__ = ["LoopResult", "predict_logits", "set_train_mode", "train_epochs"]
