"""The Embedding space page's map pieces: one backbone's map (dots or images, coloured by
class or by neighbours kept, with image previews on hover) and the selection panel that
sits beside the maps.

Choices worth a link are in :mod:`ui.state` (``color_by``, ``points``); the selection is
session state shared with Explore (``state.set("selection", [...], url=False)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from tlviz.plots import add_density_layer, add_image_points, embedding_figure
from tlviz.sprites import stratified_sample
from ui import cache, hovermap, nav, state, widgets
from ui.text import esc

COLOR_BY = {"class": "class", "kept": "neighbours kept", "correct": "a run: right / wrong",
            "confidence": "a run: confidence"}
RUN_COLOURS = ("correct", "confidence")
RIGHT_WRONG = [[0, "#D55E00"], [0.5, "#D55E00"], [0.5, "#0072B2"], [1, "#0072B2"]]
POINTS = {"dots": "dots", "images": "images"}
MAX_IMAGES = 1000  # images drawn as points; beyond, an even sample per class
K = 10  # neighbours compared for "kept" and trustworthiness
LARGE = 50_000  # more points: all of them as a density image, this many as interactive dots
# this page's metrics are compact: four fit beside each other above each of two maps
CSS = """<style>
[data-testid="stMainBlockContainer"] [data-testid="stMetricValue"] { font-size: 1.3rem; }
[data-testid="stMainBlockContainer"] [data-testid="stMetricLabel"] p { font-size: 0.78rem; }
</style>"""  # not in presenter mode: a room reads the metrics at the theme's size
CARD_CSS = "<style>#tlviz-hover-card { overflow-wrap: anywhere; }</style>"
TRUST_SENTENCE = ("A map like this keeps who is next to whom, not how far: the gaps between "
                  "groups and their sizes mean little, so read neighbours, not distances.")


def display_choices(dim: int, choices=None) -> tuple[str, str, int | None]:
    """(colour by, points as, run id) from small controls; 3D maps keep dots coloured by
    class. Colouring by a run offers the finished frozen-backbone runs of this dataset and
    the sidebar's backbone (their heads run on the cached features: no image is read)."""
    if dim != 2:
        return "class", "dots", None
    st.html(CARD_CSS if choices is not None and choices.presenter else CSS + CARD_CSS)
    color_by = st.selectbox(
        "Colour by", list(COLOR_BY), format_func=COLOR_BY.get,
        help=f"neighbours kept: how many of an image's {K} nearest neighbours in feature space "
             f"are also among its {K} nearest on the map (dark = the map moved it). "
             "A run: where a trained head is right or wrong, or how sure it is; its wrong "
             "validation images are ringed.",
        **state.widget("color_by", "class", list(COLOR_BY)))
    run_id = None
    if color_by in RUN_COLOURS and choices is not None:
        runs = cache.ledger().list_runs(status="completed")
        runs = runs[(runs["dataset"] == choices.dataset) & (runs["backbone"] == choices.backbone)
                     & (runs["mode"] == "feature-extraction")]
        ids = [int(i) for i in runs["id"]]
        if not ids:
            st.caption(f"No finished head on {esc(choices.backbone)} for this dataset yet: "
                       "train one on the Train page.")
            color_by = "class"
        else:
            rows = {int(r["id"]): r for r in runs.to_dict(orient="records")}
            run_id = int(st.selectbox("Run", ids, format_func=lambda i: widgets.run_label(rows[i]),
                                      **state.widget("color_run", ids[0], ids)))
    points = st.segmented_control(
        "Points", list(POINTS), format_func=POINTS.get,
        help=f"images: the thumbnails themselves at their places (up to {MAX_IMAGES:,}, an "
             "even sample per class beyond); zoom in to see them larger.",
        **state.widget("points", "dots", list(POINTS))) or "dots"
    return color_by, points, run_id


def run_colouring(choices, ds, idx: np.ndarray, color_by: str, run_id: int | None):
    """(values, colour options, ringed indices) of a run colouring for the map's rows
    ``idx``, or None: right/wrong (1/0) or confidence, wrong val images ringed."""
    if color_by not in RUN_COLOURS or run_id is None:
        return None
    ridx, proba = cache.run_proba(choices.dataset, choices.backbone, choices.seed,
                                  str(cache.ledger().path), run_id)
    rows = np.searchsorted(ridx, idx)
    proba = proba[np.clip(rows, 0, len(ridx) - 1)]
    pred = proba.argmax(1)
    wrong = pred != ds.labels[idx]
    ring = [int(i) for i in idx[wrong & (ds.splits[idx] == "val")]]
    if color_by == "correct":
        opts = {"color_title": f"run #{run_id}", "color_range": (0, 1),
                "color_scale": RIGHT_WRONG, "color_ticks": ([0.25, 0.75], ["wrong", "right"])}
        return (~wrong).astype(float), opts, ring
    opts = {"color_title": f"run #{run_id}<br>confidence", "color_range": (0, 1)}
    return proba.max(1), opts, ring


