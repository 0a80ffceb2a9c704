"""How far to trust a map: the same images under other settings and other seeds, and morphs.

A UMAP or t-SNE picture depends on its settings and its seed. :func:`sweep` projects the
same features over a small grid (UMAP ``n_neighbors`` x ``min_dist``, t-SNE perplexity) or
over seeds, and scores each picture with numbers a reader can compare:

* **trustworthiness** (k = 10; :func:`sklearn.manifold.trustworthiness`, cosine in feature
  space as the rest of tlviz): 1.0 when nobody on the map is a neighbour it should not be;
* **kNN-5 on the map**: leave-one-out accuracy of a 5-nearest-neighbour vote in 2D — how
  well the *picture* separates the classes (compare it with the features' own kNN score);
* for seeds, the **Procrustes disparity** to the first seed's layout (0 = the same shape
  after rotation, reflection and scale).

Every layout is cached on disk (:func:`tlviz.project.project`), so a sweep is paid once.
Layouts of one sweep are Procrustes-aligned to the first, so small multiples read alike.
:func:`morph` gives two aligned layouts of the same images (PCA -> UMAP, one backbone ->
another) for an animation.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(0, 1, (30, 8)), rng.normal(4, 1, (30, 8))]; y = np.r_[[0] * 30, [1] * 30]
>>> cells = sweep(X, y, "pca", cache=False)
>>> len(cells), cells[0].knn_accuracy
(1, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tlviz.errors import BadInput

Progress = Callable[[int, int, str], None]
UMAP_GRID = {"n_neighbors": (5, 15, 50), "min_dist": (0.0, 0.1, 0.5)}
TSNE_PERPLEXITIES = (5.0, 30.0, 50.0)
SEEDS = (0, 1, 2)
TRUST_K = 10
TRUST_SAMPLE = 2000  # trustworthiness is O(n^2) in memory: scored on an even sample above this


@dataclass
class SweepCell:
    """One picture of a sweep and its scores."""

    params: dict  # the settings that differ between cells (and the seed)
    coords: np.ndarray  # (n, 2), aligned to the sweep's first picture
    trustworthiness: float
    knn_accuracy: float  # kNN-5 leave-one-out accuracy on the map
    disparity: float  # Procrustes disparity to the first picture (0 for the first)
    seconds: float

    @property
    def title(self) -> str:
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in self.params.items())


def grid(method: str) -> list[dict]:
    """The default small-multiples grid of ``method``: 3 x 3 for UMAP, 3 for t-SNE, PCA once."""
    if method == "umap":
        return [{"n_neighbors": n, "min_dist": d} for n in UMAP_GRID["n_neighbors"]
                for d in UMAP_GRID["min_dist"]]
    if method == "tsne":
        return [{"perplexity": p} for p in TSNE_PERPLEXITIES]
    if method == "pca":
        return [{}]
    raise BadInput(f"no sweep for {method!r}; use umap, tsne or pca")


def _even_sample(n: int, m: int) -> np.ndarray:
    return np.arange(n) if n <= m else np.linspace(0, n - 1, m).round().astype(int)


def trustworthiness(X: np.ndarray, coords: np.ndarray, k: int = TRUST_K,
                    sample: int = TRUST_SAMPLE) -> float:
    """scikit-learn's trustworthiness (cosine in feature space), on an even sample above
    ``sample`` rows."""
    from sklearn.manifold import trustworthiness as sk_trust

    rows = _even_sample(len(X), sample)
    k = max(1, min(k, len(rows) // 2 - 1))
    return float(sk_trust(np.asarray(X)[rows], np.asarray(coords)[rows], n_neighbors=k,
                          metric="cosine"))


def map_knn_accuracy(coords: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    from tlviz.metrics import knn_loo_accuracy

    return float(knn_loo_accuracy(coords, y, k=k, metric="euclidean"))


def sweep(X: np.ndarray, y: np.ndarray, method: str = "umap", cells: Sequence[dict] | None = None,
          *, seed: int = 0, seeds: Sequence[int] | None = None, key: str | None = None,
          cache: bool = True, progress: Progress | None = None) -> list[SweepCell]:
    """Project ``X`` once per cell (``cells``: settings, default :func:`grid`; or ``seeds``:
    the first cell's settings under each seed) and score each picture."""
    from tlviz.explore import procrustes_align
    from tlviz.project import project

    X, y = np.asarray(X, np.float32), np.asarray(y)
    if len(X) < 5:
        raise BadInput("a sweep needs at least 5 images")
    base = list(cells) if cells is not None else grid(method)
    runs = ([{**base[0], "seed": s} for s in seeds] if seeds is not None else
            [{**c, "seed": seed} for c in base])
    out: list[SweepCell] = []
    for n, params in enumerate(runs):
        if progress:
            progress(n, len(runs), f"{method} {n + 1}/{len(runs)}")
        t0 = time.perf_counter()
        opts = {k: v for k, v in params.items() if k != "seed"}
        coords = project(X, method=method, dim=2, seed=int(params["seed"]), key=key,
                         cache=cache, **opts)
        seconds = time.perf_counter() - t0
        disparity = 0.0
        if out:
            coords, disparity = procrustes_align(out[0].coords, coords)
        shown = opts if seeds is None else {"seed": params["seed"]}
        out.append(SweepCell(shown, np.asarray(coords, np.float32), trustworthiness(X, coords),
                             map_knn_accuracy(coords, y), float(disparity), seconds))
    if progress:
        progress(len(runs), len(runs), "done")
    return out


def morph(X_from: np.ndarray, X_to: np.ndarray, method_from: str = "pca",
          method_to: str = "umap", *, seed: int = 0, keys: tuple[str | None, str | None] = (None, None),
          cache: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Two layouts of the same images, the second Procrustes-aligned to the first.

    ``X_from``/``X_to``: the same rows (e.g. the same features twice for PCA -> UMAP, or
    two backbones' features). Returns ``(from, to, disparity)``.
    """
    from tlviz.explore import procrustes_align
    from tlviz.project import project

    if len(X_from) != len(X_to):
        raise BadInput("a morph needs the same images on both sides")
    a = project(np.asarray(X_from, np.float32), method=method_from, dim=2, seed=seed,
                key=keys[0], cache=cache)
    b = project(np.asarray(X_to, np.float32), method=method_to, dim=2, seed=seed, key=keys[1],
                cache=cache)
    b, disparity = procrustes_align(a, b)
    return np.asarray(a, np.float32), b, disparity


# ----------------------------------------------------------------------------- figure


def sweep_figure(cells: Sequence[SweepCell], labels: np.ndarray, classes: Sequence[str],
                 cols: int = 3, height: int | None = None, font_size: int = 13):
    """Small multiples: one map per cell, same colours, its settings and scores as its title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from tlviz.plots import class_colors, hover_safe

    rows = -(-len(cells) // cols)
    titles = [f"{c.title}<br>trust {c.trustworthiness:.3f} · kNN-5 {c.knn_accuracy:.0%}"
              + (f" · disparity {c.disparity:.2f}" if "seed" in c.params and c.disparity else "")
              for c in cells]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.09 if rows > 1 else 0.05)
    colors = class_colors(len(classes))
    labels = np.asarray(labels)
    for n, cell in enumerate(cells):
        r, c = n // cols + 1, n % cols + 1
        for k, name in enumerate(classes):
            m = labels == k
            if not m.any():
                continue
            fig.add_trace(go.Scattergl(
                x=cell.coords[m, 0], y=cell.coords[m, 1], mode="markers", name=hover_safe(name),
                legendgroup=str(k), showlegend=n == 0, hoverinfo="name",
                marker={"size": 4, "color": colors[k], "opacity": 0.8}), row=r, col=c)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_annotations(font_size=font_size)
    fig.update_layout(height=height or 300 * rows + 60, margin={"l": 10, "r": 10, "t": 60, "b": 10},
                      font={"size": font_size}, legend={"orientation": "h", "y": -0.02,
                                                        "yanchor": "top", "x": 0},
                      plot_bgcolor="white")
    return fig


__all__ = ["SEEDS", "TSNE_PERPLEXITIES", "UMAP_GRID", "SweepCell", "grid", "map_knn_accuracy",
           "morph", "sweep", "sweep_figure", "trustworthiness"]
