"""Issue #13: a classroom server. N independent browsers (Chromium contexts, Playwright)
against one ``streamlit run app.py`` with ``TLVIZ_MODE=classroom``, all at once, each doing
the main flow on hymenoptera: open Embedding space, train a logistic head on Train, open
Compare, predict an uploaded photo on Predict. Pages are changed with the sidebar's menu,
as a student does (a reload would start a new session, hence a new workspace).

Reports per step the median and p95 seconds, the number of embedding computations (files
written to the shared embedding cache: should be one per dataset + backbone), the server's
peak RSS, errors, and whether every run landed in its own workspace (N workspaces with
exactly one completed run each).

    python bench/bench_classroom.py [--n=10,20,30] [--quick]   (default N = 10, 20, 30 in turn,
                                                               each on a fresh server; --quick: N=3)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, DATA_DIR, QUICK, ROOT, table

sys.path.insert(0, str(ROOT / "tests"))
DATASET, BACKBONE = "hymenoptera", "mobilenet_v2"
STEPS = ("embedding space", "train", "compare", "predict")
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'
SHOTS = BENCH_DIR / "shots"


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo() -> Path:
    return sorted((Path(DATA_DIR) / DATASET / "val" / "bees").glob("*.jpg"))[0]


async def _no_exception(page, where: str, errors: list[str]) -> None:
    box = await page.query_selector('[data-testid="stException"]')
    if box is not None:
        errors.append(f"{where}: {(await box.inner_text())[:300]}")


async def _menu(page, title: str) -> None:
    await page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()


async def client(k: int, browser, url: str, image: Path, timeout_s: float,
                 backbone: str = BACKBONE) -> dict:
    """One student's flow; returns {"times": {step: s}, "errors": [...], "runs": text}."""
    times: dict[str, float] = {}
    errors: list[str] = []
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await ctx.new_page()
    page.set_default_timeout(timeout_s * 1000)
    runs = ""
    try:
        t = time.perf_counter()
        await page.goto(f"{url}/Embedding_space?dataset={DATASET}&backbone={backbone}"
                        "&compare=none", wait_until="domcontentloaded")
        await page.locator(PLOT).first.wait_for()
        times["embedding space"] = time.perf_counter() - t
        await _no_exception(page, "Embedding space", errors)

        t = time.perf_counter()
        await _menu(page, "Train")


        await page.get_by_role("button", name=re.compile(r"\bTrain$")).click()
        await page.locator('[data-testid="stMetric"]').filter(has_text="Val accuracy").first.wait_for()
        times["train"] = time.perf_counter() - t
        await _no_exception(page, "Train", errors)

        t = time.perf_counter()
        await _menu(page, "Compare")
        await page.locator(PLOT).first.wait_for()
        runs = await page.locator('[data-testid="stMultiSelect"]').first.inner_text()
        times["compare"] = time.perf_counter() - t
        await _no_exception(page, "Compare", errors)

        t = time.perf_counter()
        await _menu(page, "Predict")
        await page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(image))
        await page.locator('[data-testid="stMetric"]').filter(has_text="Prediction").first.wait_for()
        times["predict"] = time.perf_counter() - t
        await _no_exception(page, "Predict", errors)
    except Exception as e:  # noqa: BLE001 - a failed client is a reported error, not a crash
        errors.append(f"client {k}: {type(e).__name__}: {str(e)[:300]}")
        try:  # what the student saw when the step gave up
            (SHOTS).mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / f"classroom-client{k}-failed.png"), full_page=True)
            (SHOTS / f"classroom-client{k}-failed.txt").write_text(
                await page.locator('[data-testid="stMain"]').inner_text())
        except Exception:  # noqa: BLE001, S110 - the page may be gone: the error says enough
            pass
    finally:
        await ctx.close()
    return {"times": times, "errors": errors, "runs": runs}


