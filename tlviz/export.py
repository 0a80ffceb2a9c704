"""Export a trained run to ONNX and safetensors; load it back without the ledger.

``export_run(ledger, run_id, folder)`` writes three files:

* ``model.onnx`` — normalised images ``(N, C, H, W)`` float32 -> class probabilities;
* ``model.safetensors`` — the weights as a plain state dict (no pickle);
* ``model.json`` — what the numbers mean: classes, input size, mean/std, resize policy,
  how to rebuild the model from the safetensors weights.

The run's predictor writes the last two itself (:meth:`tlviz.predictors.Predictor.save`);
``load_exported(folder)`` returns a predictor that runs the ONNX model with ONNX Runtime
(:class:`OnnxPredictor`), or the rebuilt torch model (``backend="torch"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tlviz import onnxrt
from tlviz.predictors import Predictor, load
from tlviz.preprocess import Preprocess
from tlviz.runs import Ledger


def export_run(ledger: Ledger, run_id: int, folder: str | os.PathLike,
               onnx: bool = True) -> dict[str, Path]:
    """Write ``model.onnx``, ``model.safetensors`` and ``model.json`` for a run into ``folder``."""
    from tlviz.train import load_predictor

    run = ledger.get_run(run_id)
    pred = load_predictor(ledger, run_id)
    cfg = run["config"]
    paths = pred.save(folder, run_id=int(run_id), mode=cfg.get("mode"), dataset=cfg.get("dataset"),
                      val_accuracy=run.get("val_accuracy"),
                      onnx={"input": "images", "output": "probabilities"})
    if onnx:
        paths["onnx"] = Path(folder) / "model.onnx"
        p = pred.prep
        err = onnxrt.export(pred.probabilities_module(), paths["onnx"], channels=p.channels,
                            size=p.size, output="probabilities")
        info = json.loads(paths["json"].read_text())
        info["onnx"]["relative_error_vs_torch"] = err
        paths["json"].write_text(json.dumps(info, indent=2, default=str))
    return paths


class OnnxPredictor(Predictor):
    """An exported ``model.onnx`` with its preprocessing: PIL images in, probabilities out."""

    kind = "onnx"

    def __init__(self, path: Path, info: dict):
        import onnxruntime as ort

        self.info, self.classes = info, list(info["classes"])
        self._prep = Preprocess(int(info["input_size"]), info.get("resize"), tuple(info["mean"]),
                                tuple(info["std"]), bool(info["grayscale"]))
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    @classmethod
    def from_state(cls, description, state, classes, folder=None) -> OnnxPredictor:
        return cls(Path(folder) / "model.onnx", description)

    @property
    def prep(self) -> Preprocess:
        return self._prep

    def predict_proba(self, images: list) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.classes)))
        return self.session.run(None, {"images": self.batch(images)})[0]


def load_exported(folder: str | os.PathLike, backend: str = "auto") -> Predictor:
    """A predictor for an exported run: ONNX Runtime ("onnx"/"auto") or torch ("torch")."""
    return load(folder, backend)


__all__ = ["OnnxPredictor", "export_run", "load_exported"]
