"""Item 3: training heads on cached features vs the seeds' way (images through the frozen
base every epoch), and the absolute training time on 3,000 x 1280 features.

Seeds' way, per epoch: decode every training JPEG, run it through the frozen MobileNetV2 in
torch eager, then update the head. One such pass over a 64-image subset is timed in every
repeat, side by side with our training, and scaled to the whole train split and to the
head's number of epochs (1 for kNN and logistic, ``epochs`` for the MLP); the head's own
compute is added from our measured fit.
"""

from __future__ import annotations

import time

import numpy as np
from common import QUICK, REPEATS, Timing, cpu_threads, reference_features, table, use_home

HEADS = {"knn": {}, "logistic": {}, "mlp": {"epochs": 30}}
SUBSET = 32


def main() -> None:
    import torch

    from tlviz.backbones import create_backbone, get_backbone_spec
    from tlviz.data import load_dataset
    from tlviz.embed import embed, iter_batches, torch_features
    from tlviz.heads import create_head

    torch.set_num_threads(cpu_threads())
    use_home("heads")
    ds = load_dataset("hymenoptera")
    spec = get_backbone_spec("mobilenet_v2")
    embed(ds, "mobilenet_v2")  # warm cache: ours trains on cached features
    net = create_backbone("mobilenet_v2")
    train_idx = ds.indices("train")
    subset = train_idx[:: max(1, len(train_idx) // SUBSET)][:SUBSET]
    X3, y3 = reference_features(10_000)
    X3, y3 = np.ascontiguousarray(X3[:3000]), y3[:3000]

    def seed_epoch() -> None:
        for _idx, batch, _bad in iter_batches(ds, spec, 32, subset):
            torch_features(net, batch)

    def ours(head: str) -> None:
        emb = embed(ds, "mobilenet_v2")
        Xtr, ytr = emb.split("train")
        kw = {}
        if head == "mlp":
            kw = dict(zip(("X_val", "y_val"), emb.split("val")))
        create_head(head, **HEADS[head]).fit(Xtr, ytr, **kw)

    n_rep = 2 if QUICK else REPEATS
    seed_t, ours_t = Timing(), {h: Timing() for h in HEADS}
    big_t = {h: Timing() for h in HEADS}
    seed_epoch()
    for h in HEADS:
        ours(h)
    for _ in range(n_rep):
        t0 = time.perf_counter()
        seed_epoch()
        seed_t.append((time.perf_counter() - t0) * len(train_idx) / len(subset))
        for h in HEADS:
            t0 = time.perf_counter()
            ours(h)
            ours_t[h].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            create_head(h, **HEADS[h]).fit(X3, y3)
            big_t[h].append(time.perf_counter() - t0)
    rows = []
    for h, params in HEADS.items():
        epochs = params.get("epochs", 1)
        seeds = Timing(e * epochs + o for e, o in zip(seed_t, ours_t[h]))
        r = sorted(s / o for s, o in zip(seeds, ours_t[h]))
        rows.append([h + (f" ({epochs} epochs)" if epochs > 1 else ""), seeds.fmt(),
                     ours_t[h].fmt(digits=3), f"{np.median(r):.0f}x ({r[0]:.0f}–{r[-1]:.0f})",
                     big_t[h].fmt(digits=3)])
    table("Heads: cached features vs images through the frozen base every epoch (seconds)",
          ["head", "seeds' way, hymenoptera train (245 imgs)", "ours, cached features",
           "speed-up", "ours, 3,000 x 1280 features"], rows,
          [f"Median (min–max) of {n_rep} repeats. Seeds' way per repeat = (one measured pass of "
           f"{len(subset)} training JPEGs through decode + frozen MobileNetV2 in torch eager, "
           f"scaled to {len(train_idx)} images) x epochs + the head's own fit time.",
           "Ours includes loading the cached features. 3,000 x 1280: the first 3,000 MobileNetV2 "
           "features of the cifar10-small-derived bench set, 10 classes; kNN's fit only "
           "stores the data."])


if __name__ == "__main__":
    main()