def draw(key: str, chart_key: str, choices, ds, labels: np.ndarray, idx: np.ndarray,
         coords: np.ndarray, *, names: list[str], selected: list[int], height: int,
         on_select: Callable | str, sheets, color_by: str, points: str,
         kept: np.ndarray | None, run=None) -> None:
    """One map in ``st.container(key=key)``: the plotly chart (``chart_key``: its selection
    event) and, in 2D, the hover previews listening to it. ``run``: a
    :func:`run_colouring` (it replaces the class or kept colouring)."""
    dim = coords.shape[1]
    hover = dim == 2 and sheets is not None
    by_kept = color_by == "kept" and kept is not None and dim == 2 and run is None
    colour = {"color_values": kept, "color_title": f"kept<br>(of {K})",
              "color_range": (0, K)} if by_kept else {}
    ring = selected or None
    if run is not None:
        values, opts, wrong_val = run
        colour = {"color_values": values, **opts}
        ring = selected or wrong_val or None
    fig = embedding_figure(coords, labels, ds.classes, idx, names=names,
                           highlight=ring, height=height, dragmode="pan",
                           splits=[str(s) for s in ds.splits[idx]], image_hover=hover, **colour)
    fig = widgets.present(fig)
    if points == "images" and hover:
        pick = stratified_sample(labels, MAX_IMAGES, seed=choices.seed)
        uris = cache.point_images(choices.dataset, choices.seed, tuple(int(i) for i in idx[pick]))
        add_image_points(fig, coords[pick], uris)
    with st.container(key=key):
        st.plotly_chart(fig, width="stretch", key=chart_key, on_select=on_select,
                        selection_mode=("points", "box", "lasso"))
        if hover:
            hovermap.attach(key, sheets, list(ds.classes),
                            K if kept is not None and run is None else None)
    if points == "images" and hover and len(idx) > MAX_IMAGES:
        st.caption(f"{MAX_IMAGES:,} of {len(idx):,} images drawn (an even sample per class); "
                   "every dot still answers hover and lasso.")


Box = tuple[float, float, float, float]  # x0, x1, y0, y1 in the map's coordinates


def region_of(selection: dict) -> Box | None:
    """The bounding box of a plotly selection's first box or lasso (a chart's
    ``selection`` state), or None when it has no usable one."""
    for shape in list(selection.get("box") or []) + list(selection.get("lasso") or []):
        try:
            xs = np.asarray(shape.get("x") or [], dtype=float)
            ys = np.asarray(shape.get("y") or [], dtype=float)
        except (AttributeError, TypeError, ValueError):
            continue
        if (xs.size >= 2 and ys.size >= 2 and np.isfinite(xs).all() and np.isfinite(ys).all()
                and np.ptp(xs) > 0 and np.ptp(ys) > 0):
            return float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    return None


def inside(coords: np.ndarray, box: Box | None) -> np.ndarray:
    """Row positions of the points of a 2D map inside ``box`` (all of them when None)."""
    if box is None:
        return np.arange(len(coords))
    x, y = coords[:, 0], coords[:, 1]
    return np.flatnonzero((x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3]))


def zoom_pick(labels: np.ndarray, coords: np.ndarray, box: Box | None, seed: int) -> np.ndarray:
    """Rows drawn as dots: an even sample per class of at most :data:`LARGE` of the points
    inside ``box`` (of all points when None), so that zooming in shows more of them."""
    rows = inside(coords, box)
    return rows[stratified_sample(np.asarray(labels)[rows], LARGE, seed=seed)]


def _zoom(chart_key: str, view: tuple) -> Box | None:
    z = st.session_state.get(f"{chart_key}.zoom")
    return z["box"] if z and z["view"] == view else None  # another map: the whole of it


def _set_zoom(chart_key: str, view: tuple, box: Box | None) -> None:
    st.session_state[f"{chart_key}.zoom"] = {"view": view, "box": box}


