"""Export a trained run to ONNX and safetensors; load it back without the ledger.

``export_run(ledger, run_id, folder)`` writes three files:

* ``model.onnx`` — normalised images ``(N, C, H, W)`` float32 -> class probabilities;
* ``model.safetensors`` — the weights as a plain state dict (no pickle);
* ``model.json`` — what the numbers mean: classes, input size, mean/std, resize policy,
  how to rebuild the model from the safetensors weights.

``load_exported(folder)`` returns a predictor (``predict_proba(list of PIL images)``)
that runs the ONNX model with ONNX Runtime, or rebuilds the torch model from the
safetensors weights (``backend="torch"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tlviz import onnxrt
from tlviz.backbones import create_backbone, get_backbone_spec
from tlviz.errors import BadInput
from tlviz.finetune import TorchPredictor, build_model, read_meta
from tlviz.heads import head_from_state
from tlviz.nets import FeatureNet
from tlviz.preprocess import Preprocess
from tlviz.runs import Ledger
from tlviz.train import FeaturePredictor, load_predictor

FORMAT = "tlviz-export/1"
PREPROCESSING = ("RGB (or L when grayscale); resize the shorter side to resize (input_size "
                 "when null; bilinear), centre crop input_size x input_size; pixels / 255; (x - mean) / std; "
                 "NCHW float32")


# ----------------------------------------------------------------------------- heads as torch


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


_HEAD_MODULES = {"logistic": _LogisticModule, "mlp": _MLPModule, "knn": _KNNModule}


class _Probabilities(nn.Module):
    """images -> probabilities: a backbone + a head module (or a model + softmax)."""

    def __init__(self, body: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x):
        z = self.body(x)
        return torch.softmax(z, 1) if self.head is None else self.head(z)


# ----------------------------------------------------------------------------- export


def export_run(ledger: Ledger, run_id: int, folder: str | os.PathLike,
               onnx: bool = True) -> dict[str, Path]:
    """Write ``model.onnx``, ``model.safetensors`` and ``model.json`` for a run into ``folder``."""
    from safetensors.numpy import save_file

    run = ledger.get_run(run_id)
    pred = load_predictor(ledger, run_id)
    classes = list(run["classes"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = run["config"]
    info: dict = {"format": FORMAT, "run_id": int(run_id), "classes": classes,
                  "mode": cfg.get("mode"), "dataset": cfg.get("dataset"),
                  "val_accuracy": run.get("val_accuracy"), "preprocessing": PREPROCESSING,
                  "onnx": {"input": "images", "output": "probabilities"}}
    if isinstance(pred, FeaturePredictor):
        prep = get_backbone_spec(pred.backbone).preprocess
        net = create_backbone(pred.backbone)
        head_mod = _HEAD_MODULES[pred.head_name](pred.head, len(classes))
        module = _Probabilities(net, head_mod)
        state = {f"net.{k}": v.detach().numpy() for k, v in net.state_dict().items()}
        state.update({f"head.{k}": np.asarray(v) for k, v in pred.head.get_state().items()})
        info["model"] = {"kind": "feature-extraction", "backbone": pred.backbone,
                         "head": pred.head_name, "head_params": pred.head_params}
    elif isinstance(pred, TorchPredictor):
        prep = pred.prep
        module = _Probabilities(pred.model)
        meta = read_meta(ledger.weights(run_id))
        prefix = "" if meta["arch"] == "fine-tune" else "model."  # FineTuned has net./head.
        state = {f"{prefix}{k}": v.detach().numpy() for k, v in pred.model.state_dict().items()}
        info["model"] = {"kind": "torch", "meta": meta}
    else:
        raise BadInput(f"run {run_id} cannot be exported ({type(pred).__name__})")
    info.update(input_size=prep.size, resize=prep.resize, mean=list(prep.mean), std=list(prep.std),
                grayscale=prep.grayscale, channels=prep.channels)
    paths = {"json": folder / "model.json", "safetensors": folder / "model.safetensors"}
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(paths["safetensors"]),
              metadata={"format": FORMAT})
    if onnx:
        paths["onnx"] = folder / "model.onnx"
        info["onnx"]["relative_error_vs_torch"] = onnxrt.export(
            module, paths["onnx"], channels=prep.channels, size=prep.size, output="probabilities")
    paths["json"].write_text(json.dumps(info, indent=2, default=str))
    return paths


# ----------------------------------------------------------------------------- load


class OnnxPredictor:
    """An exported ``model.onnx`` with its preprocessing: PIL images in, probabilities out."""

    def __init__(self, path: Path, info: dict):
        import onnxruntime as ort

        self.info, self.classes = info, list(info["classes"])
        self.prep = Preprocess(int(info["input_size"]), info.get("resize"), tuple(info["mean"]),
                               tuple(info["std"]), bool(info["grayscale"]))
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict_proba(self, images: list) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.classes)))
        x = np.stack([self.prep(im) for im in images]).astype(np.float32)
        return self.session.run(None, {"images": x})[0]

    def predict(self, images: list) -> np.ndarray:
        return self.predict_proba(images).argmax(1)


class _FeatureNetPredictor:
    """A frozen backbone (weights from the export) and a fitted head."""

    def __init__(self, net: FeatureNet, spec, head, classes: list[str]):
        self.net, self.spec, self.head, self.classes = net.eval(), spec, head, classes

    def predict_proba(self, images: list) -> np.ndarray:
        from tlviz.embed import embed_images

        proba = np.zeros((len(images), len(self.classes)))
        if len(images):
            X = embed_images(images, self.net, self.spec)
            proba[:, np.asarray(self.head.classes_).astype(int)] = self.head.predict_proba(X)
        return proba

    def predict(self, images: list) -> np.ndarray:
        return self.predict_proba(images).argmax(1)


def load_exported(folder: str | os.PathLike, backend: str = "auto"):
    """A predictor for an exported run: ONNX Runtime ("onnx"/"auto") or torch ("torch").

    The files are untrusted: anything wrong with them is a ValueError naming the folder.
    """
    folder = Path(folder)
    try:
        return _load_exported(folder, backend)
    except ValueError as e:
        if str(folder) in str(e):
            raise
        raise BadInput(f"{folder} is not a usable tlviz export: {e}") from e
    except Exception as e:  # noqa: BLE001 - safetensors, ONNX Runtime, torch: each its own errors
        raise BadInput(f"{folder} is not a usable tlviz export "
                         f"({type(e).__name__}: {str(e)[:300]})") from e


def _load_exported(folder: Path, backend: str):
    from safetensors.numpy import load_file

    try:
        info = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as e:
        raise BadInput(f"{folder} is not an exported tlviz model (model.json: {e})") from None
    if info.get("format") != FORMAT:
        raise BadInput(f"{folder}/model.json is not a {FORMAT} export")
    if backend not in ("auto", "onnx", "torch"):
        raise BadInput("backend must be auto, onnx or torch")
    onnx_path = folder / "model.onnx"
    if backend == "onnx" or (backend == "auto" and onnx_path.exists()):
        return OnnxPredictor(onnx_path, info)
    weights = load_file(str(folder / "model.safetensors"))
    classes, model = list(info["classes"]), info["model"]
    if model["kind"] == "torch":
        net_model, prep, net = build_model(model["meta"], weights, len(classes), pretrained=False)
        return TorchPredictor(net_model, prep, classes, feature_net=net)
    net = create_backbone(model["backbone"], pretrained=False)
    net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in weights.items()
                         if k.startswith("net.")})
    head = head_from_state(model["head"], model["head_params"],
                           {k[5:]: v for k, v in weights.items() if k.startswith("head.")})
    return _FeatureNetPredictor(net, get_backbone_spec(model["backbone"]), head, classes)


__all__ = ["OnnxPredictor", "export_run", "load_exported"]
