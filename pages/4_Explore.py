"""Explore: nearest neighbours, lasso selections, augmented satellites, before/after
fine-tuning and likely label problems — all measured in the full feature space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from tlviz import explore
from tlviz.plots import embedding_figure
from ui import cache, sidebar, state, widgets
from ui.text import esc

st.set_page_config(page_title="tlviz · Explore", page_icon="🔍", layout="wide")
choices = sidebar.render()

IMAGE, SELECTION, LAST_EVENT = "explore.image", "explore.selection", "explore.last_event"
SAT_REQUEST, CMP_REQUEST, BA_REQUEST = "explore.sat", "explore.cmp", "explore.ba"
TRAIN_PAGE, AUG_PAGE = "pages/5_Train.py", "pages/2_Augmentation.py"

st.title("Explore the embedding space")
st.caption("Click a point for its nearest neighbours, lasso a region to see its images. "
           "Distances are measured on the full feature vectors, not on the 2D picture.")

ds = widgets.dataset_or_stop(choices)
emb = widgets.embeddings_or_stop(choices)
classes = list(ds.classes)
ref, bb, seed = choices.dataset, choices.backbone, choices.seed

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
    idx, coords = cache.projection(ref, bb, method, 2, seed, split)
if len(idx) < 3:
    st.info("This split has fewer than 3 images: pick another one.")
    st.stop()
mask = np.zeros(len(ds), bool)
mask[idx] = True
names = [Path(ds.path(int(i))).name for i in idx]

# ---------------------------------------------------------------- current image and selection
if st.session_state.get("explore.for") != (ref, seed):  # another dataset: start afresh
    st.session_state["explore.for"] = (ref, seed)
    for key in (IMAGE, SELECTION, SAT_REQUEST, CMP_REQUEST, BA_REQUEST):
        st.session_state.pop(key, None)
if st.session_state.get(IMAGE) not in set(idx.tolist()):
    st.session_state[IMAGE] = int(idx[0])
st.session_state[SELECTION] = [int(i) for i in st.session_state.get(SELECTION, [])
                               if 0 <= int(i) < len(ds) and mask[int(i)]]


def _pick() -> None:
    st.session_state[IMAGE] = int(st.session_state["explore.pick"])


def _inspect_issue() -> None:
    if st.session_state.get("explore.issue_pick") is not None:
        st.session_state[IMAGE] = int(st.session_state["explore.issue_pick"])


nb = explore.neighbours(emb.features, emb.labels, st.session_state[IMAGE], k, metric, mask)
chart = st.plotly_chart(
    embedding_figure(coords, emb.labels[idx], classes, idx, names=names,
                     highlight=[st.session_state[IMAGE], *nb["index"].tolist()]),
    key="explore.chart", on_select="rerun", selection_mode=("points", "box", "lasso"))
clicked, region = explore.selection_from_event(chart)
signature = json.dumps([clicked, region])
if signature != st.session_state.get(LAST_EVENT):
    st.session_state[LAST_EVENT] = signature
    if clicked is not None and mask[clicked]:
        st.session_state[IMAGE] = int(clicked)
        st.rerun()
    elif region:
        st.session_state[SELECTION] = [i for i in region if mask[i]]
st.caption("Ringed: the current image and its neighbours. Lasso or box (toolbar, top right) "
           "selects a region; double-click the plot to clear the drawing.")


def thumbs(indices, captions, columns: int = 8) -> None:
    widgets.image_grid([cache.thumbnail(ref, int(i), 96, seed) for i in indices], captions, columns)


tab_nb, tab_sel, tab_sat, tab_ba, tab_issues = st.tabs(
    [":material/hub: Neighbours", ":material/highlight_alt: Selection",
     ":material/satellite_alt: Augmented satellites", ":material/compare: Before / after fine-tuning",
     ":material/report: Label issues"])

# ---------------------------------------------------------------- neighbours
with tab_nb:
    st.session_state["explore.pick"] = st.session_state[IMAGE]
    left, right = st.columns([1, 4])
    with left:
        st.number_input("Image #", 0, len(ds) - 1, step=1, key="explore.pick", on_change=_pick,
                        help="Or click a point in the plot.")
        i = st.session_state[IMAGE]
        st.image(cache.thumbnail(ref, i, 192, seed), caption=f"#{i} · {classes[ds.labels[i]]}")
        st.text(Path(ds.path(i)).name)
    with right:
        other = int((~nb["same_class"]).sum())
        st.metric(f"of its {len(nb)} nearest neighbours belong to another class", other,
                  help="Where many neighbours are of another class, a head on these "
                       "features will struggle.")
        thumbs(nb["index"], [f"{'⚠ ' if not s else ''}{classes[lab]} · d={d:.3f} · #{j}"
                             for j, d, lab, s in nb.itertuples(index=False)])
        st.caption(f"⚠ = another class. d = {metric} distance in the "
                   f"{emb.features.shape[1]}-dimensional feature space.")

# ---------------------------------------------------------------- selection
with tab_sel:
    sel = st.session_state[SELECTION]
    if not sel:
        st.info("Drag a lasso or a box over the plot (toolbar, top right) to select a region.")
    else:
        summary = explore.selection_summary(sel, ds.labels, classes)
        a, b = st.columns([1, 3])
        with a:
            st.metric("images selected", len(sel))
            st.dataframe(summary[summary["count"] > 0], hide_index=True,
                         column_config={"share": st.column_config.ProgressColumn(
                             "share", format="percent", min_value=0.0, max_value=1.0)})
            st.button("Clear selection", key="explore.clear",
                      on_click=lambda: st.session_state.update({SELECTION: []}))
        with b:
            shown = sel[:48]
            thumbs(shown, [f"{classes[ds.labels[j]]} · #{j}" for j in shown])
            if len(sel) > len(shown):
                st.caption(f"First {len(shown)} of {len(sel)} shown; the export has all.")
        e1, e2, e3 = st.columns([1, 1, 2])
        e1.download_button("⬇ CSV (index, path, class, split)", explore.export_selection(ds, sel),
                           file_name=f"{ds.name}-selection.csv", mime="text/csv",
                           key="explore.csv")
        e2.download_button("⬇ File list (.txt)", explore.export_selection(ds, sel, "txt"),
                           file_name=f"{ds.name}-selection.txt", mime="text/plain",
                           key="explore.txt")
        with e3.form("explore.note_form", clear_on_submit=True, border=False):
            title = st.text_input("Note title", placeholder="e.g. bees photographed on flowers",
                                  key="explore.note_title")
            text = st.text_area("Note", height=68, key="explore.note_text")
            if st.form_submit_button("Save the selection as a note"):
                path = explore.save_note(ds, sel, title or "selection", text)
                st.success(f"Saved {len(sel)} images to {esc(path.name)}")
    notes = [n for n in explore.list_notes() if n.get("dataset") == ds.name]
    if notes:
        with st.expander(f"Saved notes for this dataset ({len(notes)})"):
            for n in notes[:20]:
                st.text(f"{n.get('title', '')} — {len(n.get('indices', []))} images")
                if n.get("text"):
                    st.text(n["text"])
                if st.button("Select these images", key=f"explore.note.{n['file']}"):
                    st.session_state[SELECTION] = [int(j) for j in n.get("indices", [])
                                                   if 0 <= int(j) < len(ds) and mask[int(j)]]
                    st.rerun()


# ---------------------------------------------------------------- satellites
def user_augment():
    """The Augmentation page's settings (session or link), or None when unset/identity."""
    from tlviz.augment import AugmentConfig

    try:
        cfg = AugmentConfig.from_dict(state.augment() or {})
    except (TypeError, ValueError):
        cfg = None
    return None if cfg is None or cfg.is_identity else cfg


