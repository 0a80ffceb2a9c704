"""Training modes pixels-mlp, scratch-cnn and fine-tune on tiny generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_image_folder

from tlviz.backbones import create_backbone
from tlviz.data import load_dataset
from tlviz.finetune import read_meta
from tlviz.options import FineTuneOptions
from tlviz.runs import Ledger
from tlviz.train import Cancelled, TrainConfig, load_predictor, train

MODES = ["pixels-mlp", "scratch-cnn", "fine-tune"]
FIELDS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("ft") / "tiny", n_classes=3, per_class=16,
                             size=32, seed=3)
    return load_dataset(str(root))


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "runs.db")


def _cfg(mode, **kw):
    extra = {"image_size": 32} if mode == "scratch-cnn" else {}
    extra.update(kw.pop("extra", {}))
    return TrainConfig(dataset="tiny", backbone="tiny_random", mode=mode, extra=extra,
                       epochs=kw.pop("epochs", 3), **kw)


@pytest.mark.parametrize("mode", MODES)
def test_mode_logs_epochs_stores_weights_and_reloads(mode, tiny, ledger):
    r = train(_cfg(mode), dataset=tiny, ledger=ledger)
    assert r.history and all(FIELDS <= set(rec) for rec in r.history)
    hist = ledger.history(r.run_id)
    assert list(hist["epoch"]) == [rec["epoch"] for rec in r.history]
    assert hist["val_acc"].notna().all() and hist["train_loss"].notna().all()
    run = ledger.get_run(r.run_id)
    assert run["status"] == "completed" and run["val_accuracy"] == pytest.approx(r.val_accuracy)
    assert read_meta(ledger.weights(r.run_id))["arch"] == mode
    images = [tiny.load(int(i)) for i in tiny.indices("val")]
    p_mem = r.model.predict_proba(images)
    p_led = load_predictor(ledger, r.run_id).predict_proba(images)
    assert p_mem.shape == (len(images), 3)
    np.testing.assert_allclose(p_led, p_mem, atol=1e-5)
    np.testing.assert_allclose(p_mem.sum(1), 1, atol=1e-5)
    # the recorded val predictions are the model's (no augmentation at evaluation time)
    idx, _, y_pred = r.predictions["val"]
    assert np.array_equal(y_pred, p_mem.argmax(1))


@pytest.mark.parametrize("mode", MODES)
def test_seeded_determinism(mode, tiny):
    aug = {"horizontal_flip": True, "rotation_range": 20}
    a = train(_cfg(mode, seed=1, augment=aug), dataset=tiny, ledger=None)
    b = train(_cfg(mode, seed=1, augment=aug), dataset=tiny, ledger=None)
    c = train(_cfg(mode, seed=2, augment=aug), dataset=tiny, ledger=None)
    assert a.history == b.history
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def test_scratch_cnn_learns_separable_images(tmp_path):
    root = make_image_folder(tmp_path / "sep", n_classes=2, per_class=30, size=32, seed=1)
    ds = load_dataset(str(root))
    r = train(_cfg("scratch-cnn", epochs=15, extra={"lr": 3e-3}), dataset=ds, ledger=None)
    assert r.train_accuracy >= 0.9 and r.val_accuracy >= 0.8
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]


def test_cancellation_marks_run_cancelled(tiny, ledger):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        train(_cfg("scratch-cnn", epochs=50), dataset=tiny, ledger=ledger, should_stop=stop)
    runs = ledger.list_runs()
    assert runs.iloc[0]["status"] == "cancelled"


def test_early_stopping_restores_best_epoch(tiny):
    r = train(_cfg("pixels-mlp", epochs=40, extra={"patience": 2, "lr": 0.05}), dataset=tiny,
              ledger=None)
    vals = [h["val_acc"] for h in r.history]
    assert len(vals) < 40  # stopped early
    assert r.val_accuracy == pytest.approx(max(vals))


def test_fine_tune_trains_only_the_tail_and_keeps_bn_statistics(tiny):
    r = train(_cfg("fine-tune", epochs=2, extra={"lr": 1e-2}), dataset=tiny, ledger=None)
    ref, net = create_backbone("tiny_random"), r.model.feature_net
    assert r.history[0]["epoch"] == 0  # phase 1: the head on frozen features
    a, b = ref.state_dict(), net.state_dict()
    last = len(ref.stages) - 1
    for k in a:
        if "running_" in k or not k.startswith(f"stages.{last}."):
            assert torch.equal(a[k], b[k]), f"{k} changed"
    assert not torch.equal(a[f"stages.{last}.0.weight"], b[f"stages.{last}.0.weight"])
    # two trainable blocks: the block before the last one changes too
    r2 = train(_cfg("fine-tune", epochs=1, extra={"lr": 1e-2, "n_trainable_blocks": 2}),
               dataset=tiny, ledger=None)
    assert not torch.equal(a[f"stages.{last - 1}.0.weight"],
                           r2.model.feature_net.state_dict()[f"stages.{last - 1}.0.weight"])


@pytest.mark.parametrize("extra,message", [
    ({"n_trainable_blocks": 9}, "n_trainable_blocks"),
    ({"n_trainable_blocks": 0}, "n_trainable_blocks"),
    ({"learning_rate": 0.1}, "unknown option"),
    ({"optimizer": "adagrad"}, "optimizer"),
])
def test_bad_options_give_clear_errors(tiny, extra, message):
    with pytest.raises(ValueError, match=message):
        train(_cfg("fine-tune", extra=extra), dataset=tiny, ledger=None)


def test_fine_tune_needs_a_backbone_with_blocks(tiny):
    with pytest.raises(ValueError, match="no blocks"):
        train(TrainConfig(backbone="pixels", mode="fine-tune", epochs=1), dataset=tiny, ledger=None)


def test_scratch_image_size_must_fit_the_pooling(tiny):
    with pytest.raises(ValueError, match="multiple of 16"):
        train(_cfg("scratch-cnn", extra={"image_size": 40}), dataset=tiny, ledger=None)


def test_defaults_follow_the_book():
    ft = FineTuneOptions()
    assert (ft.optimizer, ft.lr, ft.n_trainable_blocks) == ("rmsprop", 1e-5, 1)


def test_unreadable_image_is_skipped(tmp_path):
    root = make_image_folder(tmp_path / "bad", n_classes=2, per_class=10, size=32)
    (root / "class0" / "broken.png").write_bytes(b"not an image")
    ds = load_dataset(str(root))
    r = train(_cfg("scratch-cnn", epochs=1), dataset=ds, ledger=None)
    assert r.val_accuracy is not None


@pytest.mark.slow
def test_fine_tune_real_weights_mobilenet(tiny_folder):
    ds = load_dataset(str(tiny_folder))
    try:
        r = train(TrainConfig(backbone="mobilenet_v2", mode="fine-tune", epochs=1, augment={}),
                  dataset=ds, ledger=None)
    except Exception as e:  # noqa: BLE001
        from tlviz.backbones import WeightsUnavailable

        if isinstance(e, WeightsUnavailable):
            pytest.skip(f"real-weights tier: {e}")
        raise
    feats = r.model.feature_net(torch.zeros(1, 3, 224, 224))
    assert feats.shape == (1, 1280)
    assert r.val_accuracy >= 0.6


def test_feature_extraction_with_augmentation_adds_seeded_views(tiny):
    aug = {"horizontal_flip": True, "rotation_range": 30}
    cfg = TrainConfig(backbone="tiny_random", head="knn", augment=aug, extra={"augment_views": 2})
    a = train(cfg, dataset=tiny, ledger=None)
    b = train(cfg, dataset=tiny, ledger=None)
    n_train = len(tiny.indices("train"))
    X = a.model.head.X_
    assert X.shape[0] == 3 * n_train  # the plain images + two augmented views
    np.testing.assert_array_equal(X, b.model.head.X_)
    assert not np.allclose(X[n_train:2 * n_train], X[:n_train])
