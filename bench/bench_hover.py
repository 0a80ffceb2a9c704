"""Issue #12 item 1: hover latency of the embedding map's image preview, 10,000 points, in
the real browser (Debian chromium through Playwright), offline (every other host blocked).

A user dataset of 10,000 generated 64 px JPEGs (10 classes) is made once under the bench
folder; the Embedding page shows it through the ``pixels`` backbone and PCA. After the
page is idle, the mouse moves onto ~30 random dots. Latency of one hover: from the
``mousemove`` event's timestamp (when the browser got the move) to the preview's image
being loaded *and decoded* (``ui.hovermap`` marks that moment after ``img.decode()``).
A hover whose sprite sheet was not fetched yet includes that fetch. Printed: median, p95
and max, the number of hovers that had to fetch their sheet, the sheets' total size.

    python bench/bench_hover.py            # 10,000 points, 30 hovers
    python bench/bench_hover.py --quick    # 2,000 points, 10 hovers (checks the script)
    python bench/bench_hover.py --cold     # no prefetch: every sheet loads on its first hover
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import BENCH_DIR, QUICK, ROOT, table

sys.path.insert(0, str(ROOT / "tests"))
N_POINTS = 2_000 if QUICK else 10_000
N_HOVERS = 10 if QUICK else 30
CLASSES = 10
COLD = "--cold" in sys.argv
CARD = """(prev) => { const t = document.getElementById('tlviz-hover-card');
    const img = t && t.querySelector('img');
    return !!(t && t.dataset.index !== prev && t.dataset.ready === '1' && img && img.naturalWidth > 0); }"""


# screen position of every dot (SVG or WebGL alike), from the plot's own axes
POSITIONS = """() => { const gd = document.querySelector('.st-key-emb_map_0 .js-plotly-plot');
    const fl = gd._fullLayout, r = gd.getBoundingClientRect(), out = [];
    for (const tr of gd._fullData) {
        if (tr.name === 'selected') continue;
        for (let i = 0; i < tr.x.length; i++)
            out.push([r.left + fl.xaxis._offset + fl.xaxis.l2p(tr.x[i]),
                      r.top + fl.yaxis._offset + fl.yaxis.l2p(tr.y[i])]);
    }
    return out; }"""


def make_dataset(root: Path, n: int) -> Path:
    """``n`` 64 px JPEGs in ``CLASSES`` class folders: a class colour square on a gradient
    with noise (photo-like JPEG sizes); made once."""
    from PIL import Image

    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) == n:
        return root
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 120, 64, dtype=np.float32)
    for i in range(n):
        k = i % CLASSES
        d = root / f"class{k}"
        d.mkdir(parents=True, exist_ok=True)
        a = ramp[None, :, None] + ramp[:, None, None] * rng.uniform(0, 1, 3) \
            + rng.normal(0, 18, (64, 64, 3))
        x, y = rng.integers(0, 32, 2)
        a[y:y + 32, x:x + 32] = np.array([(k * 97) % 256, (k * 53 + 80) % 256, (k * 29 + 160) % 256])
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(d / f"img{i:05d}.jpg", quality=85)
    return root


def main() -> None:
    import browser_util as bu

    name = f"hover{N_POINTS // 1000}k"
    home = BENCH_DIR / "homes" / "hover"
    make_dataset(home / "datasets" / name, N_POINTS)
    blocked: list[str] = []
    env = {"TLVIZ_HOVER_PREFETCH_BYTES": "0"} if COLD else {}
    with bu.StreamlitServer(home=home, env=env) as srv, bu.browser() as b:
        page = b.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(900_000)
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(srv.url)
                   else (blocked.append(r.request.url), r.abort()))
        t0 = time.perf_counter()
        bu.open_page(page, f"{srv.url}/Embedding_space?dataset={name}&backbone=pixels"
                     "&compare=none&method=pca", timeout=900)
        go = page.get_by_role("button", name="Embed")
        if go.count():
            go.first.click()
            page.wait_for_timeout(500)
            bu.wait_idle(page, timeout=900)
        bu.assert_no_exception(page, "Embedding space")
        page.locator(".st-key-emb_map_0 .js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_timeout(2000)  # as a person would: the map is shown, then explored
        dots = page.evaluate(POSITIONS)
        print(f"page ready in {time.perf_counter() - t0:.0f} s, {len(dots):,} dots", file=sys.stderr)
        page.evaluate("""() => { window.__moves = [];
            document.addEventListener('mousemove', e => window.__moves.push(e.timeStamp), true); }""")
        stats = page.evaluate("""() => { const G = window.__tlvizHover, m = Object.values(G.maps)[0];
            return {sheets: m.sheets.length, loaded: [...G.images.values()].filter(i => i.naturalWidth > 0).length,
                    sheet_bytes: m.sheet_bytes}; }""")
        rng = np.random.default_rng(1)
        lat, to_event, cached, uncached, prev = [], [], [], [], ""
        picks = rng.choice(len(dots), N_HOVERS * 3, replace=False)
        for p in picks:
            if len(lat) >= N_HOVERS:
                break
            x, y = dots[int(p)]
            page.mouse.move(5, 5)  # off the plot: the card hides
            page.wait_for_timeout(150)
            page.evaluate("() => { window.__moves = []; }")
            page.mouse.move(x, y)
            try:
                page.wait_for_function(CARD, arg=prev, timeout=10_000)
            except Exception:  # noqa: BLE001 - hovered nothing new (overlapping dots)
                continue
            r = page.evaluate("""() => { const G = window.__tlvizHover;
                return {...G.lastShown, moves: window.__moves}; }""")
            if not r["moves"]:
                continue
            lat.append((r["t"] - r["moves"][-1]) / 1000)
            to_event.append((r["hover"] - r["moves"][-1]) / 1000)
            (cached if r["cached"] else uncached).append(lat[-1])
            prev = str(r["index"])
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    def ms(xs):
        return f"{statistics.median(xs) * 1000:.0f}" if xs else "–"

    table("Hover preview latency (mouse move -> image loaded and decoded)",
          ["points", "hovers", "median (ms)", "p95 (ms)", "max (ms)",
           "move -> plotly_hover, median (ms)", "sheet in memory: n, median (ms)",
           "sheet fetched: n, median (ms)", "sheets (loaded at start)", "KB / sheet"],
          [[f"{N_POINTS:,}", len(lat), ms(lat), f"{p95 * 1000:.0f}", f"{lat[-1] * 1000:.0f}",
            ms(to_event), f"{len(cached)}, {ms(cached)}", f"{len(uncached)}, {ms(uncached)}",
            f"{stats['sheets']} ({stats['loaded']})", f"{stats['sheet_bytes'] / 1024:.0f}"]],
          ["chromium headless (--disable-gpu), localhost, pixels backbone + PCA, 1600x1000"
           + (", no prefetch (--cold)" if COLD else ""),
           "a hover that fetched a sheet includes its download and decode"])
    if blocked:
        print(f"blocked (not needed): {sorted(set(blocked))}", file=sys.stderr)


if __name__ == "__main__":
    main()
