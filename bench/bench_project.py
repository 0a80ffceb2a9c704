"""UMAP of 10,000 x 1280 features — our default seeded call against umap-learn's, on the
same input; and t-SNE (openTSNE) of 2,000 x 1280.

Both UMAPs get the same PCA-50 of the features (what ``project`` feeds its engine):
``FastUMAP(seed=0)`` against ``umap.UMAP(random_state=0)``, alternating after one untimed
warm-up each; trustworthiness and the within/between class-centroid distance ratio (the
clusters' compactness) beside the times. Also the first call in a fresh process, where
compilation shows.
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


def compactness(Y, y) -> float:
    import numpy as np

    cls = np.unique(y)
    C = np.stack([Y[y == c].mean(0) for c in cls])
    within = np.mean([np.linalg.norm(Y[y == c] - C[k], axis=1).mean() for k, c in enumerate(cls)])
    D = np.linalg.norm(C[:, None] - C[None], axis=2)
    return float(within / D[np.triu_indices(len(cls), 1)].mean())


def main() -> None:
    import numpy as np
    import umap
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    from tlviz.fastumap import FastUMAP, numba_cache_dir
    from tlviz.project import project

    warnings.filterwarnings("ignore")
    use_home("project")
    n = 3000 if QUICK else 10_000
    X, y = reference_features(10_000)
    X, y = np.ascontiguousarray(X[:n]), np.asarray(y[:n])
    Z = PCA(50, random_state=0).fit_transform(X).astype(np.float32)  # the same input for both
    out: dict[str, list] = {"ours": [], "umap-learn": []}

    def ours():
        out["ours"].append(FastUMAP(seed=0).fit_transform(Z))

    def theirs():
        out["umap-learn"].append(umap.UMAP(random_state=0).fit_transform(Z))

    FastUMAP(seed=0).fit_transform(Z[:500])  # warm-ups: compile both, on small data
    umap.UMAP(random_state=0).fit_transform(Z[:500])
    t = interleaved({"ours": ours, "umap-learn": theirs}, n=2 if QUICK else 5, warmup=0)
    same = {k: all(np.array_equal(v[0], w) for w in v[1:]) for k, v in out.items()}
    import numba

    numba.set_num_threads(1)
    one_thread = np.array_equal(FastUMAP(seed=0).fit_transform(Z), out["ours"][0])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    tw = {k: trustworthiness(X, v[0], n_neighbors=10) for k, v in out.items()}
    cr = {k: compactness(v[0], y) for k, v in out.items()}
    m = 2000
    tsne = interleaved({"tsne": lambda: project(X[:m], "tsne", seed=0, cache=False)},
                       n=2 if QUICK else 3, warmup=1)["tsne"]

    fresh = tempfile.mkdtemp(prefix="tlviz-numba-")
    first_ours_cold = first_call(True, fresh)
    first_ours_warm = min(first_call(True, fresh) for _ in range(2))
    first_theirs = min(first_call(False, str(numba_cache_dir())) for _ in range(2))
    rows = [
        [f"umap-learn `UMAP(random_state=0)`, PCA-50 of {n}x1280", t["umap-learn"].fmt(), "1.00",
         f"{tw['umap-learn']:.3f}", f"{cr['umap-learn']:.3f}", "yes" if same["umap-learn"] else "NO"],
        ["tlviz `FastUMAP(seed=0)`, the same input", t["ours"].fmt(),
         ratio(t["ours"], t["umap-learn"]), f"{tw['ours']:.3f}", f"{cr['ours']:.3f}",
         ("yes" if same["ours"] else "NO") + (", also with 1 thread" if one_thread else
                                              ", NOT with 1 thread")],
        [f"t-SNE: `project(X, 'tsne')` (openTSNE), {m}x1280", tsne.fmt(), "", "", "", ""],
        ["first call in a new process (500x64): umap-learn", f"{first_theirs:.2f}", "", "", "", ""],
        ["first call in a new process: tlviz, empty numba cache", f"{first_ours_cold:.2f}", "",
         "", "", ""],
        ["first call in a new process: tlviz, numba cache warm", f"{first_ours_warm:.2f}", "",
         "", "", ""],
    ]
    table("Projection: UMAP, ours vs umap-learn on the same input; t-SNE (seconds)",
          ["call", "seconds, median (min–max)", "speed-up vs umap-learn", "trustworthiness (k=10)",
           "within/between centroid ratio", "same picture every run"], rows,
          [f"{len(t['ours'])} alternating repeats after a small warm-up call each; speed-up = per-repeat "
           "ratio of times. Targets: >= 5x at equal quality (trustworthiness within 0.01, "
           "centroid ratio within 20%); t-SNE of 2,000 points <= 5 s.",
           "Centroid ratio: mean distance of a class's points to its centroid / mean distance "
           "between centroids, on the 2-D layout (lower = tighter clusters).",
           "First-call rows: wall time of import + one small UMAP in a fresh interpreter "
           "(includes numba compilation; ours caches its kernels per machine in "
           "~/.cache/tlviz/numba, umap-learn's kernels are not cacheable).",
           ])


if __name__ == "__main__":
    main()
