"""Start-up of the command line as whole processes (median of 5 after a warm-up run).

``python -c "import tlviz"``, ``tlviz --help`` and a cache-hit ``tlviz embed`` of
hymenoptera with MobileNetV2 (the embedding is computed once before timing), beside a bare
``python -c pass`` for the interpreter's own start. The cached embed is also checked to
import neither torch nor scikit-learn.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import QUICK, REPEATS, ROOT, Timing, table, use_home

TLVIZ = str(Path(sys.executable).with_name("tlviz"))
EMBED = [TLVIZ, "embed", "--dataset", "hymenoptera", "--backbone", "mobilenet_v2"]


def timed(cmd: list[str], n: int) -> Timing:
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)  # warm-up (and OS caches)
    out = Timing()
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    use_home("startup")
    n = 2 if QUICK else REPEATS
    subprocess.run(EMBED, cwd=ROOT, check=True, capture_output=True)  # fill the cache
    probe = ("import sys; from tlviz.cli import main; main(['embed', '--dataset', 'hymenoptera', "
             "'--backbone', 'mobilenet_v2']); print('heavy:', [m for m in ('torch', 'sklearn') "
             "if m in sys.modules])")
    heavy = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True,
                           text=True, env=os.environ).stdout.strip().splitlines()[-1]
    rows = []
    for label, cmd, target in [
            ("`python -c pass` (the interpreter alone)", [sys.executable, "-c", "pass"], ""),
            ("`python -c \"import tlviz\"`", [sys.executable, "-c", "import tlviz"], "0.3"),
            ("`tlviz --help`", [TLVIZ, "--help"], "0.5"),
            ("`tlviz embed --dataset hymenoptera --backbone mobilenet_v2`, cache hit", EMBED, "1.5")]:
        t = timed(cmd, n)
        met = "" if not target else ("met" if t.median <= float(target) else "**missed**")
        rows.append([label, t.fmt(1, 2), target, met])
    table("Start-up: whole processes (seconds)",
          ["command", "seconds, median (min–max)", "target s", ""], rows,
          [f"{n} timed runs after one untimed warm-up each; wall time of the whole process.",
           f"The cache-hit embed loads the dataset (398 files scanned and fingerprinted), the "
           f"cached features and prints the separation metrics; modules it imported: {heavy}."])


if __name__ == "__main__":
    main()
