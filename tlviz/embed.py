"""Embeddings: batched, cached extraction of pooled penultimate features.

Frozen backbones run through ONNX Runtime by default (exported once, checked against
torch, cached as ``.onnx``); torch is the fallback and runs anything trained. Decoding
(JPEG at reduced scale) overlaps inference in worker threads, and features stream to
a memory-mapped file, so memory stays bounded for any dataset size.

>>> from tlviz.data import load_dataset
>>> emb = embed(load_dataset("digits"), "pixels")
>>> emb.features.shape
(1797, 1024)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tlviz import config, onnxrt
from tlviz.backbones import BackboneSpec, create_backbone, get_backbone_spec
from tlviz.data import ImageDataset
from tlviz.errors import BadInput, UnknownName
from tlviz.preprocess import Preprocess

if TYPE_CHECKING:  # torch loads on first use: a cache hit never imports it
    import torch

    from tlviz.nets import FeatureNet

Progress = Callable[[int, int, str], None]
CACHE_VERSION = "e1"


@dataclass
class Embeddings:
    """Features for every image of a dataset (rows align with the dataset)."""

    features: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    classes: list[str]
    backbone: str
    key: str
    valid: np.ndarray
    seconds: float = 0.0
    from_cache: bool = False
    failed: list[tuple[int, str]] = field(default_factory=list)

    def split(self, name: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of one split (all valid rows for None)."""
        m = self.valid if name is None else self.valid & (self.splits == name)
        return np.asarray(self.features[m]), self.labels[m]

    def indices(self, name: str | None = None) -> np.ndarray:
        m = self.valid if name is None else self.valid & (self.splits == name)
        return np.flatnonzero(m)