with tab_sat:
    st.markdown("Each chosen image (★) is augmented a few times; the copies are embedded with "
                "the same backbone and placed in the same layout. Copies far from their "
                "original add variety; copies marked ✕ look like another class to a 5-NN vote.")
    mine = user_augment()
    aug_opts = ([] if mine is None else ["your settings"]) + list(explore.AUGMENT_PRESETS)
    default_imgs = [st.session_state[IMAGE]]
    for c in range(min(len(classes), 3)):
        first = idx[emb.labels[idx] == c]
        if len(first) and int(first[0]) not in default_imgs:
            default_imgs.append(int(first[0]))
    with st.form("explore.sat_form", border=False):
        f1, f2, f3 = st.columns([3, 2, 1])
        chosen = f1.multiselect("Images", idx.tolist(), default=default_imgs[:3], max_selections=8,
                                format_func=lambda j: f"#{j} · {classes[ds.labels[j]]}",
                                key="explore.sat_images")
        aug_name = f2.selectbox("Augmentation", aug_opts, key="explore.sat_aug",
                                index=aug_opts.index("book preset"),
                                help="'your settings' = the Augmentation page's sliders.")
        n_copies = f3.slider("Copies", 2, 16, 8, key="explore.sat_n")
        if st.form_submit_button("Embed augmented copies", type="primary"):
            cfg = mine if aug_name == "your settings" else explore.AUGMENT_PRESETS[aug_name]
            st.session_state[SAT_REQUEST] = (tuple(int(j) for j in chosen),
                                             json.dumps(cfg.to_dict(), sort_keys=True), n_copies,
                                             aug_name)
    if mine is None:
        st.caption("No augmentation set on the Augmentation page yet: the presets are offered.")
    req = st.session_state.get(SAT_REQUEST)
    if req and req[0]:
        chosen_t, aug_json, n_copies, aug_name = req
        try:
            with st.spinner(f"Embedding {len(chosen_t) * n_copies} augmented copies…"):
                sat = cache.satellites(ref, bb, seed, chosen_t, aug_json, n_copies, method, split)
                proj = cache.projector(ref, bb, method, seed, split)
        except Exception as e:  # noqa: BLE001 - a message, never a traceback
            st.error(f"Could not embed the copies ({type(e).__name__}): {esc(e)}")
        else:
            m1, m2, m3 = st.columns(3)
            m1.metric("copy distance / class distance", f"{sat.ratio:.2f}",
                      help="Mean distance of a copy to its original, divided by the mean "
                           "distance between class centres (full feature space). Near 0: the "
                           "augmentation adds little; near 1 or more: as far as another class.")
            m2.metric("copies that look like another class", f"{sat.crossed_share:.0%}",
                      help=f"A 5-nearest-neighbour vote among the dataset's images. Of the "
                           f"originals themselves, {sat.baseline_crossed:.0%} already vote "
                           "another class.")
            m3.metric("augmentation", aug_name)
            st.plotly_chart(explore.satellites_figure(proj.embedding_, emb.labels[idx], classes,
                                                      idx, sat), key="explore.sat_chart")
            st.caption("★ original, ● copy, ✕ copy whose 5-NN vote is another class. The star "
                       "is placed by the same transform as its copies, so it sits near (not "
                       "always exactly on) its dot in the main plot.")
            per = sat.per_image.assign(**{"class": [classes[c] for c in sat.per_image["label"]]})
            st.dataframe(per[["index", "class", "mean_distance", "ratio", "crossed_share"]],
                         hide_index=True)
            for j in chosen_t[:3]:
                if sat.copies.get(j):
                    pts = sat.points[(sat.points["index"] == j) & (sat.points["copy"] >= 0)]
                    widgets.image_grid([cache.thumbnail(ref, j, 96, seed)] + sat.copies[j],
                                       [f"#{j} original"] + [
                                           f"{'✕ ' if c else ''}d={d:.2f}"
                                           for c, d in zip(pts["crossed"], pts["distance"])],
                                       columns=min(9, n_copies + 1))
    with st.expander("Which augmentation moves images the most? (all presets on the chosen images)"):
        if st.button("Compare augmentation types", key="explore.cmp_btn"):
            st.session_state[CMP_REQUEST] = (tuple(int(j) for j in chosen), 6)
        creq = st.session_state.get(CMP_REQUEST)
        if creq and creq[0]:
            extra = {"your settings": mine.to_dict()} if mine is not None else {}
            try:
                with widgets.progress("Augmenting and embedding") as cb:
                    table = cache.augmentation_comparison(ref, bb, seed, creq[0], creq[1],
                                                          json.dumps(extra, sort_keys=True),
                                                          _progress=cb)
            except Exception as e:  # noqa: BLE001
                st.error(f"Comparison failed ({type(e).__name__}): {esc(e)}")
            else:
                st.dataframe(table, hide_index=True)
                st.caption(f"{creq[1]} copies of each of {len(creq[0])} images per augmentation. "
                           "ratio = copy distance / class distance; crossed = share of copies "
                           "whose 5-NN vote is another class.")

