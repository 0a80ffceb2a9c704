"""The Explore page's pieces: the current image and selection, the plot's selection handler,
and one fragment per tab (a click inside a tab reruns that tab only).

Choices worth a link live in :mod:`ui.state` (the current image, ``?explore_image=42``;
the selection, shared with the Embedding space page, session only). The keys below are
transient session state: requests made with a tab's button, and the dataset they are for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st

from tlviz import explore
from tlviz.metrics import accuracy_text
from tlviz.plots import add_density_layer, embedding_figure
from tlviz.sprites import stratified_sample
from ui import cache, embedmap, hovermap, nav, state, widgets, workspace
from ui.text import esc

IMAGE = "explore_image"  # ui.state: the image whose neighbours are shown
SELECTION = "selection"  # ui.state: lasso/box selection (the Embedding space page's too)
FOR = "explore.for"  # (dataset, seed) the transient state below belongs to
SAT_REQUEST, CMP_REQUEST, BA_REQUEST = "explore.sat", "explore.cmp", "explore.ba"
CHART = "explore.chart"  # the main plot's selection event
MAP = "explore_map"  # the container of the main plot and its hover previews
ISSUE_PICK = "explore.issue_pick"  # label issues: "show the neighbours of"


@dataclass(frozen=True)
class View:
    """What the page shows: dataset, embeddings, layout settings and the shown images."""

    ds: object
    emb: object
    ref: str
    backbone: str
    seed: int
    split: str | None
    method: str
    metric: str
    k: int
    idx: np.ndarray  # dataset positions of the shown images
    mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        mask = np.zeros(len(self.ds), bool)
        mask[self.idx] = True
        object.__setattr__(self, "mask", mask)

    @property
    def classes(self) -> list[str]:
        return list(self.ds.classes)

    def shown(self, indices) -> list[int]:
        """``indices`` that are dataset positions among the shown images."""
        return [int(i) for i in indices if 0 <= int(i) < len(self.ds) and self.mask[int(i)]]

    def thumbs(self, indices, captions, columns: int = 8) -> None:
        widgets.image_grid([cache.thumbnail(self.ref, int(i), 96, self.seed) for i in indices],
                           captions, columns)


def _image_bounds(v: View) -> dict:
    return {"bounds": (0, len(v.ds) - 1)}


def current_image(v: View) -> int:
    """The current image (one of the shown ones); the selection is kept to shown images.
    Another dataset than last time starts afresh."""
    first = int(v.idx[0])
    if st.session_state.get(FOR, (v.ref, v.seed)) != (v.ref, v.seed):
        for key in (SAT_REQUEST, CMP_REQUEST, BA_REQUEST):
            st.session_state.pop(key, None)
        state.set(IMAGE, first, default=first)
        state.set(SELECTION, [], url=False)
    st.session_state[FOR] = (v.ref, v.seed)
    image = int(state.get(IMAGE, first, **_image_bounds(v)))
    if not v.mask[image]:
        image = first
    state.set(IMAGE, image, default=first)
    state.set(SELECTION, v.shown(state.get(SELECTION, [])), url=False)
    return image


def _on_chart_select(mask: np.ndarray) -> None:
    """The plot's selection: a click picks the current image, a lasso or box the selection."""
    clicked, region = explore.selection_from_event(st.session_state.get(CHART))
    if clicked is not None and 0 <= clicked < len(mask) and mask[clicked]:
        state.set(IMAGE, int(clicked))
    elif region:
        state.set(SELECTION, [i for i in region if 0 <= i < len(mask) and mask[i]], url=False)


def chart(v: View, coords: np.ndarray, image: int, nb) -> None:
    """The layout, the current image and its neighbours ringed. A drag pans and a click
    picks an image; the lasso and box are in the toolbar. Hovering a dot shows its image."""
    ringed = [image, *nb["index"].tolist()]
    large = len(v.idx) > embedmap.LARGE  # all as a density image, a sample (+ the ringed) as dots
    rows = np.arange(len(v.idx))
    if large:
        rows = np.union1d(stratified_sample(v.emb.labels[v.idx], embedmap.LARGE, seed=v.seed),
                          np.flatnonzero(np.isin(v.idx, ringed)))
    shown = v.idx[rows]
    names = [Path(v.ds.path(int(i))).name for i in shown]
    sheets = None if large else hovermap.sprites(v.ref, v.seed)
    fig = embedding_figure(coords[rows], v.emb.labels[shown], v.classes, shown, names=names,
                           highlight=ringed, dragmode="pan",
                           splits=[str(s) for s in v.ds.splits[shown]],
                           image_hover=sheets is not None)
    if large:
        add_density_layer(fig, *cache.density(v.ref, v.backbone, v.method, v.seed, v.split))
        st.caption(f"All {len(v.idx):,} images as a density image; {len(rows):,} as dots (an "
                   "even sample per class, with the current image and its neighbours).")
    with st.container(key=MAP):
        st.plotly_chart(widgets.present(fig, 700), key=CHART, on_select=partial(_on_chart_select, v.mask),
                        selection_mode=("points", "box", "lasso"))
        if sheets is not None:
            hovermap.attach(MAP, sheets, v.classes)