def cache_key(dataset: ImageDataset, spec: BackboneSpec, variant: str = "") -> str:
    weights = spec.weights()
    wid = f"{weights.name}:{weights.stat().st_size}" if weights else spec.source
    raw = "|".join([CACHE_VERSION, dataset.fingerprint, spec.name, spec.preprocessing_key, wid, variant])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _digest_file(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_cache(npy: Path, meta_path: Path, n: int) -> tuple[np.ndarray, dict] | None:
    """The cached array if it is complete and uncorrupted, else None (and the files go)."""
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("rows") != n or _digest_file(npy) != meta.get("digest"):
            raise BadInput("cache does not match")
        arr = np.load(npy, mmap_mode="r")
        if arr.shape[0] != n:
            raise BadInput("wrong shape")
        return arr, meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged in any way
        for p in (npy, meta_path):
            with contextlib.suppress(OSError):
                p.unlink()
        return None


def embed(dataset: ImageDataset, backbone: str = "mobilenet_v2", *, backend: str = "auto",
          batch_size: int = 32, progress: Progress | None = None, cache: bool = True,
          int8: bool = False) -> Embeddings:
    """Features for every image of ``dataset`` through ``backbone``, cached on disk.

    ``backend``: "onnx", "torch" or "auto" (ONNX Runtime when available). A repeated call
    returns from the cache; concurrent callers (threads or processes) compute once.
    """
    spec = get_backbone_spec(backbone)
    key = cache_key(dataset, spec, "int8" if int8 else "")
    folder = config.cache_dir("embeddings")
    npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    t0 = time.perf_counter()
    if cache:
        with config.file_lock(folder / f"{key}.lock"):
            hit = _read_cache(npy, meta_path, len(dataset)) if npy.exists() else None
            if hit is None:
                _compute_to(npy, meta_path, dataset, spec, backend, batch_size, progress, int8)
                hit = _read_cache(npy, meta_path, len(dataset))
                from_cache = False
            else:
                from_cache = True
        arr, meta = hit
    else:
        arr = np.empty((len(dataset), spec.feature_dim), np.float32)
        meta = {"failed": _extract(arr, dataset, spec, backend, batch_size, progress, int8)}
        from_cache = False
    failed = [(int(i), r) for i, r in meta.get("failed", [])]
    valid = np.ones(len(dataset), bool)
    valid[[i for i, _ in failed]] = False
    if progress and from_cache:
        progress(len(dataset), len(dataset), "from cache")
    return Embeddings(arr, dataset.labels, dataset.splits, list(dataset.classes), backbone, key,
                      valid, time.perf_counter() - t0, from_cache, failed)


def _compute_to(npy: Path, meta_path: Path, dataset, spec, backend, batch_size, progress, int8):
    tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.{threading.get_ident()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                    shape=(len(dataset), spec.feature_dim))
    try:
        failed = _extract(out, dataset, spec, backend, batch_size, progress, int8)
        out.flush()
        del out
        meta = {"rows": len(dataset), "backbone": spec.name, "digest": _digest_file(tmp),
                "failed": failed, "created": time.time()}
        os.replace(tmp, npy)
        meta_tmp = meta_path.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(meta))
        os.replace(meta_tmp, meta_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


# ----------------------------------------------------------------------------- decoding


def _decode(dataset: ImageDataset, prep: Preprocess, idx: np.ndarray):
    """Preprocessed batch (B, C, H, W) and the failures [(i, reason)] within it."""
    s, c = prep.size, prep.channels
    raw = np.zeros((len(idx), s, s, c), np.uint8)
    failed, bad = [], []
    for j, i in enumerate(idx):
        try:
            raw[j] = prep.pixels(dataset.load(int(i), size=prep.load_size)).reshape(s, s, c)
        except Exception as e:  # noqa: BLE001 - one bad image must not stop the rest
            failed.append((int(i), str(e) or type(e).__name__))
            bad.append(j)
    batch = prep.normalise(raw)
    batch[bad] = 0.0
    return batch, failed


def iter_batches(dataset: ImageDataset, prep: Preprocess | BackboneSpec, batch_size: int = 32,
                 indices: np.ndarray | None = None, workers: int = 2):
    """Yield (indices, batch, failures), decoding ahead in threads while the caller infers."""
    prep = prep.preprocess if isinstance(prep, BackboneSpec) else prep
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    chunks = [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    sub = max(1, batch_size // workers)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        def submit(chunk):
            return [ex.submit(_decode, dataset, prep, chunk[k:k + sub])
                    for k in range(0, len(chunk), sub)]

        pending = [submit(c) for c in chunks[:2]]
        for n, chunk in enumerate(chunks):
            parts = [f.result() for f in pending.pop(0)]
            if n + 2 < len(chunks):
                pending.append(submit(chunks[n + 2]))
            yield chunk, np.concatenate([p[0] for p in parts]), [x for p in parts for x in p[1]]


# ----------------------------------------------------------------------------- backends

def export_onnx(net: torch.nn.Module, spec: BackboneSpec, path: Path, check: bool = True) -> float:
    """Export a backbone (images -> features) to ONNX; see :func:`tlviz.onnxrt.export`."""
    return onnxrt.export(net, path, channels=spec.channels, size=spec.input_size, check=check)


def onnx_session(spec: BackboneSpec, int8: bool = False, calibration: np.ndarray | None = None):
    """The ONNX Runtime session of a frozen pretrained backbone (exported on first use).

    ``int8``: statically quantised (int8 weights per channel, uint8 activations with ranges
    from ``calibration``, a (B, C, H, W) batch of preprocessed images), which runs on the
    CPU's integer dot-product units (VNNI) where there are some.
    """
    if int8 and calibration is None:
        raise BadInput("int8 needs a calibration batch of preprocessed images")
    name = f"{spec.name}-{onnxrt.weights_tag(spec.weights())}"
    variant = None
    if int8:
        calib = hashlib.blake2b(calibration.tobytes(), digest_size=6).hexdigest()
        variant = (f"int8-{calib}", lambda fp32: onnxrt.quantize(
            fp32, fp32.with_name(f"{name}-int8-{calib}.onnx"), calibration))
    return onnxrt.cached_model(name, lambda: create_backbone(spec.name), channels=spec.channels,
                               size=spec.input_size, variant=variant)


def _runner(spec: BackboneSpec, backend: str, int8: bool,
            calibration: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    if spec.source == "none":
        return lambda b: b.reshape(len(b), -1)  # pixels: no network at all
    if backend == "auto":
        backend = "onnx" if onnxrt.available() else "torch"
    if int8 and backend != "onnx":
        raise BadInput("int8 runs on ONNX Runtime only (backend='onnx' or 'auto')")
    if backend == "onnx":
        sess = onnx_session(spec, int8, calibration)
        return lambda b: sess.run(None, {"images": b})[0]
    if backend != "torch":
        raise UnknownName(f"unknown backend {backend!r}: use onnx, torch or auto")
    net = create_backbone(spec.name)
    return lambda b: torch_features(net, b)


def torch_features(net: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(batch)).numpy()


def _extract(out: np.ndarray, dataset, spec, backend, batch_size, progress, int8) -> list:
    calibration = None
    if int8 and spec.source != "none":  # activation ranges from up to 64 of the dataset's images
        pick = np.unique(np.linspace(0, len(dataset) - 1, min(64, len(dataset))).astype(int))
        calibration = _decode(dataset, spec.preprocess, pick)[0]
    if progress:  # the first use of a backbone builds its ONNX file before any image runs
        progress(0, len(dataset), f"preparing {spec.name} (first use: ONNX export)")
    run = _runner(spec, backend, int8, calibration)
    if progress:
        progress(0, len(dataset), f"embedding with {spec.name}")
    failed: list[tuple[int, str]] = []
    done = 0
    for idx, batch, bad in iter_batches(dataset, spec, batch_size):
        out[idx] = run(batch)
        if bad:
            out[[i for i, _ in bad]] = 0.0
            failed += bad
        done += len(idx)
        if progress:
            progress(done, len(dataset), f"embedding with {spec.name}")
    return failed


def embed_images(images: list, backbone: str | FeatureNet, spec: BackboneSpec | None = None,
                 backend: str = "auto") -> np.ndarray:
    """Features of a few PIL images (e.g. an upload to predict), frozen or trained backbone."""
    if isinstance(backbone, str):
        spec = get_backbone_spec(backbone)
        run = _runner(spec, backend, False)
    else:
        net = backbone.eval()
        run = lambda b: torch_features(net, b)  # noqa: E731
    batch = np.stack([spec.preprocess(im) for im in images]).astype(np.float32)
    return run(batch)


__all__ = ["Embeddings", "embed", "embed_images", "export_onnx", "iter_batches", "onnx_session",
           "torch_features"]