# ---------------------------------------------------------------- before / after
with tab_ba:
    led = cache.ledger()
    runs = led.list_runs(status="completed")
    runs = runs[(runs["mode"] == "fine-tune") & (runs["dataset"] == ref)]
    if runs.empty:
        st.info("No fine-tuned run on this dataset yet. Fine-tune one on the Train page "
                "(mode 'fine-tune'), then come back to see how it moved the images.")
        st.page_link(TRAIN_PAGE, label="Open the Train page", icon=":material/model_training:")
    else:
        labels = {int(r.id): f"#{r.id} · {r.name or ''} · {r.backbone} · val "
                  f"{r.val_accuracy:.1%}" if r.val_accuracy == r.val_accuracy else f"#{r.id}"
                  for r in runs.itertuples()}
        with st.form("explore.ba_form", border=False):
            b1, b2, b3, b4 = st.columns([3, 1, 1, 2])
            run_id = b1.selectbox("Fine-tuned run", list(labels), format_func=labels.get,
                                  key="explore.ba_run")
            ba_method = b2.radio("Layout", ["pca", "umap"], key="explore.ba_method")
            align = b3.radio("Align", ["procrustes", "joint"], key="explore.ba_align",
                             help="procrustes: two layouts, the second rotated/scaled onto the "
                                  "first; joint: one projection of both feature sets.")
            valid = emb.indices(None)
            n_img = len(valid)
            if len(valid) > 20:
                n_img = b4.slider("Images", 20, min(600, len(valid)), min(300, len(valid)),
                                  key="explore.ba_n",
                                  help="A seeded sample; the fine-tuned backbone runs in torch.")
            if st.form_submit_button("Compare frozen and fine-tuned", type="primary"):
                sample = np.sort(np.random.default_rng(0).permutation(valid)[:n_img])
                st.session_state[BA_REQUEST] = (int(run_id), tuple(int(j) for j in sample),
                                                ba_method, align)
        breq = st.session_state.get(BA_REQUEST)
        if breq and breq[0] in labels:
            try:
                with widgets.progress("Embedding with the fine-tuned backbone") as cb:
                    ba = cache.before_after(ref, seed, str(led.path), breq[0], breq[1], breq[2],
                                            breq[3], _progress=cb)
            except Exception as e:  # noqa: BLE001
                st.error(f"Could not compare run #{breq[0]} ({type(e).__name__}): {esc(e)}")
            else:
                rep = ba.report.assign(change=ba.report["after"] - ba.report["before"])
                st.dataframe(rep, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                 for c in ("before", "after", "change")})
                if st.toggle("Animate", key="explore.ba_anim"):
                    st.plotly_chart(explore.animation_figure(ba.before, ba.after, ba.labels,
                                                             classes, ba.indices),
                                    key="explore.ba_animation")
                else:
                    lft, rgt = st.columns(2)
                    lft.plotly_chart(embedding_figure(ba.before, ba.labels, classes, ba.indices,
                                                    title="frozen backbone", height=460),
                                   key="explore.ba_before")
                    rgt.plotly_chart(embedding_figure(ba.after, ba.labels, classes, ba.indices,
                                                    title=f"fine-tuned (run #{breq[0]})",
                                                    height=460), key="explore.ba_after")
                st.caption(f"Layouts aligned by {breq[3]} (disparity {ba.disparity:.3f}: 0 = "
                           "same shape). Metrics on the full feature vectors; 'train' are the "
                           "images the fine-tuning saw.")

