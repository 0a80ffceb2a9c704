"""The one predictor protocol: images in, probabilities out, saved as safetensors + JSON.

Every training mode returns a :class:`Predictor` (``ModeOutput.model``), the ledger's
loader rebuilds one (:func:`tlviz.train.load_predictor`), the Predict page calls it, and
export writes it (:mod:`tlviz.export`). A predictor knows:

* ``classes`` and ``prep`` (its :class:`tlviz.preprocess.Preprocess`);
* ``predict_proba(images)`` — PIL images -> ``(n, len(classes))`` probabilities;
  ``predict(images)`` — the most probable class index; ``votes()`` — k for a kNN head
  (its probabilities are vote shares), else None;
* ``describe()`` (JSON) and ``state()`` (named numpy arrays): everything needed to rebuild
  it without the ledger or the network, reloaded by the kind's ``from_state``;
* ``probabilities_module()`` — the same computation as one torch module, for ONNX export.

Kinds are registered by ``"module:Class"`` and imported on first use (no torch at import).
Nothing is ever unpickled: weights are safetensors, descriptions JSON.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlviz.errors import BadInput

if TYPE_CHECKING:
    from tlviz.preprocess import Preprocess

FORMAT = "tlviz-export/1"
PREPROCESSING = ("RGB (or L when grayscale); resize the shorter side to resize (input_size "
                 "when null; bilinear), centre crop input_size x input_size; pixels / 255; "
                 "(x - mean) / std; NCHW float32")
KINDS: dict[str, str] = {
    "feature-extraction": "tlviz.train:FeaturePredictor",
    "torch": "tlviz.finetune:TorchPredictor",
    "onnx": "tlviz.export:OnnxPredictor",
}


class Predictor:
    """Base of every predictor; subclasses set ``kind``, ``classes`` and ``prep``."""

    kind: str = ""
    classes: list[str]

    @property
    def prep(self) -> Preprocess:
        raise NotImplementedError

    def predict_proba(self, images: list) -> np.ndarray:
        raise NotImplementedError

    def batch(self, images: list) -> np.ndarray:
        """PIL images -> the model's input, ``(n, C, H, W)`` float32 (by ``prep``)."""
        return np.stack([self.prep(im) for im in images]).astype(np.float32)

    def predict(self, images: list) -> np.ndarray:
        """Index of the most probable class for each image."""
        return self.predict_proba(images).argmax(1)

    def votes(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        """JSON-able description from which ``from_state`` rebuilds the model."""
        raise BadInput(f"a {type(self).__name__} cannot be saved")

    def state(self) -> dict[str, np.ndarray]:
        """All weights needed to rebuild the predictor (nothing downloaded, nothing pretrained)."""
        raise BadInput(f"a {type(self).__name__} cannot be saved")

    def probabilities_module(self):
        """A torch module: normalised images (N, C, H, W) -> probabilities (N, len(classes))."""
        raise BadInput(f"a {type(self).__name__} cannot be exported")

    @classmethod
    def from_state(cls, description: dict, state: dict[str, np.ndarray], classes: list[str],
                   folder: Path | None = None) -> Predictor:
        raise NotImplementedError

    def save(self, folder: str | os.PathLike, **info: Any) -> dict[str, Path]:
        """Write ``model.safetensors`` and ``model.json`` (with ``info``) into ``folder``."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        p = self.prep
        doc = {"format": FORMAT, **info, "classes": list(self.classes), "model": self.describe(),
               "preprocessing": PREPROCESSING, "input_size": p.size, "resize": p.resize,
               "mean": list(p.mean), "std": list(p.std), "grayscale": p.grayscale,
               "channels": p.channels}
        paths = {"json": folder / "model.json", "safetensors": folder / "model.safetensors"}
        save_file({k: np.ascontiguousarray(v) for k, v in self.state().items()},
                  str(paths["safetensors"]), metadata={"format": FORMAT})
        paths["json"].write_text(json.dumps(doc, indent=2, default=str))
        return paths


def kind_class(kind: str) -> type[Predictor]:
    try:
        module, _, name = KINDS[kind].partition(":")
    except (KeyError, TypeError):
        raise BadInput(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}") from None
    return getattr(importlib.import_module(module), name)


def read_info(folder: Path) -> dict:
    """A saved predictor's ``model.json``, checked to be ours."""
    try:
        info = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as e:
        raise BadInput(f"{folder} is not an exported tlviz model (model.json: {e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise BadInput(f"{folder}/model.json is not a {FORMAT} export")
    return info


def load(folder: str | os.PathLike, backend: str = "auto") -> Predictor:
    """A saved predictor: ONNX Runtime (``"onnx"``, or ``"auto"`` when ``model.onnx`` is
    there) or rebuilt from the safetensors weights (``"torch"``).

    The files are untrusted: anything wrong with them is a BadInput naming the folder.
    """
    folder = Path(folder)
    if backend not in ("auto", "onnx", "torch"):
        raise BadInput("backend must be auto, onnx or torch")
    info = read_info(folder)
    try:
        if backend == "onnx" or (backend == "auto" and (folder / "model.onnx").exists()):
            return kind_class("onnx").from_state(info, {}, list(info["classes"]), folder)
        from safetensors.numpy import load_file

        weights = load_file(str(folder / "model.safetensors"))
        model = info["model"]
        return kind_class(model["kind"]).from_state(model, weights, list(info["classes"]), folder)
    except BadInput as e:
        if str(folder) in str(e):
            raise
        raise BadInput(f"{folder} is not a usable tlviz export: {e}") from e
    except Exception as e:  # noqa: BLE001 - safetensors, ONNX Runtime, torch: each its own errors
        raise BadInput(f"{folder} is not a usable tlviz export "
                       f"({type(e).__name__}: {str(e)[:300]})") from e


__all__ = ["FORMAT", "KINDS", "Predictor", "kind_class", "load", "read_info"]
