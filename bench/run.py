"""Run every benchmark and write bench/RESULTS.md (tables, machine, date, command).

    python bench/run.py            # full run (about 15 minutes on an idle 2-core laptop)
    python bench/run.py --quick    # smoke run: fewer repeats and sizes
    python bench/run.py --big      # also 50,000 images in the scaling table
    python bench/run.py embed app  # only some scripts (names as in bench_<name>.py)

Each script runs in its own process and prints one Markdown table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine_info

HERE = Path(__file__).resolve().parent
ORDER = ["embed", "project", "heads", "scaling", "app", "ladder"]


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    names = [n for n in ORDER if (HERE / f"bench_{n}.py").exists() and (not only or n in only)]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = machine_info()
    parts, timings = [], []
    load_before = load()
    for name in names:
        t0 = time.perf_counter()
        print(f"== bench_{name}.py {' '.join(flags)}", flush=True)
        args = flags if name != "ladder" else (["--seeds", "0"] if "--quick" in flags else [])
        out = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *args], cwd=ROOT,
                             capture_output=True, text=True)
        text = out.stdout[out.stdout.find("###"):] if "###" in out.stdout else out.stdout
        if out.returncode:
            text += f"\n**bench_{name}.py failed** (exit {out.returncode}):\n\n```\n" + \
                    out.stderr[-2000:] + "\n```\n"
        print(text, flush=True)
        parts.append(text.strip())
        timings.append(f"bench_{name}.py {time.perf_counter() - t0:.0f} s")
        write(started, info, load_before, timings, parts)  # after each script: nothing is lost
    print(f"wrote {HERE / 'RESULTS.md'}")


def write(started: str, info: dict, load_before: str, timings: list[str], parts: list[str]) -> None:
    cmd = " ".join(["python bench/run.py", *sys.argv[1:]])
    head = [
        "## Performance", "",
        f"Measured {started} with `{cmd}` "
        f"(`/root/.cache/tlviz/venv-dev/bin/python bench/run.py` here).", "",
        f"- Machine: {info['cpu']}; Python {info['python']}; {info['os']}.",
        f"- Load average (1/5/15 min) before: {load_before}, after: {load()} — the machine is "
        "shared, so absolute numbers are noisy; ratios are measured side by side in the same "
        "run, as medians of repeats with the min–max beside them.",
        f"- Script times: {', '.join(timings)}.", "",
    ]
    doc = "\n".join(head) + "\n" + "\n\n".join(parts) + "\n"
    (HERE / "RESULTS.md").write_text(doc)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