def draw_large(key: str, chart_key: str, choices, ds, backbone: str, method: str,
               split: str | None, labels: np.ndarray, idx: np.ndarray, coords: np.ndarray, *,
               selected: list[int], height: int, on_select: Callable | str,
               fitted: np.ndarray | None, color_by: str = "class") -> None:
    """A 2D map of more than :data:`LARGE` points: every point rasterised by datashader and
    coloured by class (an image under the axes), with an even sample per class of
    :data:`LARGE` points drawn over it as dots that answer hover, click and lasso. A box or
    lasso drawn on it can be zoomed into: the image is redrawn for that region and its
    dots re-sampled from the points inside it (all of them when at most :data:`LARGE`)."""
    view = (choices.dataset, backbone, method, split, choices.seed)
    box = _zoom(chart_key, view)
    region = region_of((st.session_state.get(chart_key) or {}).get("selection") or {})
    zin, zout = st.columns(2, gap="small")
    zin.button("Zoom into the selected region", key=f"{chart_key}.zoom_in", width="stretch",
               icon=":material/zoom_in:", disabled=region is None or region == box,
               on_click=_set_zoom, args=(chart_key, view, region),
               help="Draw a box or a lasso on the map (chart toolbar) first: the density image "
                    f"is redrawn for that region and up to {LARGE:,} of its points become dots.")
    zout.button("Whole map", key=f"{chart_key}.zoom_out", width="stretch",
                icon=":material/zoom_out_map:", disabled=box is None,
                on_click=_set_zoom, args=(chart_key, view, None))
    pick = zoom_pick(labels, coords, box, choices.seed)
    fig = embedding_figure(coords[pick], labels[pick], ds.classes, idx[pick],
                           names=[ds.path(int(i)) for i in idx[pick]], highlight=selected or None,
                           height=height, dragmode="pan", marker_size=2 if box is None else 4,
                           webgl=True)
    fig.update_traces(marker={"opacity": 0.35 if box is None else 0.6, "line": {"width": 0}})
    uri, xr, yr = cache.density(choices.dataset, backbone, method, choices.seed, split, box=box)
    add_density_layer(fig, uri, xr, yr)
    with st.container(key=key):
        st.plotly_chart(fig, width="stretch", key=chart_key, on_select=on_select,
                        selection_mode=("points", "box", "lasso"))
    how = "" if fitted is None else (
        f" The layout was fitted on {int(fitted.sum()):,} points (an even sample per class); "
        f"the other {int((~fitted).sum()):,} were placed on it by the method's transform.")
    kept = (" Colouring by neighbours kept needs every point's neighbours on the map: at this "
            "size the map is coloured by class.") if color_by == "kept" else ""
    if box is None:
        st.caption(f"All {len(idx):,} points drawn as a density image coloured by class "
                   f"(datashader); {len(pick):,} of them (an even sample per class) as dots that "
                   f"answer hover and lasso.{how}{kept}")
        return
    n_in = len(inside(coords, box))
    st.caption(f"Zoomed into x {box[0]:.2f} to {box[1]:.2f}, y {box[2]:.2f} to {box[3]:.2f}: "
               f"{n_in:,} of {len(idx):,} points, drawn as a density image of this region; "
               f"{len(pick):,} of them as dots"
               + (" (all of them)." if len(pick) == n_in else " (an even sample per class).")
               + how + kept)


def sample_3d(labels: np.ndarray, idx: np.ndarray, coords: np.ndarray,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 3D map of more than :data:`LARGE` points keeps an even sample per class of
    :data:`LARGE` (no density image in 3D; a note says so); smaller maps stay whole."""
    if coords.shape[1] != 3 or len(idx) <= LARGE:
        return idx, coords
    pick = stratified_sample(labels[idx], LARGE, seed=seed)
    st.caption(f"3D: {LARGE:,} of {len(idx):,} points drawn (an even sample per class); the 2D "
               "view draws them all.")
    return idx[pick], coords[pick]


def selection_panel(choices, ds, selected: list[int]) -> None:
    """The selected images, in a narrow column beside the maps."""
    if not selected:
        st.caption("Hover a dot to see its image. Click one, or pick the lasso in the chart's "
                   "toolbar, to pin images here.")
        return
    head, clear = st.columns([3, 2], vertical_alignment="center")
    head.markdown(f"**{len(selected)} selected image(s)**")
    clear.button("Clear", key="emb_clear", on_click=state.set, args=("selection", []),
                 kwargs={"default": []}, help="Clear the selection")
    n_train = int((ds.splits[selected] == "train").sum())
    if n_train and st.button(f"Train without these ({n_train})", key="emb_what_if",
                             icon=":material/science:", width="stretch",
                             help="A what-if run: the same training without the selected "
                                  "training images; Compare shows it beside the others."):
        st.session_state["train.what_if"] = {"dataset": choices.dataset,
                                             "indices": [int(i) for i in selected]}
        st.switch_page(nav.TRAIN)
    if len(selected) == 1:
        i = selected[0]
        st.image(cache.thumbnail(choices.dataset, i, 224, choices.seed), width="stretch")
        st.markdown(f"**{esc(ds.classes[ds.labels[i]])}**  \n{esc(widgets.file_label(ds, i))}  \n"
                    f"split: {esc(ds.splits[i])} · image #{i}")
        return
    show = selected[::-(-len(selected) // 24)][:24]  # spread over the selection
    widgets.image_grid([cache.thumbnail(choices.dataset, i, 96, choices.seed) for i in show],
                       [str(ds.classes[ds.labels[i]]) for i in show], columns=3)
    if len(selected) > len(show):
        st.caption(f"{len(show)} of {len(selected)} shown, spread over the selection "
                   "(Explore lists them all)")
