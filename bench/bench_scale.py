"""Issue #14 "Beyond one machine": throughput, memory, projection, neighbours and the
map's page load at 10k, 50k, 100k and 1M points.

- Images (10,000 by default: JPEGs made from cifar10-small by flips and crops,
  ``common.make_images``) are embedded with MobileNetV2 by both engines, each in a fresh
  process and an empty cache: the local engine (threads + one ONNX Runtime session,
  memmap) and the Ray engine (Ray Data actors, Parquet shards; a local 2-CPU cluster,
  its start-up timed apart). Images/s, the driver's peak RSS (Ray's actors are other
  processes: their memory is not in it) and the largest difference between the engines'
  features.
- Above that, features-only sets (``tlviz synth-features``: cifar10-small's MobileNetV2
  features, 64 principal components + noise) of 50k, 100k and 1M points. For each size:
  the projection (UMAP; above 50k fitted on a stratified 50k sample, the rest placed),
  the neighbour index (FAISS: exact flat below 100k, IVF above) build time, query time
  per image and recall@10 against the exact search (200 queries), and peak RSS.
- The Embedding page of the largest set in Chromium (Playwright, Debian's chromium):
  seconds from navigation to an idle page with both layers drawn, cold (first open: the
  index, metrics and density image are computed; the layout is already on disk) and
  warm (a new tab on the same server).

    python bench/bench_scale.py            # 10k images, 50k / 100k / 1M features
    python bench/bench_scale.py --quick    # 1k images, 20k features (checks the script)
    python bench/bench_scale.py --images 10000,50000 --features 100000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, QUICK, ROOT, make_images, peak_rss_mb, table

HERE = Path(__file__).resolve().parent


def _arg(name: str, default: str) -> list[int]:
    if name in sys.argv:
        return [int(x) for x in sys.argv[sys.argv.index(name) + 1].split(",") if x]
    return [int(x) for x in default.split(",")]


IMAGES = _arg("--images", "1000" if QUICK else "10000")
FEATURES = _arg("--features", "20000" if QUICK else "50000,100000,1000000")
HOME = BENCH_DIR / "homes" / "scale"


def _run_worker(*args: str, home: Path) -> dict:
    # Ray starts its workers at nice 15; on a shared machine that starves the actors against
    # the local engine's nice-0 threads, so both run at the same priority here
    env = {**os.environ, "TLVIZ_HOME": str(home), "PYTHONPATH": str(ROOT),
           "RAY_worker_niceness": "0"}
    out = subprocess.run([sys.executable, str(HERE / "bench_scale.py"), "--worker", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_embed(engine: str, folder: str) -> dict:
    import numpy as np

    from tlviz.data import load_dataset
    from tlviz.embed import embed

    ds = load_dataset(folder)
    startup = 0.0
    if engine == "ray":
        from tlviz import rayembed

        t0 = time.perf_counter()
        rayembed.connect(num_cpus=os.cpu_count())
        startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embed(ds, "mobilenet_v2", engine=engine)
    secs = time.perf_counter() - t0
    np.save(Path(os.environ["TLVIZ_HOME"]) / f"features-{engine}.npy", np.asarray(emb.features))
    return {"images": len(ds), "seconds": secs, "startup": startup,
            "images_per_s": len(ds) / secs, "rss_mb": peak_rss_mb()}


def worker_features(n: int) -> dict:
    import numpy as np

    from tlviz.backbones import STORED
    from tlviz.data import load_named
    from tlviz.embed import embed
    from tlviz.neighbours import IVF_ABOVE, index_for, index_search, knn, recall_at
    from tlviz.project import layout
    from tlviz.synth import make_feature_set

    name = f"scale-{n}"
    if not any((Path(os.environ["TLVIZ_HOME"]) / "features" / name / f).exists()
               for f in ("features.json",)):
        make_feature_set(name, n)
    emb = embed(load_named(name), STORED)
    X = np.asarray(emb.features, np.float32)
    idx = emb.indices(None)
    # the page's own key: a layout made here is its cache hit (timed afresh if it was cached)
    lay = layout(X[idx], "umap", 2, 0, labels=emb.labels[idx], key=f"{emb.key}:all:{len(idx)}")
    if lay.from_cache:
        lay = layout(X[idx], "umap", 2, 0, labels=emb.labels[idx], cache=False)
    t_proj = lay.seconds
    t0 = time.perf_counter()
    index = index_for(X, "cosine", f"{emb.key}-bench")
    t_index = time.perf_counter() - t0
    q = X[np.random.default_rng(0).choice(len(X), 200, replace=False)]
    t0 = time.perf_counter()
    _, approx = index_search(index, q, 10, "cosine")
    t_query = (time.perf_counter() - t0) / len(q)
    t0 = time.perf_counter()
    _, exact = knn(q, 10, ref=X, metric="cosine")
    t_exact = (time.perf_counter() - t0) / len(q)
    return {"n": n, "dim": X.shape[1], "projection_s": t_proj, "fitted": lay.n_fitted,
            "index": "IVF" if n >= IVF_ABOVE else "flat", "index_s": t_index,
            "query_ms": 1000 * t_query, "exact_ms": 1000 * t_exact,
            "recall": recall_at(approx, exact), "rss_mb": peak_rss_mb(), "name": name}


def _zoom(page, name: str) -> float:
    """Draw a box over the middle of the map, zoom into it; seconds until the re-sampled
    map is drawn (nan when the map has no zoom: at most ``LARGE`` points)."""
    from browser_util import assert_no_exception, screenshot, wait_idle

    button = page.get_by_role("button", name="Zoom into the selected region")
    if not button.count():
        return float("nan")
    plot = page.locator(".st-key-emb_map_0 .js-plotly-plot").first
    page.evaluate("() => Plotly.relayout(document.querySelector("
                  "'.st-key-emb_map_0 .js-plotly-plot'), {dragmode: 'select'})")
    box = plot.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.35 * w, y + 0.35 * h)
    page.mouse.down()
    page.mouse.move(x + 0.55 * w, y + 0.55 * h, steps=8)
    page.mouse.up()
    button.and_(page.locator(":enabled")).wait_for(timeout=300_000)
    t0 = time.perf_counter()
    button.click()
    page.get_by_text("Zoomed into").first.wait_for(timeout=300_000)
    wait_idle(page)
    seconds = time.perf_counter() - t0
    assert_no_exception(page, f"{name} zoomed")
    screenshot(page, BENCH_DIR / "shots" / f"map-{name}-zoom.png", full_page=True)
    return seconds


def page_load(name: str, n: int) -> tuple[float, float, float]:
    """(cold, warm, zoom) seconds to an idle Embedding page with its map drawn: the density
    image and the dots above ``ui.embedmap.LARGE`` points, the dots alone below; then to
    the map zoomed into a box drawn over its middle."""
    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # no "no runtime" warnings
    from ui.embedmap import LARGE

    sys.path.insert(0, str(ROOT / "tests"))
    from browser_util import (
        LAPTOP,
        StreamlitServer,
        assert_no_exception,
        browser,
        missing_requirements,
        open_page,
        page_urls,
        screenshot,
    )

    if missing_requirements():
        return float("nan"), float("nan"), float("nan")
    times, zoom = [], float("nan")
    with StreamlitServer(home=HOME) as srv, browser() as b:
        for _ in range(2):
            page = b.new_page(viewport=LAPTOP)
            url = page_urls(srv.url)["Embedding space"] + f"?dataset={name}&method=umap"
            t0 = time.perf_counter()
            open_page(page, url, timeout=1200)
            page.wait_for_function("""(layers) => { const gd = document.querySelector(
                '.st-key-emb_map_0 .js-plotly-plot'); return !!gd && gd._fullData.length > 0 &&
                (gd.layout.images || []).length === layers; }""", arg=int(n > LARGE),
                                   timeout=600_000)
            times.append(time.perf_counter() - t0)
            assert_no_exception(page, name)
            screenshot(page, BENCH_DIR / "shots" / f"map-{name}.png", full_page=True)
            if len(times) == 2:
                zoom = _zoom(page, name)
            page.close()
    return times[0], times[1], zoom


def main() -> None:
    import numpy as np

    HOME.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in IMAGES:
        folder = str(make_images(n))
        res = {}
        for engine in ("local", "ray"):
            home = BENCH_DIR / "homes" / f"scale-embed-{n}-{engine}-{time.time_ns()}"
            home.mkdir(parents=True)
            res[engine] = _run_worker("embed", engine, folder, home=home)
            res[engine]["home"] = home
        print(f"{n:,} images: {res}", file=sys.stderr, flush=True)
        diff = float(np.abs(np.load(res["local"]["home"] / "features-local.npy")
                            - np.load(res["ray"]["home"] / "features-ray.npy")).max())
        for engine in ("local", "ray"):
            r = res[engine]
            startup = f" (+{r['startup']:.0f} s cluster start)" if engine == "ray" else ""
            rows.append([f"{n:,} images", engine, f"{r['images_per_s']:.0f}{startup}",
                         f"{r['rss_mb']:.0f}", "—", "—", "—", "—",
                         f"{diff:.1e}" if engine == "ray" else ""])
            import shutil

            shutil.rmtree(r["home"], ignore_errors=True)
    largest = None
    for n in FEATURES:
        r = _run_worker("features", str(n), home=HOME)
        largest = (r["name"], n)
        print(f"{n:,} features: {r}", file=sys.stderr, flush=True)
        rows.append([f"{n:,} features ({r['dim']} dims)", "—", "—", f"{r['rss_mb']:.0f}",
                     f"{r['projection_s']:.0f} ({r['fitted']:,} fitted)",
                     f"{r['index']}: {r['index_s']:.1f}",
                     f"{r['query_ms']:.2f} (exact {r['exact_ms']:.1f})", f"{r['recall']:.3f}", ""])
    cold, warm, zoom = page_load(*largest) if largest else (float("nan"),) * 3
    table("Beyond one machine: engines, projection, neighbours, the large map",
          ["size", "engine", "images/s", "peak RSS MB", "UMAP s", "index build s",
           "ms/query", "recall@10", "max |local-ray|"], rows,
          [f"Embedding page of {largest and largest[0]} in Chromium: {cold:.1f} s cold (index, metrics and "
           f"density image computed; layout on disk), {warm:.1f} s warm (new tab); zoomed into "
           f"a box drawn over the middle of the map (density redrawn, dots re-sampled from the "
           f"points inside): {zoom:.1f} s after the click. Screenshots: shots/ in the bench "
           "folder (TLVIZ_BENCH_DIR).",
           "Images: MobileNetV2 (ONNX Runtime), 96 px JPEGs from cifar10-small; each engine in a "
           "fresh process and an empty cache. Ray: a local cluster of this machine's CPUs, "
           "workers at nice 0 (Ray's default is 15); its start-up is not in images/s; peak "
           "RSS is the driver's only.",
           "Features: features-only sets (cifar10-small's MobileNetV2 features, 64 principal "
           "components + noise). UMAP above 50k points: fitted on a stratified 50k, the rest "
           "placed by transform. Neighbours: FAISS (cosine), 200 queries, recall@10 against "
           "the exact search (numpy, tlviz.neighbours.knn)."])


if __name__ == "__main__":
    if "--worker" in sys.argv:
        kind, *rest = sys.argv[sys.argv.index("--worker") + 1:]
        sys.path.insert(0, str(ROOT))
        out = worker_embed(*rest[:2]) if kind == "embed" else worker_features(int(rest[0]))
        print(json.dumps(out, default=str))
    else:
        main()
