"""Explore: nearest neighbours, lasso selections, augmented satellites, before/after
fine-tuning and likely label problems — all measured in the full feature space.

The tabs' bodies are fragments in ``ui/explore_tabs.py``: working in one tab reruns that tab.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from tlviz import explore
from tlviz.backbones import STORED
from tlviz.synth import is_feature_set
from ui import cache, sidebar, state, widgets
from ui import explore_tabs as tabs

choices = sidebar.choices()
st.title("Explore the embedding space")
st.caption("Hover a point to see its image, click it for its nearest neighbours, lasso a region "
           "to select its images. "
           "Distances are measured on the full feature vectors, not on the 2D picture.")

ds = widgets.dataset_or_stop(choices)
if is_feature_set(ds):  # a features-only set has one backbone: its stored features
    choices = replace(choices, backbone=STORED)
widgets.showing(choices)
emb = widgets.embeddings_or_stop(choices)

c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
split_opts = ["all", *ds.split_names]
split_name = c1.selectbox("Images", split_opts, help="Which split to show and search.",
                          **state.widget("explore_split", "all", split_opts))
split = None if split_name == "all" else split_name
method = c2.radio("Layout", ["umap", "pca"], horizontal=True,
                  help="UMAP keeps neighbourhoods; PCA is the linear view.",
                  **state.widget("explore_method", "umap", ["umap", "pca"]))
metric = "cosine"
if not choices.presenter:
    metric = c3.radio("Distance", list(explore.METRICS), horizontal=True,
                      help="cosine: angle between feature vectors (usual for embeddings); "
                           "euclidean: straight-line distance.",
                      **state.widget("explore_metric", "cosine", list(explore.METRICS)))
k = c4.slider("Neighbours (k)", 3, 24, **state.widget("explore_k", 8, range(3, 25)))

with st.spinner(f"{method.upper()} layout…"):
    idx, coords = cache.projection(choices.dataset, choices.backbone, method, 2, choices.seed,
                                   split)
if len(idx) < 3:
    st.info("This split has fewer than 3 images: pick another one.")
    st.stop()

view = tabs.View(ds, emb, choices.dataset, choices.backbone, choices.seed, split, method,
                 metric, k, idx)
image = tabs.current_image(view)
nb = explore.neighbours(emb.features, emb.labels, image, k, metric, view.mask,
                        index_key=emb.key)  # large sets: from the cached FAISS index
tabs.chart(view, coords, image, nb)
st.caption("Ringed: the current image and its neighbours. Lasso or box (toolbar, top right) "
           "selects a region; double-click the plot to clear the drawing.")

tab_nb, tab_sel, tab_sat, tab_ba, tab_issues = st.tabs(
    [":material/hub: Neighbours", ":material/highlight_alt: Selection",
     ":material/satellite_alt: Augmented satellites", ":material/compare: Before / after fine-tuning",
     ":material/report: Label issues"])
with tab_nb:
    tabs.neighbours(view, image, nb)
with tab_sel:
    tabs.selection(view)
with tab_sat:
    tabs.satellites(view, image)
with tab_ba:
    tabs.before_after(view)
with tab_issues:
    tabs.label_issues(view, image)
