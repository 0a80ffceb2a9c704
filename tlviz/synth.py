"""Features-only sets: a million points without a million images.

``tlviz synth-features`` (or :func:`make_feature_set`) embeds a real dataset with a real
backbone (cached as usual), reduces the features to ``dim`` principal components (fitted
on the real features) and draws ``n`` synthetic rows, each a real image's components plus
Gaussian noise (``noise`` x each component's spread; at the default 1, copies of one image
are not each other's nearest neighbours by construction). Every row keeps its source
image's class and split, and shows that image as its thumbnail.

The set is stored under ``$TLVIZ_HOME/features/<name>/`` (``set.npz``: the source
thumbnails, each row's source image, labels, splits; ``features.json``: how it was made)
and is listed by :func:`tlviz.data.list_datasets` (kind ``features``), so the dashboard and
the CLI open it by name. Its features are written as Parquet shards (the Ray engine's
format) into the embedding cache under the set's key for the ``stored`` backbone, so
``embed(ds, "stored")`` is a cache hit like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tlviz import config
from tlviz.errors import BadInput

META = "features.json"
THUMB = 32  # source thumbnails stored with the set (pixels a side)
SHARD_ROWS = 200_000


def features_root() -> Path:
    p = config.home_dir() / "features"
    p.mkdir(parents=True, exist_ok=True)
    return p


def is_feature_set(ds) -> bool:
    """True for a dataset loaded from a features-only set (its backbone is ``stored``)."""
    return ds.root is not None and (Path(ds.root) / META).is_file()


def load_feature_set(folder: Path, seed: int = 0):
    """The :class:`~tlviz.data.ImageDataset` of a features-only set (``seed`` is unused:
    the splits are the source images')."""
    from tlviz.data import ImageDataset

    raw = (folder / META).read_text()
    meta = json.loads(raw)
    with np.load(folder / "set.npz", allow_pickle=False) as z:
        arrays, source, labels, splits = z["arrays"], z["source"], z["labels"], z["splits"]
    ds = ImageDataset(folder.name, list(meta["classes"]), source.tolist(), labels,
                      splits.astype(object), arrays=arrays, root=folder)
    # The fingerprint (every cache key) covers how and when the set was made, not only its
    # thumbnails and labels: a set made again with other noise never meets stale caches.
    h = hashlib.sha256(raw.encode())
    h.update(hashlib.sha256((folder / "set.npz").read_bytes()).digest())
    ds.__dict__["fingerprint"] = "fs-" + h.hexdigest()[:17]
    return ds


def list_feature_sets() -> list:
    """A :class:`~tlviz.data.DatasetInfo` for each complete set under :func:`features_root`."""
    from tlviz.data import DatasetInfo

    out = []
    root = config.home_dir() / "features"
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        meta_path = d / META
        if d.is_symlink() or not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        out.append(DatasetInfo(
            d.name, f"features only: {meta.get('rows', 0):,} synthetic points from "
            f"{meta.get('source')} x {meta.get('backbone')} ({meta.get('dim')} dims)", "features",
            lambda seed=0, _d=d, **_: load_feature_set(_d, seed)))
    return out


def make_feature_set(name: str, n: int, source: str = "cifar10-small",
                     backbone: str = "mobilenet_v2", dim: int = 64, noise: float = 1.0,
                     seed: int = 0, progress=None) -> Path:
    """Write the features-only set ``name`` of ``n`` rows (see the module's doc); returns
    its folder. An existing set of that name is replaced."""
    from sklearn.decomposition import PCA

    from tlviz.backbones import STORED, get_backbone_spec
    from tlviz.data import is_dataset_name, load_dataset
    from tlviz.embed import cache_key, cache_paths, embed, finish_shards, shard_table

    if not is_dataset_name(name):
        raise BadInput(f"not a usable set name: {name!r}")
    if n < 1:
        raise BadInput("n must be positive")
    src = load_dataset(source)
    emb = embed(src, backbone, progress=progress)
    rows = emb.indices(None)
    F = np.asarray(emb.features[rows], np.float32)
    k = min(dim, *F.shape)
    Z = PCA(n_components=k, random_state=seed).fit_transform(F).astype(np.float32)
    spread = Z.std(0, keepdims=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(rows), n)  # source image (position in rows) of each new row
    thumbs = np.stack([np.asarray(src.load(int(i), size=THUMB).convert("RGB")
                                  .resize((THUMB, THUMB))) for i in rows])
    labels = src.labels[rows][pick]
    splits = np.asarray(src.splits[rows], dtype=str)[pick]

    folder = features_root() / name
    tmp = folder.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / "set.npz", arrays=thumbs, source=pick.astype(np.int64), labels=labels,
             splits=splits)
    meta = {"rows": n, "source": src.name, "backbone": backbone, "dim": int(k), "noise": noise,
            "seed": seed, "classes": list(src.classes), "created": time.time()}
    (tmp / META).write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)

    ds = load_feature_set(folder)
    key = cache_key(ds, get_backbone_spec(STORED))
    shards = cache_paths(key)[2]
    tmp_shards = shards.with_name(f".{shards.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp_shards, ignore_errors=True)
    tmp_shards.mkdir(parents=True)
    import pyarrow.parquet as pq

    for s in range(0, n, SHARD_ROWS):
        part = np.arange(s, min(n, s + SHARD_ROWS))
        feats = Z[pick[part]] + noise * spread * rng.standard_normal((len(part), k), np.float32)
        pq.write_table(shard_table(part, [f"{name}[{i}]" for i in part], labels[part],
                                   splits[part], feats), tmp_shards / f"part-{s // SHARD_ROWS:05d}.parquet")
        if progress:
            progress(int(part[-1]) + 1, n, f"writing {name}")
    finish_shards(tmp_shards, n, STORED, "synthetic", source=src.name, source_backbone=backbone)
    shutil.rmtree(shards, ignore_errors=True)
    os.replace(tmp_shards, shards)
    return folder


__all__ = ["features_root", "is_feature_set", "list_feature_sets", "load_feature_set",
           "make_feature_set"]
