"""The one training loop (tlviz.loop): the MLP head, pixels/scratch and fine-tune all use it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlviz.errors import Cancelled
from tlviz.loop import train_epochs


def _data(seed=0, n=60):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).long()


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def test_same_seed_same_run_and_records_have_one_shape():
    X, y = _data()
    runs = []
    for _ in range(2):
        m = _model()
        out = train_epochs(m, torch.optim.Adam(m.parameters(), 1e-2), 4, lambda e: (X, y),
                           Xv=X[:20], yv=y[:20], gen=torch.Generator().manual_seed(3))
        runs.append((out.history, [p.detach().clone() for p in m.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert [set(r) for r in runs[0][0]] == [{"epoch", "train_loss", "train_acc", "val_loss",
                                             "val_acc"}] * 4
    assert not m.training  # left in eval mode


def test_patience_restores_the_best_epoch():
    X, y = _data()
    Xv, yv = X[:30], 1 - y[:30]  # val labels flipped: val accuracy falls while training learns
    m = _model()
    seen = []
    out = train_epochs(m, torch.optim.Adam(m.parameters(), 5e-2), 50, lambda e: (X, y),
                       Xv=Xv, yv=yv, patience=3, gen=torch.Generator().manual_seed(0),
                       on_epoch=lambda r: seen.append(r) and None)
    best = max(out.history, key=lambda r: r["val_acc"])
    assert out.best_epoch == best["epoch"] and len(out.history) == out.best_epoch + 3 < 50
    m.eval()
    with torch.no_grad():
        restored = float((m(Xv).argmax(1) == yv).float().mean())
    assert restored == pytest.approx(best["val_acc"])
    assert seen == out.history


def test_on_epoch_true_stops_and_check_stop_cancels_mid_epoch():
    X, y = _data()
    m = _model()
    out = train_epochs(m, torch.optim.SGD(m.parameters(), 0.1), 20, lambda e: (X, y),
                       on_epoch=lambda r: r["epoch"] == 2)
    assert len(out.history) == 2 and out.best_epoch is None
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        train_epochs(m, torch.optim.SGD(m.parameters(), 0.1), 5, lambda e: (X, y), batch_size=8,
                     check_stop=stop)
    assert len(calls) == 2  # after the second batch, not at the end of an epoch


def test_freeze_bn_keeps_running_statistics():
    X, y = _data()
    m = _model()
    before = m[1].running_mean.clone()
    train_epochs(m, torch.optim.SGD(m.parameters(), 0.1), 2, lambda e: (X * 5 + 3, y),
                 freeze_bn=True)
    assert torch.equal(m[1].running_mean, before)
    train_epochs(m, torch.optim.SGD(m.parameters(), 0.1), 1, lambda e: (X * 5 + 3, y))
    assert not torch.equal(m[1].running_mean, before)
