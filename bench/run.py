"""Run every benchmark and write bench/RESULTS.md (tables, machine, date, command).

    python bench/run.py            # full run (about 15 minutes on an idle 2-core laptop)
    python bench/run.py --quick    # smoke run: fewer repeats and sizes
    python bench/run.py --big      # also 50,000 images in the scaling table
    python bench/run.py embed app  # only some scripts (names as in bench_<name>.py)
    python bench/run.py scale      # issue #14: both engines, 50k-1M points, the large map

Each script runs in its own process and prints one Markdown table. RESULTS.md keeps one
section per script: a partial run replaces only its own sections, each stamped with the
time and command that produced it, and the file is rewritten after every script.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, ROOT, machine_info

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
ORDER = ["startup", "app", "hover", "eval", "calibration", "labels", "embed", "project", "heads",
         "scaling", "scale", "ladder", "classroom"]
MARK = re.compile(r"<!-- bench:(\w+) -->\n(.*?)(?=<!-- bench:|\Z)", re.S)


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def save(name: str, text: str) -> None:
    """Replace the section of ``name`` in RESULTS.md (under a lock: runs may overlap)."""
    info = machine_info()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    with open(BENCH_DIR / "results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = RESULTS.read_text() if RESULTS.exists() else ""
        sections = {m.group(1): m.group(2).strip() for m in MARK.finditer(old)}
        sections[name] = text.strip()
        head = [
            "## Performance", "",
            "Produced by `python bench/run.py` with the project's venv (`--quick` for a smoke "
            "run, `--big` adds 50,000 images). Each table says when and with which command it "
            "was measured.", "",
            f"- Machine: {info['cpu']}; Python {info['python']}; {info['os']}.",
            "- The machine is shared: absolute numbers are noisy (see each table's load "
            "average). Ratios are measured side by side in the same run, as medians of repeats "
            "with the min–max beside them.", "",
        ]
        body = [f"<!-- bench:{n} -->\n{sections[n]}\n" for n in ORDER if n in sections]
        RESULTS.write_text("\n".join(head) + "\n" + "\n".join(body))


def main() -> None:
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    names = [n for n in ORDER if (HERE / f"bench_{n}.py").exists() and (not only or n in only)]
    cmd = " ".join(["python bench/run.py", *sys.argv[1:]])
    for name in names:
        t0, before = time.perf_counter(), load()
        print(f"== bench_{name}.py {' '.join(flags)}", flush=True)
        args = flags if name != "ladder" else (["--seeds", "0"] if "--quick" in flags else [])
        out = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *args], cwd=ROOT,
                             capture_output=True, text=True)
        text = out.stdout[out.stdout.find("###"):] if "###" in out.stdout else out.stdout
        if out.returncode:
            text += (f"\n**bench_{name}.py failed** (exit {out.returncode}):\n\n```\n"
                     + out.stderr[-2000:] + "\n```\n")
        stamp = (f"\n_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{cmd}` "
                 f"in {time.perf_counter() - t0:.0f} s; load average (1/5/15 min) before "
                 f"{before}, after {load()}._\n")
        print(text + stamp, flush=True)
        save(name, text.strip() + "\n" + stamp)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