def workspace_runs(home: Path) -> dict[str, list[str]]:
    """{workspace id: statuses of its runs} of every private workspace."""
    out = {}
    for d in sorted((home / "workspaces").glob("*")):
        if d.is_dir() and d.name != "published":
            db = d / "runs.db"
            if not db.exists():
                out[d.name] = []
                continue
            with sqlite3.connect(db) as con:
                out[d.name] = [r[0] for r in con.execute("SELECT status FROM runs")]
    return out


def run(n: int, home: Path | None = None, timeout_s: float = 360.0, max_jobs: int | None = None,
        backbone: str = BACKBONE) -> dict:
    """Start a classroom server on a fresh home, drive ``n`` browsers at once; the figures."""
    from browser_util import CHROMIUM, CHROMIUM_ARGS, StreamlitServer
    from playwright.async_api import async_playwright

    home = Path(home or tempfile.mkdtemp(prefix="tlviz-bench-classroom-"))
    env = {"TLVIZ_MODE": "classroom", "TLVIZ_DATA_DIR": DATA_DIR}
    if max_jobs:
        env["TLVIZ_MAX_JOBS"] = str(max_jobs)
    server = StreamlitServer(home=home, env=env)
    server.start(timeout=180)

    async def main() -> list[dict]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await asyncio.gather(*(client(k, browser, server.url, photo(), timeout_s,
                                                     backbone) for k in range(n)))
            finally:
                await browser.close()

    try:
        t0 = time.perf_counter()
        results = asyncio.run(main())
        wall = time.perf_counter() - t0
        rss = vm_hwm_mb(server.proc.pid)
    finally:
        server.stop()
    ws = workspace_runs(home)
    with_runs = {k: v for k, v in ws.items() if v}
    own = len(with_runs) == n and all(v == ["completed"] for v in with_runs.values())
    errors = [e for r in results for e in r["errors"]]
    errors += [f"Compare of client {k} lists {r['runs']!r}, not just its own run #1"
               for k, r in enumerate(results) if r["runs"] and "#2" in r["runs"]]
    return {"n": n, "backbone": backbone, "wall": wall, "rss_mb": rss, "errors": errors, "results": results,
            "embeddings": len(list((home / "cache" / "embeddings").glob("*.npy"))),
            "workspaces": ws, "own_workspaces": own, "home": home}


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def report(fig: dict) -> str:
    rows = []
    for step in STEPS:
        xs = [r["times"][step] for r in fig["results"] if step in r["times"]]
        rows.append([step, f"{statistics.median(xs):.1f}" if xs else "—",
                     f"{_p95(xs):.1f}" if xs else "—", f"{len(xs)}/{fig['n']}"])
    with_runs = sum(bool(v) for v in fig["workspaces"].values())
    notes = [
        f"{fig['n']} Chromium contexts (one browser, Playwright async) against one "
        f"`TLVIZ_MODE=classroom streamlit run app.py`, started together; whole flow "
        f"{fig['wall']:.0f} s wall.",
        f"Embedding computations (files written to the shared cache): {fig['embeddings']} "
        f"(expected 1: {DATASET} + {fig['backbone']}).",
        f"Server peak RSS (VmHWM): {fig['rss_mb']:.0f} MB.",
        f"Runs in their own workspaces: {'yes' if fig['own_workspaces'] else 'NO'} "
        f"({with_runs} workspaces with runs, each run 'completed' and alone in its ledger).",
        f"Errors: {len(fig['errors'])}" + (": " + "; ".join(fig["errors"][:5]) if fig["errors"] else "."),
    ]
    return table(f"Classroom: {fig['n']} browsers at once (seconds per step)",
                 ["step", "median s", "p95 s", "clients done"], rows, notes)


def main() -> None:
    from browser_util import missing_requirements

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="3" if QUICK else "10,20,30")  # 10: the target; 20, 30 reported
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    why = missing_requirements()
    if why:
        print(f"### Classroom\n\nskipped: {why}\n")
        return
    for n in (int(x) for x in str(args.n).split(",") if x.strip()):
        report(run(n))


if __name__ == "__main__":
    main()
