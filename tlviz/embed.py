"""Embeddings: batched, cached extraction of pooled penultimate features.

Frozen backbones run through ONNX Runtime by default (exported once, checked against
torch, cached as ``.onnx``); torch is the fallback and runs anything trained. Decoding
(JPEG at reduced scale) overlaps inference in worker threads, and features stream to
a memory-mapped file, so memory stays bounded for any dataset size.

``engine="ray"`` runs the same decode + preprocess + ONNX Runtime embedder in Ray Data
actors (:mod:`tlviz.rayembed`) and writes Parquet shards under the same cache key; the
loader reads either format, so each engine's output is a cache hit for the other.

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
    """The cached array if it is complete and uncorrupted, else None (and the files go).

    The metadata ends with the array's digest, so damage near the end of the JSON (where a
    flipped digit of the timestamp could still parse) breaks the digest check instead."""
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


ENGINES = ("local", "ray")


def cache_paths(key: str) -> tuple[Path, Path, Path]:
    """(memmap .npy, its .json metadata, Parquet shards folder) of one embedding cache key."""
    folder = config.cache_dir("embeddings")
    return folder / f"{key}.npy", folder / f"{key}.json", folder / f"{key}.parquet"


def is_cached(dataset: ImageDataset, backbone: str, int8: bool = False) -> bool:
    """True when either engine's output for these features is on disk (complete)."""
    npy, meta, shards = cache_paths(cache_key(dataset, get_backbone_spec(backbone),
                                              "int8" if int8 else ""))
    return (npy.exists() and meta.exists()) or (shards / SHARDS_META).exists()


def embed(dataset: ImageDataset, backbone: str = "mobilenet_v2", *, backend: str = "auto",
          batch_size: int = 32, progress: Progress | None = None, cache: bool = True,
          int8: bool = False, engine: str = "local", address: str | None = None,
          actors: int | None = None) -> Embeddings:
    """Features for every image of ``dataset`` through ``backbone``, cached on disk.

    ``backend``: "onnx", "torch" or "auto" (ONNX Runtime when available). A repeated call
    returns from the cache; concurrent callers (threads or processes) compute once.
    ``engine``: "local" (threads + one session, a memmap cache) or "ray" (Ray Data actors,
    Parquet shards; ``address`` of a running cluster, else a local one starts; ``actors``
    in the pool). Either engine's cache serves both.
    """
    if engine not in ENGINES:
        raise UnknownName(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    spec = get_backbone_spec(backbone)
    key = cache_key(dataset, spec, "int8" if int8 else "")
    npy, meta_path, shards = cache_paths(key)
    t0 = time.perf_counter()
    if cache:
        with config.file_lock(npy.with_suffix(".lock")):
            hit = _read_any(npy, meta_path, shards, len(dataset))
            from_cache = hit is not None
            if hit is None:
                if engine == "ray":
                    if int8:
                        raise BadInput("int8 runs on the local engine only")
                    from tlviz import rayembed

                    rayembed.embed_to(shards, dataset, spec.name, backend=backend,
                                      batch_size=batch_size, address=address, actors=actors,
                                      progress=progress)
                else:
                    _compute_to(npy, meta_path, dataset, spec, backend, batch_size, progress, int8)
                hit = _read_any(npy, meta_path, shards, len(dataset))
                if hit is None:
                    raise BadInput(f"the {engine} engine wrote no readable cache for {key}")
        arr, meta = hit
    else:
        if engine == "ray":
            raise BadInput("the ray engine writes to the cache: use cache=True")
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


def _read_any(npy: Path, meta_path: Path, shards: Path, n: int) -> tuple[np.ndarray, dict] | None:
    """The local engine's memmap if there, else the Ray engine's Parquet shards, else None."""
    if npy.exists():
        hit = _read_cache(npy, meta_path, n)
        if hit is not None:
            return hit
    if (shards / SHARDS_META).exists():
        try:
            return read_shards(shards, n)
        except (OSError, ValueError, KeyError, TypeError, BadInput):  # damaged: recompute
            import shutil

            shutil.rmtree(shards, ignore_errors=True)
    return None


# ----------------------------------------------------------------------------- Parquet shards

SHARDS_META = "_tlviz.json"  # written last: its presence marks a complete set of shards


def shard_table(ids, paths, labels, splits, features: np.ndarray, errors=None):
    """One Parquet shard's Arrow table: ``id, path, label, split, embedding`` (Arrow's
    ``arrow.fixed_shape_tensor`` extension type) and ``error`` (null when the image read)."""
    import pyarrow as pa

    feats = np.ascontiguousarray(features, dtype=np.float32)
    return pa.table({
        "id": pa.array(np.asarray(ids, np.int64)),
        "path": pa.array([str(p) for p in paths], pa.string()),
        "label": pa.array(np.asarray(labels, np.int64)),
        "split": pa.array([str(s) for s in splits], pa.string()),
        "embedding": pa.FixedShapeTensorArray.from_numpy_ndarray(feats),
        "error": pa.array(list(errors) if errors is not None else [None] * len(feats), pa.string()),
    })


def finish_shards(folder: Path, rows: int, backbone: str, engine: str, **extra) -> None:
    """Mark a folder of shards complete (after checking it holds ``rows`` rows)."""
    import pyarrow.dataset as pads

    got = pads.dataset(folder, format="parquet").count_rows()
    if got != rows:
        raise BadInput(f"{folder.name}: {got} rows written, expected {rows}")
    tmp = folder / f".{SHARDS_META}.tmp"
    tmp.write_text(json.dumps({"rows": rows, "backbone": backbone, "engine": engine,
                               "created": time.time(), **extra}))
    os.replace(tmp, folder / SHARDS_META)


def read_shards(folder: Path, n: int | None = None) -> tuple[np.ndarray, dict]:
    """(features in id order, metadata with ``failed``) from a folder of Parquet shards."""
    import pyarrow.dataset as pads

    meta = json.loads((folder / SHARDS_META).read_text())
    table = pads.dataset(folder, format="parquet").to_table(columns=["id", "embedding", "error"])
    rows = meta["rows"] if n is None else n
    if meta.get("rows") != rows or table.num_rows != rows:
        raise BadInput("shards do not match the dataset")
    ids = table.column("id").to_numpy()
    if not np.array_equal(np.sort(ids), np.arange(rows)):
        raise BadInput("shards do not cover every image once")
    col = table.column("embedding")
    out = None
    start = 0
    for chunk in col.chunks:  # one copy, straight into id order
        part = np.asarray(chunk.to_numpy_ndarray(), dtype=np.float32)
        if out is None:
            out = np.empty((rows, part.shape[1]), np.float32)
        out[ids[start:start + len(part)]] = part
        start += len(part)
    errors = table.column("error").to_pylist()
    meta["failed"] = sorted((int(i), e) for i, e in zip(ids, errors) if e is not None)
    return out, meta


def _compute_to(npy: Path, meta_path: Path, dataset, spec, backend, batch_size, progress, int8):
    tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.{threading.get_ident()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                    shape=(len(dataset), spec.feature_dim))
    try:
        failed = _extract(out, dataset, spec, backend, batch_size, progress, int8)
        out.flush()
        del out
        meta = {"rows": len(dataset), "backbone": spec.name, "failed": failed,
                "created": time.time(), "digest": _digest_file(tmp)}  # the digest last: see below
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


__all__ = ["ENGINES", "Embeddings", "cache_paths", "embed", "finish_shards", "is_cached",
           "read_shards", "shard_table", "embed_images", "export_onnx", "iter_batches", "onnx_session",
           "torch_features"]
