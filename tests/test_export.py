"""Export to ONNX + safetensors and load back without the ledger."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image_folder

from tlviz.data import load_dataset
from tlviz.export import export_run, load_exported
from tlviz.predictors import Predictor
from tlviz.runs import Ledger
from tlviz.train import TrainConfig, load_predictor, train

CASES = [
    ("feature-extraction", "tiny_random", "logistic"),
    ("feature-extraction", "tiny_random", "knn"),
    ("feature-extraction", "pixels", "mlp"),
    ("pixels-mlp", "tiny_random", "logistic"),
    ("scratch-cnn", "tiny_random", "logistic"),
    ("fine-tune", "tiny_random", "logistic"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("exp")
    root = make_image_folder(base / "tiny", n_classes=3, per_class=10, size=32, seed=7)
    return load_dataset(str(root)), Ledger(base / "runs.db")


@pytest.mark.parametrize("mode,backbone,head", CASES)
def test_export_round_trip(mode, backbone, head, setup, tmp_path):
    ds, led = setup
    extra = {"image_size": 32} if mode == "scratch-cnn" else {}
    r = train(TrainConfig(dataset="tiny", backbone=backbone, head=head, mode=mode, epochs=2,
                          extra=extra), dataset=ds, ledger=led)
    # every mode's run has its val calibration error; only logistic and MLP heads a temperature
    assert 0 <= r.val_ece <= 1 and sum(b["count"] for b in r.reliability) == r.counts()["val"]
    assert (r.temperature is not None) == (mode == "feature-extraction" and head != "knn")
    images = [ds.load(i) for i in range(6)]
    assert isinstance(r.model, Predictor)  # the one protocol, whatever the mode
    np.testing.assert_allclose(r.model.predict_proba(images),
                               load_predictor(led, r.run_id).predict_proba(images), atol=1e-5)
    ref = load_predictor(led, r.run_id).predict_proba(images)
    paths = export_run(led, r.run_id, tmp_path / "model")
    assert {p.name for p in paths.values()} == {"model.onnx", "model.safetensors", "model.json"}
    info = json.loads(paths["json"].read_text())
    assert info["classes"] == ds.classes and info["input_size"] > 0
    assert len(info["mean"]) == len(info["std"]) == info["channels"]
    led.delete([r.run_id])  # nothing below may need the ledger
    for backend in ("onnx", "torch"):
        pred = load_exported(tmp_path / "model", backend=backend)
        got = pred.predict_proba(images)
        assert got.shape == (6, 3)
        np.testing.assert_allclose(got, ref, atol=1e-4)
        assert list(pred.classes) == ds.classes and isinstance(pred, Predictor)
        assert (pred.predict(images) == got.argmax(1)).all()


@pytest.mark.parametrize("head", ["logistic", "mlp"])
def test_export_keeps_the_temperature(head, setup, tmp_path):
    """A temperature other than 1 is in the exported model: ONNX = the run's predictor."""
    ds, led = setup
    backbone = "pixels" if head == "mlp" else "tiny_random"
    runs = {t: train(TrainConfig(dataset="tiny", backbone=backbone, head=head, epochs=3,
                                 head_params={"temperature": t}), dataset=ds, ledger=led)
            for t in (1.0, 2.5)}
    assert runs[2.5].temperature == 2.5 and led.get_run(runs[2.5].run_id)["temperature"] == 2.5
    images = [ds.load(i) for i in range(6)]
    ref = load_predictor(led, runs[2.5].run_id).predict_proba(images)
    plain = load_predictor(led, runs[1.0].run_id).predict_proba(images)
    assert np.array_equal(ref.argmax(1), plain.argmax(1)) and not np.allclose(ref, plain, atol=1e-3)
    export_run(led, runs[2.5].run_id, tmp_path / "model")
    for backend in ("onnx", "torch"):
        got = load_exported(tmp_path / "model", backend=backend).predict_proba(images)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_safetensors_only_export_loads_with_torch(setup, tmp_path):
    ds, led = setup
    r = train(TrainConfig(dataset="tiny", backbone="tiny_random", mode="scratch-cnn", epochs=1,
                          extra={"image_size": 32}), dataset=ds, ledger=led)
    paths = export_run(led, r.run_id, tmp_path / "m", onnx=False)
    assert "onnx" not in paths
    pred = load_exported(tmp_path / "m")  # no model.onnx: rebuilt from safetensors
    assert pred.predict_proba([ds.load(0)]).shape == (1, 3)


def test_load_exported_refuses_other_folders(tmp_path):
    with pytest.raises(ValueError, match="not an exported tlviz model"):
        load_exported(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="tlviz-export"):
        load_exported(tmp_path)
