"""ONNX in one place: export a torch module and check it against torch, cache the exported
file on disk (once per machine and home, under a lock, re-exported when damaged), keep one
ONNX Runtime session per file, and quantise to INT8.

Used by embedding (frozen backbones), fine-tuning (the frozen body) and export (a run's
whole model). torch and onnxruntime load on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tlviz import config
from tlviz.errors import TlvizError

if TYPE_CHECKING:
    import torch

TOLERANCE = 1e-4  # max |onnx - torch| relative to max |torch| on a random batch
_SESSIONS: dict[str, object] = {}
_SESSIONS_LOCK = threading.Lock()


class ExportMismatch(TlvizError, RuntimeError):
    """An exported model does not reproduce torch's output."""


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export(module: torch.nn.Module, path: Path, *, channels: int, size: int,
           output: str = "features", check: bool = True) -> float:
    """Export ``module`` (images -> ``output``) with a dynamic batch, written atomically.

    With ``check``, the file is compared with torch on a random batch and refused (nothing
    written) when the relative error reaches :data:`TOLERANCE`. Returns that error.
    """
    import torch

    module = module.eval()
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 4 - 2
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with torch.no_grad():
        torch.onnx.export(module, x, str(tmp), input_names=["images"], output_names=[output],
                          dynamic_axes={"images": {0: "batch"}, output: {0: "batch"}},
                          opset_version=17, dynamo=False)
    err = 0.0
    if check:
        import onnxruntime as ort

        with torch.no_grad():
            ref = module(x).numpy()
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
            None, {"images": x.numpy()})[0]
        err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))
        if err >= TOLERANCE:
            tmp.unlink()
            raise ExportMismatch(f"the ONNX export of {path.stem} differs from torch "
                                 f"(relative error {err:.2e})")
    os.replace(tmp, path)
    return err


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime session for ``path``, one per file and process."""
    import onnxruntime as ort

    key = str(path)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads or os.cpu_count() or 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            _SESSIONS[key] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return _SESSIONS[key]


def forget_sessions() -> None:
    """Drop every session (as after a restart; the next use reads the files again)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def cached_model(name: str, build: Callable[[], torch.nn.Module], *, channels: int, size: int,
                 variant: tuple[str, Callable[[Path], Path]] | None = None,
                 threads: int | None = None):
    """The session of a model exported once into the ONNX cache as ``<name>.onnx``.

    ``build`` makes the torch module (only called when the file is missing); ``variant``
    (a name and a function) derives another file from the exported one (e.g. INT8) and
    returns its path. A file
    that ONNX Runtime cannot load is exported again, once.
    """
    folder = config.cache_dir("onnx")
    path = folder / f"{name}.onnx"
    key = str(path) if variant is None else f"{path}|{variant[0]}"
    with _SESSIONS_LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
    with config.file_lock(folder / f"{name}.lock"):
        for attempt in range(2):
            if not path.exists():
                export(build(), path, channels=channels, size=size)
            target = variant[1](path) if variant is not None else path
            try:
                sess = session(target, threads)
                break
            except Exception:  # noqa: BLE001 - a damaged cached model: export it again, once
                if attempt:
                    raise
                path.unlink(missing_ok=True)
                if target != path:
                    target.unlink(missing_ok=True)
    with _SESSIONS_LOCK:
        _SESSIONS[key] = sess
    return sess


def quantize(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Static INT8 quantisation (QDQ) of an exported model, calibrated on ``calibration``
    (a (B, C, H, W) batch of preprocessed images); written atomically, once.

    (Dynamic quantisation was measured 50x slower than FP32 for these CNNs: ConvInteger.)
    """
    if dst.exists():
        return dst
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration[k:k + 16] for k in range(0, len(calibration), 16))

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {"images": np.ascontiguousarray(b)}

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    pre = dst.with_name(f".{dst.name}.{os.getpid()}.pre.onnx")
    try:
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(tmp, dst)
    finally:
        for p in (tmp, pre):
            p.unlink(missing_ok=True)
    return dst


def weights_tag(weights: Path | None) -> str:
    """A short tag of a weights file and the torch version: part of every cached model's name."""
    import hashlib

    import torch

    raw = f"{weights}:{weights.stat().st_size if weights else 0}:{torch.__version__}"
    return hashlib.sha256(raw.encode()).hexdigest()[:10]


__all__ = ["ExportMismatch", "available", "cached_model", "export", "forget_sessions",
           "quantize", "session", "weights_tag"]