def _rerun_if_image_moved(image: int) -> None:
    """A tab changed the current image: the plot's rings and every tab follow."""
    if state.get(IMAGE, image) != image:
        st.rerun()


# ----------------------------------------------------------------------------- the tabs


@workspace.fragment
def neighbours(v: View, image: int, nb) -> None:
    _rerun_if_image_moved(image)
    classes = v.classes
    left, right = st.columns([1, 4])
    with left:
        st.number_input("Image #", 0, len(v.ds) - 1, step=1, help="Or click a point in the plot.",
                        **state.widget(IMAGE, int(v.idx[0]), **_image_bounds(v)))
        st.image(cache.thumbnail(v.ref, image, 192, v.seed),
                 caption=f"#{image} · {classes[v.ds.labels[image]]}")
        st.text(Path(v.ds.path(image)).name)
    with right:
        other = int((~nb["same_class"]).sum())
        st.metric(f"of its {len(nb)} nearest neighbours belong to another class", other,
                  help="Where many neighbours are of another class, a head on these "
                       "features will struggle.")
        v.thumbs(nb["index"], [f"{'⚠ ' if not s else ''}{classes[lab]} · d={d:.3f} · #{j}"
                               for j, d, lab, s in nb.itertuples(index=False)])
        st.caption(f"⚠ = another class. d = {v.metric} distance in the "
                   f"{v.emb.features.shape[1]}-dimensional feature space.")


def _select(indices: list[int]) -> None:
    state.set(SELECTION, indices, url=False)


@workspace.fragment
def selection(v: View) -> None:
    ds, classes = v.ds, v.classes
    sel = v.shown(state.get(SELECTION, []))
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
            st.button("Clear selection", key="explore.clear", on_click=_select, args=([],))
        with b:
            shown = sel[:48]
            v.thumbs(shown, [f"{classes[ds.labels[j]]} · #{j}" for j in shown])
            if len(sel) > len(shown):
                st.caption(f"First {len(shown)} of {len(sel)} shown; the export has all.")
        e1, e2, e3 = st.columns([1, 1, 2])
        e1.download_button("CSV (index, path, class, split)", explore.export_selection(ds, sel),
                           file_name=f"{ds.name}-selection.csv", mime="text/csv",
                           key="explore.csv", icon=":material/download:")
        e2.download_button("File list (.txt)", explore.export_selection(ds, sel, "txt"),
                           file_name=f"{ds.name}-selection.txt", mime="text/plain",
                           key="explore.txt", icon=":material/download:")
        with e3.form("explore.note_form", clear_on_submit=True, border=False):
            title = st.text_input("Note title", placeholder="e.g. bees photographed on flowers",
                                  key="explore.note_title")
            text = st.text_area("Note", height=68, key="explore.note_text")
            if st.form_submit_button("Save the selection as a note") \
                    and workspace.writable("save notes"):
                path = explore.save_note(ds, sel, title or "selection", text)
                st.success(f"Saved {len(sel)} images to {esc(path.name)}")
    notes = [n for n in explore.list_notes() if n.get("dataset") == ds.name]
    if notes:
        with st.expander(f"Saved notes for this dataset ({len(notes)})"):
            for n in notes[:20]:
                st.text(f"{n.get('title', '')} — {len(n.get('indices', []))} images")
                if n.get("text"):
                    st.text(n["text"])
                st.button("Select these images", key=f"explore.note.{n['file']}",
                          on_click=_select, args=(v.shown(n.get("indices", [])),))


def user_augment():
    """The Augmentation page's settings (session or link), or None when unset/identity."""
    from tlviz.augment import AugmentConfig

    try:
        cfg = AugmentConfig.from_dict(state.augment() or {})
    except (TypeError, ValueError):
        cfg = None
    return None if cfg is None or cfg.is_identity else cfg


