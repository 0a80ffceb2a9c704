"""Sweeps & morphs: how far to trust the map. The same images under other UMAP/t-SNE
settings and other seeds (small multiples, each with its trustworthiness and kNN score),
and animated morphs between two layouts of the same images (PCA -> UMAP, one backbone ->
another). Computed in the background with a progress bar; every layout is cached."""

from __future__ import annotations

import numpy as np
import streamlit as st

from tlviz.sweeps import SEEDS, grid
from ui import cache, jobs, nav, sidebar, state, widgets
from ui.text import esc

METHODS = {"umap": "UMAP", "tsne": "t-SNE"}
MORPHS = {"pca-umap": "PCA → UMAP", "backbones": "one backbone → another"}
UMAP_NOTE = ("On a UMAP or t-SNE map, *who is next to whom* is meaningful; the size of a "
             "cluster, the gaps between clusters and their positions are not. Trust a pattern "
             "when it survives other settings and other seeds — that is what this page shows.")

choices = sidebar.choices()
st.title("Sweeps & morphs")
st.info(UMAP_NOTE, icon=":material/lightbulb:")
ds = widgets.dataset_or_stop(choices)
widgets.showing(choices)
emb = widgets.load_embeddings(choices)
if emb is None:
    st.stop()
n = len(emb.indices(None))
if n < 5:
    st.warning("A sweep needs at least 5 images.")
    st.stop()

tab_grid, tab_seeds, tab_morph = st.tabs(["Settings", "Seeds", "Morph"], key="sweep_tab",
                                         on_change="rerun")


def _sweep(kind: str, method: str) -> None:
    """Start (or show) the sweep ``kind`` ("grid" or "seeds") of ``method`` in the background."""
    key = f"sweep:{kind}:{choices.dataset}:{choices.backbone}:{choices.seed}:{method}"
    job = jobs.get(key)
    if job is None:
        from tlviz.sweeps import sweep

        cells = grid(method)
        if kind == "seeds":  # the default settings (the middle of the grid) under 3 seeds
            cells = [cells[len(cells) // 2]]
        idx = emb.indices(None)
        X, y = np.asarray(emb.features[idx], np.float32), emb.labels[idx]
        job = jobs.start(key, f"{kind} sweep", lambda j: (sweep(
            X, y, method, cells, seed=0, seeds=SEEDS if kind == "seeds" else None,
            key=f"{emb.key}:all:{len(idx)}", progress=j.on_progress), y))
    jobs.watch(job, job.running, lambda j, n: _draw(j, kind, n))


def _draw(job: jobs.Job, kind: str, n: int = 0) -> None:
    if job.running:
        st.caption("Each picture is cached on disk: a second visit is quick.")
        return
    if job.error is not None:
        st.error(f"The sweep failed: {esc(job.error)}")
        return
    from tlviz.sweeps import sweep_figure

    cells, labels = job.result
    big = choices.presenter
    fig = sweep_figure(cells, labels, ds.classes, cols=3, font_size=18 if big else 13,
                       height=(380 if big else 300) * -(-len(cells) // 3) + 60)
    st.plotly_chart(fig, width="stretch", key=f"sweep_fig_{kind}_{n}",
                    config={"displayModeBar": False})
    best = max(cells, key=lambda c: c.trustworthiness)
    if kind == "grid":
        st.caption(f"Highest trustworthiness: **{esc(best.title)}** ({best.trustworthiness:.3f}). "
                   "Trustworthiness (k = 10): how many map neighbours are true neighbours in "
                   "feature space (1 = all). kNN-5: how well a 5-neighbour vote on the map "
                   "recovers the classes.")
    else:
        worst = max(c.disparity for c in cells)
        st.caption(f"Largest Procrustes disparity to seed {cells[0].params['seed']}: "
                   f"**{worst:.2f}** (0 = the same picture after rotation, reflection and scale). "
                   "Clusters that keep their make-up across seeds are real structure.")


with tab_grid:
    method = st.segmented_control("Projection", list(METHODS), format_func=METHODS.get,
                                  **state.widget("sweep_method", "umap", list(METHODS))) or "umap"
    st.caption("UMAP: rows n_neighbors 5 / 15 / 50 (local → global), columns min_dist "
               "0 / 0.1 / 0.5 (tight → spread)." if method == "umap" else
               "t-SNE: perplexity 5 / 30 / 50 (how many neighbours each point attends to).")
    if tab_grid.open:
        _sweep("grid", method)

with tab_seeds:
    smethod = st.segmented_control("Projection ", list(METHODS), format_func=METHODS.get,
                                   **state.widget("seeds_method", "umap", list(METHODS))) or "umap"
    st.caption(f"Default settings, seeds {', '.join(map(str, SEEDS))}, each aligned to the first.")
    if tab_seeds.open:
        _sweep("seeds", smethod)

with tab_morph:
    kind = st.segmented_control("Morph", list(MORPHS), format_func=MORPHS.get,
                                **state.widget("morph", "pca-umap", list(MORPHS))) or "pca-umap"
    other = None
    if kind == "backbones":
        usable = [b.name for b in cache.backbones((choices.backbone,))
                  if b.ok and b.name != choices.backbone]
        if not usable:
            st.info("No other backbone with weights on this machine.")
            st.stop()
        other = st.selectbox("Morph into", usable, **state.widget("morph_to", usable[0], usable))
    st.caption("Frozen → fine-tuned is on the Explore page (Before / after).")
    if tab_morph.open:
        from tlviz.explore import animation_figure

        with st.spinner("Two layouts of the same images…"):
            m = cache.morph(choices.dataset, choices.backbone, other, choices.seed,
                            "pca" if kind == "pca-umap" else "umap")
        if m is None:
            st.warning(f"{esc(other)}: could not embed this dataset.")
            st.stop()
        idx, a, b, disparity = m
        names = ("PCA", "UMAP") if kind == "pca-umap" else (choices.backbone, other)
        fig = animation_figure(a, b, ds.labels[idx], ds.classes, idx, steps=16,
                               height=640 if choices.presenter else 540, names=names)
        st.plotly_chart(fig, width="stretch", key="morph_fig")
        st.caption(f"{len(idx):,} images; the second layout is rotated, reflected and scaled "
                   f"onto the first (Procrustes disparity {disparity:.2f}). Press ▶ or drag "
                   "the slider.")
st.page_link(nav.EMBEDDING, label="Back to the embedding space", icon=nav.ICONS[nav.EMBEDDING])
