"""Shared helpers for the benchmarks: repeats with median and min–max, tables, test images.

Every script prints one Markdown table. Ratios are measured side by side in the same
process, because the machine is shared and absolute numbers drift.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Persistent bench data (generated images, cached reference features): never inside a test home.
BENCH_DIR = Path(os.environ.get("TLVIZ_BENCH_DIR", Path.home() / ".cache" / "tlviz" / "bench"))
DATA_DIR = os.environ.get("TLVIZ_DATA_DIR") or str(ROOT.parent / "shared" / "datasets")
os.environ["TLVIZ_DATA_DIR"] = DATA_DIR
QUICK = "--quick" in sys.argv
REPEATS = 5


def use_home(name: str) -> Path:
    """Point TLVIZ_HOME at a bench-owned folder (call before heavy work)."""
    home = BENCH_DIR / "homes" / name
    home.mkdir(parents=True, exist_ok=True)
    os.environ["TLVIZ_HOME"] = str(home)
    return home


class Timing(list):
    """Seconds of each repeat; formats as ``median (min–max)``."""

    @property
    def median(self) -> float:
        return statistics.median(self)

    def fmt(self, scale: float = 1.0, digits: int = 2, invert: bool = False) -> str:
        vals = sorted((scale / v if invert else v * scale) for v in self)
        med = statistics.median(vals)
        return f"{med:.{digits}f} ({vals[0]:.{digits}f}–{vals[-1]:.{digits}f})"


def repeat(fn: Callable[[], object], n: int = REPEATS, warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``n`` times timed."""
    for _ in range(warmup):
        fn()
    out = Timing()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(fns: dict[str, Callable[[], object]], n: int = REPEATS, warmup: int = 1) -> dict[str, Timing]:
    """Time several functions in turns (A B A B ...) so that load changes hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: Timing() for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def ratio(a: Timing, b: Timing) -> str:
    """Median and range of per-repeat ratios b/a (speed of a relative to b: time_b / time_a)."""
    rs = sorted(y / x for x, y in zip(a, b))
    return f"{statistics.median(rs):.2f} ({rs[0]:.2f}–{rs[-1]:.2f})"


def table(title: str, header: list[str], rows: list[list[object]], notes: list[str] = ()) -> str:
    """A Markdown table with a title line and notes; printed and returned."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_threads() -> int:
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------- test images


def cifar_sources() -> list[tuple[str, str]]:
    """(path, class) of every cifar10-small image, sorted."""
    root = Path(DATA_DIR) / "cifar10-small"
    return sorted((str(p), p.parent.name) for p in root.glob("*/*/*.jpg"))


def make_images(n: int, size: int = 96) -> Path:
    """An ImageFolder of ``n`` JPEGs made from cifar10-small by flips and crops (cached).

    Real photographs, so features have real structure; variant v of image i is
    deterministic, so the same ``n`` always gives the same folder.
    """
    from PIL import Image, ImageOps

    out = BENCH_DIR / "images" / f"cifar-aug-{n}-{size}"
    done = out / ".complete"
    if done.exists():
        return out
    src = cifar_sources()
    if not src:
        raise SystemExit(f"cifar10-small not found under {DATA_DIR}")
    for k in range(n):
        path, cls = src[k % len(src)]
        v = k // len(src)
        im = Image.open(path).convert("RGB")
        if v % 2:
            im = ImageOps.mirror(im)
        c = (v // 2) % 4  # crop variants: none, and three 28-px windows
        if c:
            x, y = [(0, 0), (4, 0), (2, 4)][c - 1]
            im = im.crop((x, y, x + 28, y + 28))
        im = im.resize((size, size), Image.BICUBIC)
        d = out / cls
        d.mkdir(parents=True, exist_ok=True)
        im.save(d / f"{k:06d}.jpg", quality=90)
    done.touch()
    return out


def reference_features(n: int = 10_000):
    """MobileNetV2 features (n, 1280) of ``make_images(n)``, cached under the bench home."""
    from tlviz.data import load_dataset
    from tlviz.embed import embed

    old = os.environ.get("TLVIZ_HOME")
    use_home("reference")
    try:
        ds = load_dataset(str(make_images(n)))
        emb = embed(ds, "mobilenet_v2")
        return emb.split(None)
    finally:
        if old:
            os.environ["TLVIZ_HOME"] = old


def machine_info() -> dict[str, str]:
    import platform

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    flags = Path("/proc/cpuinfo").read_text()
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags)
    return {"cpu": f"{cpu}, {cpu_threads()} threads ({isa})", "python": platform.python_version(),
            "os": platform.platform()}