@workspace.fragment
def satellites(v: View, image: int) -> None:
    ds, classes, idx = v.ds, v.classes, v.idx
    st.markdown("Each chosen image (★) is augmented a few times; the copies are embedded with "
                "the same backbone and placed in the same layout. Copies far from their "
                "original add variety; copies marked ✕ look like another class to a 5-NN vote.")
    mine = user_augment()
    aug_opts = ([] if mine is None else ["your settings"]) + list(explore.AUGMENT_PRESETS)
    default_imgs = [image]
    for c in range(min(len(classes), 3)):
        first = idx[v.emb.labels[idx] == c]
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
        _satellite_results(v, *req)
    with st.expander("Which augmentation moves images the most? (all presets on the chosen images)"):
        if st.button("Compare augmentation types", key="explore.cmp_btn"):
            st.session_state[CMP_REQUEST] = (tuple(int(j) for j in chosen), 6)
        creq = st.session_state.get(CMP_REQUEST)
        if creq and creq[0]:
            extra = {"your settings": mine.to_dict()} if mine is not None else {}
            try:
                with widgets.progress("Augmenting and embedding") as cb:
                    table = cache.augmentation_comparison(v.ref, v.backbone, v.seed, creq[0],
                                                          creq[1], json.dumps(extra, sort_keys=True),
                                                          progress=cb)
            except Exception as e:  # noqa: BLE001 - the page must survive a failed comparison
                st.error(f"Comparison failed ({type(e).__name__}): {esc(e)}")
            else:
                st.dataframe(table, hide_index=True)
                st.caption(f"{creq[1]} copies of each of {len(creq[0])} images per augmentation. "
                           "ratio = copy distance / class distance; crossed = share of copies "
                           "whose 5-NN vote is another class.")


def _satellite_results(v: View, chosen: tuple[int, ...], aug_json: str, n_copies: int,
                       aug_name: str) -> None:
    classes, idx = v.classes, v.idx
    try:
        with st.spinner(f"Embedding {len(chosen) * n_copies} augmented copies…"):
            sat = cache.satellites(v.ref, v.backbone, v.seed, chosen, aug_json, n_copies,
                                   v.method, v.split)
            proj = cache.projector(v.ref, v.backbone, v.method, v.seed, v.split)
    except Exception as e:  # noqa: BLE001 - a message, never a traceback
        st.error(f"Could not embed the copies ({type(e).__name__}): {esc(e)}")
        return
    m1, m2, m3 = st.columns(3)
    m1.metric("copy distance / class distance", f"{sat.ratio:.2f}",
              help="Mean distance of a copy to its original, divided by the mean distance "
                   "between class centres (full feature space). Near 0: the augmentation adds "
                   "little; near 1 or more: as far as another class.")
    m2.metric("copies that look like another class", f"{sat.crossed_share:.0%}",
              help=f"A 5-nearest-neighbour vote among the dataset's images. Of the originals "
                   f"themselves, {sat.baseline_crossed:.0%} already vote another class.")
    m3.metric("augmentation", aug_name)
    st.plotly_chart(widgets.present(explore.satellites_figure(
        proj.embedding_, v.emb.labels[idx], classes, idx, sat)), key="explore.sat_chart")
    st.caption("★ original, ● copy, ✕ copy whose 5-NN vote is another class. The star is "
               "placed by the same transform as its copies, so it sits near (not always "
               "exactly on) its dot in the main plot.")
    per = sat.per_image.assign(**{"class": [classes[c] for c in sat.per_image["label"]]})
    st.dataframe(per[["index", "class", "mean_distance", "ratio", "crossed_share"]],
                 hide_index=True)
    for j in chosen[:3]:
        if sat.copies.get(j):
            pts = sat.points[(sat.points["index"] == j) & (sat.points["copy"] >= 0)]
            widgets.image_grid([cache.thumbnail(v.ref, j, 96, v.seed)] + sat.copies[j],
                               [f"#{j} original"] + [f"{'✕ ' if c else ''}d={d:.2f}"
                                                     for c, d in zip(pts["crossed"], pts["distance"])],
                               columns=min(9, n_copies + 1))


