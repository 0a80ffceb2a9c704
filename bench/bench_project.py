"""Item 2: UMAP of 10,000 x 1280 features — our default seeded call against umap-learn's.

Ours: ``tlviz.project.project(X, "umap", seed=0)`` (PCA to 50 dims, exact kNN, deterministic
parallel layout). Theirs: ``umap.UMAP(random_state=0).fit_transform(X)`` on the raw
features. Calls alternate (ours, theirs, ours, ...) after one untimed warm-up each. Also the
first call in a fresh process, where compilation shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings

from common import QUICK, ROOT, interleaved, ratio, reference_features, table, use_home

FIRST_CALL = """
import time, numpy as np, warnings; warnings.filterwarnings("ignore"); t0 = time.perf_counter()
X = np.random.default_rng(0).normal(size=(500, 64)).astype("float32")
if {ours}:
    from tlviz.project import project
    project(X, "umap", seed=0, cache=False)
else:
    import umap
    umap.UMAP(random_state=0).fit_transform(X)
print(time.perf_counter() - t0)
"""


def first_call(ours: bool, numba_dir: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_dir}
    out = subprocess.run([sys.executable, "-c", FIRST_CALL.format(ours=ours)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np
    import umap
    from sklearn.manifold import trustworthiness

    from tlviz.fastumap import numba_cache_dir
    from tlviz.project import project

    warnings.filterwarnings("ignore")
    use_home("project")
    n = 3000 if QUICK else 10_000
    X, _ = reference_features(10_000)
    X = np.ascontiguousarray(X[:n])
    out: dict[str, list] = {"ours": [], "umap-learn": []}

    def ours():
        out["ours"].append(project(X, "umap", seed=0, cache=False))

    def theirs():
        out["umap-learn"].append(umap.UMAP(random_state=0).fit_transform(X))

    project(X[:500], "umap", seed=0, cache=False)  # warm-ups: compile both, on small data
    umap.UMAP(random_state=0).fit_transform(X[:500])
    t = interleaved({"ours": ours, "umap-learn": theirs}, n=2 if QUICK else 5, warmup=0)
    same = {k: all(np.array_equal(v[0], w) for w in v[1:]) for k, v in out.items()}
    import numba

    numba.set_num_threads(1)
    one_thread = np.array_equal(project(X, "umap", seed=0, cache=False), out["ours"][0])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    tw = {k: trustworthiness(X, v[0], n_neighbors=5) for k, v in out.items()}

    fresh = tempfile.mkdtemp(prefix="tlviz-numba-")
    first_ours_cold = first_call(True, fresh)
    first_ours_warm = min(first_call(True, fresh) for _ in range(2))
    first_theirs = min(first_call(False, str(numba_cache_dir())) for _ in range(2))
    rows = [
        [f"umap-learn `UMAP(random_state=0)`, raw {n}x1280", t["umap-learn"].fmt(), "1.00",
         f"{tw['umap-learn']:.3f}", "yes" if same["umap-learn"] else "NO"],
        [f"tlviz `project(X, 'umap', seed=0)`, {n}x1280", t["ours"].fmt(),
         ratio(t["ours"], t["umap-learn"]), f"{tw['ours']:.3f}",
         ("yes" if same["ours"] else "NO") + (", also with 1 thread" if one_thread else
                                              ", NOT with 1 thread")],
        ["first call in a new process (500x64): umap-learn", f"{first_theirs:.2f}", "", "", ""],
        ["first call in a new process: tlviz, empty numba cache", f"{first_ours_cold:.2f}", "",
         "", ""],
        ["first call in a new process: tlviz, numba cache warm", f"{first_ours_warm:.2f}", "",
         "", ""],
    ]
    table("Projection: UMAP, ours vs umap-learn (seconds)",
          ["call", "seconds, median (min–max)", "speed-up vs umap-learn", "trustworthiness (k=5)",
           "same picture every run"], rows,
          [f"{len(t['ours'])} alternating repeats after a small warm-up call each; speed-up = per-repeat "
           "ratio of times. Target: >= 5x, trustworthiness within 0.02.",
           "First-call rows: wall time of import + one small UMAP in a fresh interpreter "
           "(includes numba compilation; ours caches its kernels per machine in "
           f"{numba_cache_dir()}, umap-learn's kernels are not cacheable).",
           ])


if __name__ == "__main__":
    main()
