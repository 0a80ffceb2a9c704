"""tlviz.train: feature-extraction runs end to end on tiny data, rebuilt models, cancellation."""

from __future__ import annotations

import numpy as np
import pytest

from tlviz.data import scan_folder
from tlviz.heads import HEADS
from tlviz.metrics import accuracy
from tlviz.runs import Ledger
from tlviz.train import Cancelled, TrainConfig, load_predictor, train


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "runs.db")


@pytest.fixture
def data(tmp_path):
    from conftest import make_image_folder

    return scan_folder(make_image_folder(tmp_path / "squares", n_classes=3, per_class=10))


def _cfg(ds, head, **kw) -> TrainConfig:
    params = {"hidden": 16, "dropout": 0.0, "lr": 0.02} if head == "mlp" else {}
    return TrainConfig(dataset=ds.name, backbone="tiny_random", head=head, head_params=params,
                       epochs=4 if head == "mlp" else None, **kw)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_writes_a_complete_run(head, data, ledger):
    epochs, progress = [], []
    res = train(_cfg(data, head), dataset=data, ledger=ledger, on_epoch=epochs.append,
                progress=lambda d, t, m: progress.append((d, t)))
    assert res.status == "completed" and progress[-1] == (30, 30)
    for split in ("train", "val", "test"):
        idx, y_true, y_pred = res.predictions[split]
        assert np.array_equal(y_true, data.labels[idx])
        assert getattr(res, f"{split}_accuracy") == accuracy(y_true, y_pred)
    assert res.train_accuracy > 0.8  # coloured squares are learnable even from random features
    run = ledger.get_run(res.run_id)
    assert run["status"] == "completed" and run["error"] is None
    assert run["val_accuracy"] == res.val_accuracy and run["test_accuracy"] == res.test_accuracy
    assert run["classes"] == ["class0", "class1", "class2"] == res.classes
    assert np.array(run["confusion"]).shape == (3, 3)
    assert np.array(run["confusion"]).sum() == len(data.ensure_val().indices("val"))
    assert run["config"]["head"] == head and run["dataset_fingerprint"] == data.fingerprint
    assert run["timings"].keys() >= {"embed", "fit"} and run["seconds"] > 0
    hist = run["history"]
    assert len(hist) == (4 if head == "mlp" else 1) == len(res.history) == len(epochs)
    assert hist["val_acc"].notna().all()
    assert ledger.weights(res.run_id)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_load_predictor_predicts_like_the_trained_model(head, data, ledger):
    res = train(_cfg(data, head), dataset=data, ledger=ledger)
    images = [data.load(i) for i in range(0, 30, 4)]
    rebuilt = load_predictor(Ledger(ledger.path), res.run_id)
    assert rebuilt.classes == res.classes
    p = rebuilt.predict_proba(images)
    assert p.shape == (len(images), 3) and np.allclose(p.sum(1), 1)
    assert np.allclose(p, res.model.predict_proba(images), atol=1e-6)


def test_should_stop_cancels_and_records_it(data, ledger):
    seen = []
    with pytest.raises(Cancelled):
        train(_cfg(data, "mlp"), dataset=data, ledger=ledger, on_epoch=seen.append,
              should_stop=lambda: len(seen) >= 2)
    run = ledger.get_run(ledger.list_runs()["id"].iloc[0])
    assert run["status"] == "cancelled" and "Cancelled" in run["error"]
    assert len(run["history"]) == 2 and ledger.weights(run["id"]) is None
    with pytest.raises(ValueError, match="no stored weights.*cancelled"):
        load_predictor(ledger, run["id"])


def test_a_failing_run_is_recorded_as_failed(data, ledger):
    with pytest.raises(ValueError, match="unknown parameter"):
        train(TrainConfig(dataset="x", backbone="tiny_random", head="knn",
                          head_params={"neighbours": 3}), dataset=data, ledger=ledger)
    run = ledger.get_run(ledger.list_runs()["id"].iloc[0])
    assert run["status"] == "failed" and "neighbours" in run["error"]


def test_augmented_training_and_no_ledger(data):
    from tlviz.augment import AugmentConfig

    res = train(_cfg(data, "logistic", augment=AugmentConfig.book().to_dict()), dataset=data,
                ledger=None)
    assert res.run_id is None and 0 <= res.val_accuracy <= 1


def test_registered_dataset_by_name_and_unknown_mode():
    res = train(TrainConfig(dataset="digits", backbone="pixels", head="knn"), ledger=None)
    assert res.val_accuracy > 0.9 and res.test_accuracy > 0.9  # pixels do work on digits
    with pytest.raises(ValueError, match="unknown mode 'magic'"):
        train(TrainConfig(dataset="digits", backbone="pixels", mode="magic"), ledger=None)


@pytest.mark.parametrize("mode", ["feature-extraction", "pixels-mlp"])
def test_a_what_if_run_leaves_training_images_out_and_keeps_val(tmp_path, mode):
    from conftest import make_image_folder

    from tlviz.data import load_dataset
    from tlviz.runs import Ledger

    ds = load_dataset(str(make_image_folder(tmp_path / "w", n_classes=2, per_class=12, size=32,
                                            splits=("train", "val"))))
    led = Ledger(tmp_path / "runs.db")
    train_idx = ds.indices("train")
    val_idx = ds.indices("val")
    out = list(train_idx[:5]) + [int(val_idx[0])]  # a val image is never left out
    kw = {"epochs": 1} if mode != "feature-extraction" else {}
    base = train(TrainConfig(dataset="w", backbone="pixels", head="logistic", mode=mode, **kw),
                 dataset=ds, ledger=led)
    what_if = train(TrainConfig(dataset="w", backbone="pixels", head="logistic", mode=mode,
                                exclude=out, name="what-if", **kw), dataset=ds, ledger=led)
    assert what_if.counts()["train"] == base.counts()["train"] - 5
    assert what_if.counts()["val"] == base.counts()["val"] == len(val_idx)
    assert led.get_run(what_if.run_id)["config"]["exclude"] == sorted(int(i) for i in out)
    with pytest.raises(ValueError, match="image numbers"):
        train(TrainConfig(dataset="w", backbone="pixels", exclude=[10_000]), dataset=ds,
              ledger=None)
    with pytest.raises(ValueError, match="list of image numbers"):
        TrainConfig(exclude=["x"])