@workspace.fragment
def before_after(v: View) -> None:
    led = cache.ledger()
    runs = led.list_runs(status="completed")
    runs = runs[(runs["mode"] == "fine-tune") & (runs["dataset"] == v.ref)]
    if runs.empty:
        st.info("No fine-tuned run on this dataset yet. Fine-tune one on the Train page "
                "(mode 'fine-tune'), then come back to see how it moved the images.")
        st.page_link(nav.TRAIN, label="Open the Train page", icon=nav.ICONS[nav.TRAIN])
        return
    labels = {int(r.id): f"#{r.id} · {r.name or ''} · {r.backbone} · val "
              f"{accuracy_text(r.val_accuracy, r.n_val)}" if r.val_accuracy == r.val_accuracy
              else f"#{r.id}" for r in runs.itertuples()}
    with st.form("explore.ba_form", border=False):
        b1, b2, b3, b4 = st.columns([3, 1, 1, 2])
        run_id = b1.selectbox("Fine-tuned run", list(labels), format_func=labels.get,
                              key="explore.ba_run")
        ba_method = b2.radio("Layout", ["pca", "umap"], key="explore.ba_method")
        align = b3.radio("Align", ["procrustes", "joint"], key="explore.ba_align",
                         help="procrustes: two layouts, the second rotated/scaled onto the "
                              "first; joint: one projection of both feature sets.")
        valid = v.emb.indices(None)
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
    if not breq or breq[0] not in labels:
        return
    try:
        with widgets.progress("Embedding with the fine-tuned backbone") as cb:
            ba = cache.before_after(v.ref, v.seed, str(led.path), *breq, progress=cb)
    except Exception as e:  # noqa: BLE001 - a run whose weights no longer load: say so, go on
        st.error(f"Could not compare run #{breq[0]} ({type(e).__name__}): {esc(e)}")
        return
    rep = ba.report.assign(change=ba.report["after"] - ba.report["before"])
    st.dataframe(rep, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                     for c in ("before", "after", "change")})
    if st.toggle("Animate", key="explore.ba_anim"):
        st.plotly_chart(explore.animation_figure(ba.before, ba.after, ba.labels, v.classes,
                                                 ba.indices), key="explore.ba_animation")
    else:
        lft, rgt = st.columns(2)
        lft.plotly_chart(embedding_figure(ba.before, ba.labels, v.classes, ba.indices,
                                          title="frozen backbone", height=460),
                         key="explore.ba_before")
        rgt.plotly_chart(embedding_figure(ba.after, ba.labels, v.classes, ba.indices,
                                          title=f"fine-tuned (run #{breq[0]})", height=460),
                         key="explore.ba_after")
    st.caption(f"Layouts aligned by {breq[3]} (disparity {ba.disparity:.3f}: 0 = same shape). "
               "Metrics on the full feature vectors; 'train' are the images the fine-tuning saw.")


def _inspect_issue() -> None:
    if st.session_state.get(ISSUE_PICK) is not None:
        state.set(IMAGE, int(st.session_state[ISSUE_PICK]))


@workspace.fragment
def label_issues(v: View, image: int) -> None:
    _rerun_if_image_moved(image)
    ds, classes = v.ds, v.classes
    top = st.columns([1, 1])[0].slider("Show", 8, 64, 24, step=8, key="explore.issue_top")
    with st.spinner("Out-of-fold probabilities (5-fold cross-validation)…"):
        issues = cache.label_issues(v.ref, v.backbone, v.seed, v.split)
    st.markdown(f"**{len(issues)}** of {len(v.idx)} images look mislabelled: a logistic head "
                "that never saw them gives their label a low probability and another class a "
                "high one (confident learning, per-class thresholds). Most suspicious first.")
    if not len(issues):
        return
    head = issues.head(top)
    v.thumbs(head["index"], [f"#{j} labelled {classes[lab]} ({p:.0%}) · {classes[sug]} ({q:.0%})"
                             for j, lab, p, sug, q in zip(head["index"], head["label"],
                                                          head["given_prob"], head["suggested"],
                                                          head["suggested_prob"])])
    table = issues.assign(label=[classes[c] for c in issues["label"]],
                          suggested=[classes[c] for c in issues["suggested"]],
                          path=[ds.path(int(j)) for j in issues["index"]])
    st.download_button("CSV of all flagged images", table.to_csv(index=False),
                       file_name=f"{ds.name}-label-issues.csv", mime="text/csv",
                       key="explore.issues_csv", icon=":material/download:")
    st.selectbox("Show the neighbours of (Neighbours tab)", head["index"].tolist(),
                 index=None, format_func=lambda j: f"#{j}", key=ISSUE_PICK,
                 on_change=_inspect_issue)
