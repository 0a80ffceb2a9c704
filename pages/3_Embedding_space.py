"""Embedding space: one or two backbones' features of the chosen dataset, projected to 2D/3D
(UMAP, PCA or t-SNE) side by side, coloured by class (or by neighbours kept), with
separation metrics and the map's trustworthiness beside each.

Hovering a dot shows its image (``ui.hovermap``); a click or a lasso/box selection pins
images in the panel beside the maps and rings them in the other map: where do
pixel-neighbours land in feature space? The 2D map can draw the images themselves.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from tlviz.backbones import STORED
from tlviz.metrics import METRIC_HELP, PROJECTION_HELP, accuracy_interval, knn_loo_size
from tlviz.synth import is_feature_set
from ui import cache, embedmap, hovermap, nav, sidebar, state, widgets
from ui.text import esc

AUTO_LIMIT = 3000  # embed without asking up to this many images (or when already on disk)
METHODS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}
METRICS = [("silhouette", "silhouette", "{:.2f}"), ("knn5_loo_accuracy", "kNN-5 acc.", "{:.1%}"),
           ("scatter_ratio", "scatter ratio", "{:.2f}"), ("trustworthiness", "trust", "{:.2f}")]


def _index(customdata) -> int:
    """Dataset index from a selected point's customdata (a list, or a dict from the browser)."""
    return int(customdata[0] if isinstance(customdata, list | tuple) else customdata["0"])


def _on_select(key: str) -> None:
    """A click or lasso on a plot: the picked images become the selection (ringed in both)."""
    points = ((st.session_state.get(key) or {}).get("selection") or {}).get("points") or []
    picked = sorted({_index(p["customdata"]) for p in points if "customdata" in p})
    if picked:  # a small selection goes in the link too: a shared link shows it again
        state.set("selection", picked, url=len(picked) <= state.MAX_URL_ITEMS, default=[])


choices = sidebar.choices()
st.title("Embedding space")
if not choices.presenter:
    st.caption("Each dot is an image placed by its features: similar images end up close. "
               "Well-separated colours mean a simple head will do well.")

ds = widgets.dataset_or_stop(choices)
widgets.showing(choices)
feature_set = is_feature_set(ds)  # features only: its own stored features, no images to embed
available = {b.name: b for b in cache.backbones((STORED if feature_set else choices.backbone,))
             if b.name == STORED or not feature_set}
others = ["none", *(b for b, a in available.items() if a.ok and b != choices.backbone)]
no_weights = [b for b, a in available.items() if not a.ok and b != choices.backbone]
c1, c2, c3, c4 = st.columns([3, 2.4, 0.1, 0.1] if choices.presenter else [3, 1.9, 1, 1.3])
compare = "none"
if feature_set:
    c1.caption(f"A features-only set of {len(ds):,} synthetic points (each shows the real image "
               "it was made from): its stored features, no backbone to choose.")
else:
    compare = c1.selectbox(
        f"Beside {choices.backbone} (the sidebar's backbone), show", others,
        format_func=lambda b: "nothing (one map)" if b == "none" else b,
        help="The sidebar's backbone is the one every page uses; put another beside it here. "
             + (f"Not on this machine (no weights): {', '.join(no_weights)}." if no_weights
                else ""),
        **state.widget("compare", "pixels" if "pixels" in others and not choices.presenter
                       else "none", others))  # a room sees one big map unless asked
method = c2.segmented_control("Projection", list(METHODS), format_func=METHODS.get,
                              **state.widget("method", "umap", list(METHODS))) or "umap"
splits = ["all", *ds.split_names]
if choices.presenter:
    dim, split = state.get("dim", 2, [2, 3]), state.get("split", "all", splits)
else:
    dim = c3.segmented_control("View", [2, 3], format_func=lambda d: f"{d}D",
                               **state.widget("dim", 2, [2, 3])) or 2
    split = c4.selectbox("Images", splits, format_func=lambda s: "all splits" if s == "all" else s,
                         **state.widget("split", "all", splits))
split_arg = None if split == "all" else split
if feature_set:
    backbones = [STORED]
elif not available[choices.backbone].ok:
    st.error(f"**{esc(choices.backbone)}** (the sidebar's backbone): weights are not on this "
             f"machine. {esc(available[choices.backbone].why)} Pick another in the sidebar.")
    st.stop()
else:
    backbones = [choices.backbone] + ([compare] if compare != "none" else [])

go_key = (choices.dataset, choices.seed, tuple(backbones))
ready = len(ds) <= AUTO_LIMIT or go_key in st.session_state.setdefault("emb_go", set()) or all(
    cache.embeddings_on_disk(choices.dataset, b, choices.seed) for b in backbones)
if not ready:
    st.info(f"{len(ds):,} images: embedding them takes a while the first time (then it is cached).")
    if not st.button(f"Embed {len(ds):,} images with {' and '.join(backbones)}", type="primary",
                     key="emb_go_button"):
        st.stop()
    st.session_state["emb_go"].add(go_key)

