"""The Ray engine of :func:`tlviz.embed.embed`: the same embedder in Ray Data actors.

The dataset's file list becomes a Ray Dataset (``ray.data.from_items`` of ids and paths);
``map_batches`` sends blocks of it to a pool of actors, each of which builds the
embedder once (the ONNX Runtime session, or torch) and then decodes, preprocesses and
embeds its batches with exactly the local engine's code (:func:`tlviz.embed._decode`,
:func:`tlviz.embed._runner`). Results are written as Parquet shards (``id, path, label,
split, embedding, error``; the embedding is Arrow's ``arrow.fixed_shape_tensor``) into
the embedding cache folder, under the same key as the local engine's memmap.

On a cluster every node must see the image paths (a shared file system or the same
copy) and tlviz installed; ``address`` connects to it (``ray start --head`` prints it).
Ray is an optional dependency (``requirements-scale.txt``): it is imported here only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tlviz.errors import BadInput


def available() -> tuple[bool, str]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False, "Ray is not installed: pip install -r requirements-scale.txt"
    return True, "ray " + __import__("ray").__version__


def connect(address: str | None = None, num_cpus: int | None = None):
    """The running Ray session, or a new one: the cluster at ``address`` or a local one."""
    ok, why = available()
    if not ok:
        raise BadInput(why)
    import ray

    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": num_cpus}
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 **kwargs)
    return ray


class Embedder:
    """One actor's embedder: built once (model session and all), then called per batch."""

    def __init__(self, dataset, backbone: str, backend: str = "auto") -> None:
        from tlviz.backbones import get_backbone_spec
        from tlviz.embed import _runner

        self.dataset = dataset
        self.spec = get_backbone_spec(backbone)
        self.run = _runner(self.spec, backend, False)

    def __call__(self, batch):
        """A pyarrow batch of ``id, path, label, split`` -> the same rows with their
        ``embedding`` and ``error`` (null when the image read)."""
        from tlviz.embed import _decode, shard_table

        ids = batch.column("id").to_numpy()
        x, failed = _decode(self.dataset, self.spec.preprocess, ids)
        feats = np.asarray(self.run(x), dtype=np.float32)
        errors: list[str | None] = [None] * len(ids)
        pos = {int(i): j for j, i in enumerate(ids)}
        for i, reason in failed:
            feats[pos[i]] = 0.0
            errors[pos[i]] = reason
        return shard_table(ids, batch.column("path").to_pylist(), batch.column("label").to_numpy(),
                           batch.column("split").to_pylist(), feats, errors)


def embed_to(shards: Path, dataset, backbone: str, *, backend: str = "auto",
             batch_size: int = 32, address: str | None = None, actors: int | None = None,
             actor_cpus: float | None = None, progress=None) -> dict:
    """Embed ``dataset`` with Ray Data actors into the shards folder ``shards`` (made
    complete only at the end: an interrupted run leaves nothing that looks like a cache).

    ``actors``: the pool's size (default: one per two CPUs of the cluster, at least one);
    ``actor_cpus``: CPUs reserved per actor (default: a fraction that leaves room for Ray's
    own read and write tasks — a pool that reserves every CPU stalls).
    """
    from tlviz.backbones import get_backbone_spec
    from tlviz.embed import _runner, finish_shards

    ray = connect(address)
    spec = get_backbone_spec(backbone)
    _runner(spec, backend, False)  # export the ONNX model once here, not in every actor
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = actors or max(1, cpus // 2)
    actor_cpus = actor_cpus or max(0.25, min(1.0, (cpus - 0.5) / actors))
    items = [{"id": i, "path": dataset.path(i), "label": int(dataset.labels[i]),
              "split": str(dataset.splits[i])} for i in range(len(dataset))]
    if progress:
        progress(0, len(dataset), f"embedding with {backbone} on Ray ({actors} actor(s))")
    t0 = time.perf_counter()
    blocks = max(1, min(len(items) // max(batch_size, 1), 16 * actors * 4))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    out = ds.map_batches(Embedder, fn_constructor_kwargs={"dataset": dataset, "backbone": backbone,
                                                          "backend": backend},
                         batch_format="pyarrow", batch_size=batch_size, num_cpus=actor_cpus,
                         compute=ray.data.ActorPoolStrategy(size=actors))
    tmp = shards.with_name(f".{shards.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.write_parquet(str(tmp))
        seconds = time.perf_counter() - t0
        finish_shards(tmp, len(dataset), backbone, "ray", seconds=round(seconds, 3),
                      actors=actors, actor_cpus=actor_cpus)
        shutil.rmtree(shards, ignore_errors=True)
        os.replace(tmp, shards)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    if progress:
        progress(len(dataset), len(dataset), f"embedded with {backbone} on Ray")
    return {"seconds": seconds, "actors": actors, "actor_cpus": actor_cpus}


__all__ = ["Embedder", "available", "connect", "embed_to"]
