"""Item 5: embedding and projection time and peak memory for 1k, 5k, 10k (and 50k) images.

Images: JPEGs made from cifar10-small by flips and crops (``common.make_images``), 96 px.
Each size runs in a fresh process with an empty cache: embed with MobileNetV2 (ONNX
Runtime, features stream into a memory-mapped file), then our default UMAP. Peak resident
memory is read per stage (the kernel's high-water mark is reset in between).
``--sizes 1000,5000`` picks sizes; ``--big`` adds 50,000.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import QUICK, peak_rss_mb, table

HERE = Path(__file__).resolve().parent


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def worker(folder: str) -> None:
    import numpy as np

    from tlviz.backbones import get_backbone_spec
    from tlviz.data import load_dataset
    from tlviz.embed import embed, onnx_session
    from tlviz.project import project

    ds = load_dataset(folder)
    _ = ds.fingerprint
    onnx_session(get_backbone_spec("mobilenet_v2"))  # exported once into the shared ONNX cache
    base = peak_rss_mb()
    _reset_peak()
    t0 = time.perf_counter()
    emb = embed(ds, "mobilenet_v2")
    t_embed = time.perf_counter() - t0
    mem_embed = peak_rss_mb()
    X = np.asarray(emb.features)
    _reset_peak()
    t0 = time.perf_counter()
    project(X, "umap", seed=0)
    t_proj = time.perf_counter() - t0
    print(json.dumps({"n": len(ds), "embed_s": t_embed, "project_s": t_proj, "base_mb": base,
                      "embed_peak_mb": mem_embed, "project_peak_mb": peak_rss_mb()}))


def main() -> None:
    from common import BENCH_DIR, make_images

    onnx_dir = BENCH_DIR / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)

    sizes = [1000, 5000] if QUICK else [1000, 5000, 10_000]
    for a in sys.argv[1:]:
        if a.startswith("--sizes="):
            sizes = [int(s) for s in a.split("=", 1)[1].split(",")]
    if "--big" in sys.argv:
        sizes.append(50_000)
    rows, results = [], []
    for n in sizes:
        folder = make_images(n)
        home = Path(tempfile.mkdtemp(prefix=f"tlviz-scale-{n}-"))
        (home / "cache").mkdir()
        (home / "cache" / "onnx").symlink_to(onnx_dir, target_is_directory=True)
        env = {**os.environ, "TLVIZ_HOME": str(home)}
        out = subprocess.run([sys.executable, str(HERE / "bench_scaling.py"), "--worker", str(folder)],
                             env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        rows.append([f"{r['n']:,}", f"{r['embed_s']:.1f}", f"{r['n'] / r['embed_s']:.0f}",
                     f"{1000 * r['embed_s'] / r['n']:.2f}", f"{r['embed_peak_mb']:.0f}",
                     f"{r['project_s']:.1f}", f"{r['project_peak_mb']:.0f}",
                     f"{r['n'] * 1280 * 4 / 2**20:.0f}"])
    table("Scaling: embedding and UMAP projection by dataset size (one fresh process each)",
          ["images", "embed s", "img/s", "embed s per 1k", "embed peak RSS MB", "UMAP s",
           "UMAP peak RSS MB", "features MB"], rows,
          ["MobileNetV2 through ONNX Runtime from 96 px JPEGs (cifar10-small flips/crops), "
           "empty feature cache (the exported ONNX model is shared and its session made "
           "before timing); features stream to a memory-mapped file. Peak RSS per stage "
           "(VmHWM reset between stages) of the whole process, including the models "
           f"(about {results[0]['base_mb']:.0f} MB after imports and dataset scan).",
           "Linear embedding cost shows as a constant 's per 1k'; bounded memory as an "
           "embed peak that does not grow with the number of images."])


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