selected: list[int] = list(state.get("selection", [], bounds=(0, len(ds) - 1),
                                     max_items=state.MAX_URL_ITEMS))
names: list[str] | None = None  # file labels, made once for both maps (small sets only)
maps, panel = st.columns([2.9, 1], gap="medium")
with panel:
    color_by, points, run_id = embedmap.display_choices(dim, choices)
    small = len(ds) <= embedmap.LARGE  # larger: a density image + sampled dots, no sprites
    sheets = hovermap.sprites(choices.dataset, choices.seed) if dim == 2 and small else None
cols = maps.columns(len(backbones), gap="medium")
for k, (col, bb) in enumerate(zip(cols, backbones)):
    with col:
        emb = widgets.load_embeddings(choices, bb)
        if emb is None:  # the message is shown; the other backbone still gets its plot
            continue
        try:
            with st.spinner(f"{METHODS[method]} of {len(emb.indices(split_arg)):,} points…"):
                idx, coords = cache.projection(choices.dataset, bb, method, dim, choices.seed,
                                               split_arg)
                args = (choices.dataset, bb, method, choices.seed, split_arg, embedmap.K)
                quality = cache.projection_quality(*args) if dim == 2 else {}
                kept = quality.get("kept")
                large = dim == 2 and len(idx) > embedmap.LARGE
                if kept is None and dim == 2 and color_by == "kept" and not large:  # all points
                    kept = cache.projection_quality(*args, full=True)["kept"]
            report = {**cache.separation(choices.dataset, bb, choices.seed, split_arg),
                      "trustworthiness": quality.get("trustworthiness", float("nan"))}
        except Exception as e:  # noqa: BLE001 - e.g. too few images for t-SNE / UMAP
            st.error(f"{METHODS[method]} failed on {esc(bb)} ({type(e).__name__}): {esc(e)}")
            continue
        st.markdown(f"##### {esc(bb)}")
        shown = METRICS if dim == 2 else METRICS[:3]
        per_row = len(shown) if len(backbones) == 1 else 2  # narrow columns: 2 x 2
        mcols = [c for r in range(0, len(shown), per_row) for c in st.columns(per_row, gap="small")]
        for mcol, (key, label, fmt) in zip(mcols, shown):
            where = " — measured on the full feature vectors, not on the picture."
            if key == "trustworthiness":
                where = " — of the 2D picture itself" + (
                    "." if quality.get("sample") is None else
                    f", estimated on {len(quality['sample']):,} of its images.")
            mcol.metric(label, fmt.format(report[key]),
                        help={**METRIC_HELP, **PROJECTION_HELP}[key] + where)
            if key == "knn5_loo_accuracy" and report[key] == report[key]:
                n_loo = knn_loo_size(len(idx))  # large sets: a sample of left-out images
                lo, hi = accuracy_interval(report[key], n_loo)
                mcol.caption(f"95% CI {lo:.0%}–{hi:.0%} · n={n_loo:,}")
        if large:
            fitted = cache.projection_layout(choices.dataset, bb, method, dim, choices.seed,
                                             split_arg)[2]
            embedmap.draw_large(f"emb_map_{k}", f"emb_plot_{k}", choices, ds, bb, method,
                                split_arg, emb.labels[idx], idx, coords, selected=selected,
                                height=360 if len(backbones) == 2 else 520, fitted=fitted,
                                on_select=partial(_on_select, f"emb_plot_{k}"), color_by=color_by)
            continue
        idx, coords = embedmap.sample_3d(emb.labels, idx, coords, choices.seed)  # 3D: <= LARGE
        if names is None:
            names = [widgets.file_label(ds, i) for i in range(len(ds))]
        embedmap.draw(f"emb_map_{k}", f"emb_plot_{k}", choices, ds, emb.labels[idx], idx, coords,
                      names=[names[i] for i in idx], selected=selected,
                      height=((640 if len(backbones) == 2 else 780) if choices.presenter
                              else 360 if len(backbones) == 2 else 440),
                      on_select=partial(_on_select, f"emb_plot_{k}") if dim == 2 else "ignore",
                      sheets=sheets, color_by=color_by, points=points, kept=kept,
                      run=embedmap.run_colouring(choices, ds, idx, color_by, run_id)
                      if bb == choices.backbone else None)
        how = "read from the cache" if emb.from_cache else (
            f"computed in {emb.seconds:.0f} s, now cached")
        left_out = f" · {len(emb.failed)} unreadable image(s) left out" if emb.failed else ""
        st.caption(f"{len(idx):,} images · {emb.features.shape[1]:,} features each · {how}"
                   f"{left_out}")

with panel:
    embedmap.selection_panel(choices, ds, selected)
maps.caption(embedmap.TRUST_SENTENCE if dim == 2 else
             "Drag to rotate; hover previews and selection work in the 2D view.")
maps.page_link(nav.EXPLORE, label="Explore this space: neighbours, selections, augmented "
               "copies, label issues", icon=nav.ICONS[nav.EXPLORE])
