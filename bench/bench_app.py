"""Item 4: from ``streamlit run`` to the first UMAP plot of hymenoptera on screen, in the
real browser (Debian chromium through Playwright), cold and warm; peak memory.

Cold: an empty TLVIZ_HOME (ONNX export, embedding, projection all happen). Warm: a second
start on the same home (everything from the disk caches). The clock starts just before the
server process is spawned and stops when the Embedding page's plotly chart is visible,
with hymenoptera and MobileNetV2 preselected through the URL. The browser is launched
beforehand (a teacher's browser is already open). Peak RSS: the server's VmHWM.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import QUICK, REPEATS, ROOT, Timing, table

sys.path.insert(0, str(ROOT / "tests"))
QUERY = "Embedding_space?dataset=hymenoptera&backbone=mobilenet_v2&compare=none"
PLOT = '[data-testid="stPlotlyChart"] .main-svg'


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_plot(b, home: Path) -> tuple[float, float, float]:
    """(seconds from spawn to visible plot, server peak RSS in MB, seconds from spawn to
    the server answering its health check) for one start."""
    from browser_util import StreamlitServer, assert_no_exception

    server = StreamlitServer(home=home)
    page = b.new_page(viewport={"width": 1600, "height": 1000})
    try:
        server.start(timeout=180)
        ready = time.perf_counter() - server.started_at
        page.goto(f"{server.url}/{QUERY}", wait_until="domcontentloaded", timeout=180_000)
        page.wait_for_selector(PLOT, state="visible", timeout=300_000)
        seconds = time.perf_counter() - server.started_at
        assert_no_exception(page, "Embedding page")
        return seconds, vm_hwm_mb(server.proc.pid), ready
    finally:
        page.close()
        server.stop()


def main() -> None:
    from browser_util import browser, missing_requirements

    why = missing_requirements()
    if why:
        print(f"### App: cold and warm start\n\nskipped: {why}\n")
        return
    n_rep = 1 if QUICK else REPEATS
    cold, warm, rss_cold, rss_warm = Timing(), Timing(), [], []
    ready_cold, ready_warm = Timing(), Timing()
    with browser() as b:
        for _ in range(n_rep):
            home = Path(tempfile.mkdtemp(prefix="tlviz-bench-app-"))
            try:
                s, m, r = first_plot(b, home)
                cold.append(s)
                rss_cold.append(m)
                ready_cold.append(r)
                s, m, r = first_plot(b, home)
                warm.append(s)
                rss_warm.append(m)
                ready_warm.append(r)
            finally:
                shutil.rmtree(home, ignore_errors=True)
    rows = [["cold: empty TLVIZ_HOME", cold.fmt(1, 1), ready_cold.fmt(1, 1), "10",
             f"{max(rss_cold):.0f}"],
            ["warm: second start, same home", warm.fmt(1, 1), ready_warm.fmt(1, 1), "2",
             f"{max(rss_warm):.0f}"]]
    table("App: `streamlit run` to the first UMAP plot on screen (hymenoptera, MobileNetV2)",
          ["start", "seconds, median (min–max)", "of which: server up (health check)",
           "target s", "server peak RSS MB (max)"], rows,
          [f"{n_rep} cold/warm pairs; headless Debian chromium via Playwright, launched "
           "beforehand; the clock runs from spawning `streamlit run app.py` to the plotly "
           f"chart being visible at /{QUERY}.",
           "The numba kernel cache is per machine (~/.cache/tlviz/numba), so it is warm in both."])


if __name__ == "__main__":
    main()