# ---------------------------------------------------------------- label issues
with tab_issues:
    i1, i2 = st.columns([1, 1])
    kk = i1.slider("Neighbours to ask", 5, 20, 10, key="explore.issue_k")
    top = i2.slider("Show", 8, 64, 24, step=8, key="explore.issue_top")
    issues = cache.label_issues(ref, bb, seed, split, kk, metric)
    st.markdown(f"**{len(issues)}** of {len(idx)} images have most of their {kk} nearest "
                "neighbours in another class: possible mislabels, ambiguous or odd images. "
                "Worst first.")
    if len(issues):
        head = issues.head(top)
        thumbs(head["index"], [f"#{j} labelled {classes[lab]} · {s:.0%} {classes[sug]}"
                               for j, lab, s, sug in zip(head["index"], head["label"],
                                                         head["other_share"], head["suggested"])])
        table = issues.assign(label=[classes[c] for c in issues["label"]],
                              suggested=[classes[c] for c in issues["suggested"]],
                              path=[ds.path(int(j)) for j in issues["index"]])
        st.download_button("⬇ CSV of all flagged images", table.to_csv(index=False),
                           file_name=f"{ds.name}-label-issues.csv", mime="text/csv",
                           key="explore.issues_csv")
        st.selectbox("Show the neighbours of (Neighbours tab)", head["index"].tolist(),
                     index=None, format_func=lambda j: f"#{j}", key="explore.issue_pick",
                     on_change=_inspect_issue)
