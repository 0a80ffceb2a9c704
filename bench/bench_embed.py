"""Item 1: embedding throughput (img/s) per offline backbone at its native size.

(a) model only, torch eager, pre-made tensors; (b) model only, ONNX Runtime, same tensors;
(c) end to end: hymenoptera's JPEGs on disk -> decode, resize, normalise -> features in the
on-disk cache, through ``tlviz.embed.embed`` (cache emptied before every repeat).
(a), (b), (c) alternate within each repeat. INT8: static QDQ quantisation calibrated on 64
of the dataset's images; a linear probe (logistic head, train -> val) checks accuracy.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
from common import QUICK, REPEATS, cpu_threads, interleaved, ratio, table, use_home

BATCH = 32


def probe_accuracy(emb) -> float:
    from tlviz.heads import create_head

    Xtr, ytr = emb.split("train")
    Xva, yva = emb.split("val")
    return float(create_head("logistic").fit(Xtr, ytr).score(Xva, yva))


def main() -> None:
    import torch

    from tlviz import config
    from tlviz.backbones import create_backbone, get_backbone_spec, list_backbones
    from tlviz.data import load_dataset
    from tlviz.embed import _decode, embed, onnx_session, torch_features

    torch.set_num_threads(cpu_threads())
    use_home("embed")
    ds = load_dataset("hymenoptera")
    _ = ds.fingerprint  # hashed once, outside the timings
    names = [s.name for s in list_backbones() if s.source == "bundled" and s.available()[0]]
    if QUICK:
        names = names[:1]
    n_rep = 3 if QUICK else REPEATS
    rows, notes = [], []
    for name in names:
        spec = get_backbone_spec(name)
        x = np.random.default_rng(0).normal(size=(BATCH, 3, spec.input_size, spec.input_size))
        x = x.astype(np.float32)
        net = create_backbone(name)
        sess = onnx_session(spec)
        variants = [("fp32", False)]
        if name == "mobilenet_v2":
            variants.append(("int8", True))
        for label, int8 in variants:
            q = sess
            if int8:
                pick = np.unique(np.linspace(0, len(ds) - 1, 64).astype(int))
                t0 = time.perf_counter()
                q = onnx_session(spec, True, _decode(ds, spec.preprocess, pick)[0])
                notes.append(f"INT8 quantisation of {name} (once per dataset, cached): "
                             f"{time.perf_counter() - t0:.0f} s")

            def clear():
                shutil.rmtree(config.cache_dir("embeddings"), ignore_errors=True)

            def end_to_end(name=name, int8=int8):
                clear()
                embed(ds, name, int8=int8)

            fns = {"a": lambda net=net, x=x: torch_features(net, x),
                   "b": lambda q=q, x=x: q.run(None, {"images": x}), "c": end_to_end}
            if int8:
                fns.pop("a")
            t = interleaved(fns, n=n_rep)
            n_img = len(ds)
            a = t.get("a")
            rate_b = [BATCH / v for v in t["b"]]
            rate_c = [n_img / v for v in t["c"]]
            cb = sorted(c / b for b, c in zip(rate_b, rate_c))
            rows.append([
                f"{name} {spec.input_size}px {label}",
                a.fmt(BATCH, 1, invert=True) if a else "—",
                t["b"].fmt(BATCH, 1, invert=True),
                t["c"].fmt(n_img, 1, invert=True),
                f"{np.median(cb):.2f} ({cb[0]:.2f}–{cb[-1]:.2f})",
                ratio(t["b"], a) if a else "—",
            ])
            if int8:
                fp = embed(ds, name)
                q8 = embed(ds, name, int8=True)
                corr = np.corrcoef(np.asarray(fp.features).ravel(), np.asarray(q8.features).ravel())[0, 1]
                notes.append(f"Linear probe (logistic head, hymenoptera train -> val) with {name}: "
                             f"FP32 {probe_accuracy(fp):.3f}, INT8 {probe_accuracy(q8):.3f}; "
                             f"feature correlation {corr:.3f}.")
    table("Embedding throughput (images/s, higher is better)",
          ["backbone", "(a) torch eager, model only", "(b) ONNX Runtime, model only",
           "(c) JPEG files -> cached features (ours)", "(c)/(b)", "(b)/(a)"], rows,
          [f"Median (min–max) of {n_rep} alternating repeats after a warm-up; model-only rows on "
           f"a batch of {BATCH} pre-made tensors, {cpu_threads()} threads; (c) embeds all "
           f"{len(ds)} hymenoptera images (JPEG, ~500x375) into an emptied cache.",
           "Ratios are per repeat (same moment, same load). Targets: (c)/(b) >= 0.85, "
           "(b)/(a) >= 4 for MobileNetV2.", *notes])


if __name__ == "__main__":
    main()
