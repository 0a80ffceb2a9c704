"""Plotly figures for datasets, embedding spaces and calibration (no streamlit).

:func:`embedding_figure` is the one scatter of a projected embedding space: one trace per
class (so the legend toggles classes), colours fixed by class position (so two plots side
by side agree), and ``customdata[:, 0]`` = the dataset index of each point, so a click or
lasso selection (``st.plotly_chart(on_select="rerun")``) maps straight back to images.
(In the browser, Streamlit may hand ``customdata`` back as ``{"0": i, "1": label}``.)

>>> import numpy as np
>>> fig = embedding_figure(np.zeros((3, 2)), np.array([0, 1, 1]), ["ants", "bees"])
>>> [t.name for t in fig.data], fig.data[1].customdata[:, 0].tolist()
(['ants', 'bees'], [1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

# Okabe-Ito-like first (colour-blind safe, strong on a projector), then plotly's Dark24.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000", "#8C564B", "#7F7F7F")
LARGE_PALETTE = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100",
                 "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D",
                 "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA",
                 "#6C4516", "#0D2A63", "#AF0038")
FONT = {"size": 15}
WEBGL_ABOVE = 3000  # 2D maps with more points are drawn with WebGL


def class_colors(n: int) -> list[str]:
    """``n`` distinct colours, the same for the same class position everywhere."""
    pal = PALETTE if n <= len(PALETTE) else LARGE_PALETTE
    return [pal[k % len(pal)] for k in range(n)]


def density_image(coords: np.ndarray, labels: Sequence[int], n_classes: int, width: int = 900,
                  height: int = 600, pad: float = 0.02,
                  box: tuple[float, float, float, float] | None = None):
    """Every point of a 2D map rasterised by datashader, coloured by class (each pixel
    mixes the colours of its classes, alpha grows with the count): (PNG ``data:`` URI,
    x range, y range). ``box`` = (x0, x1, y0, y1): only that region, at full resolution
    (a zoom). A million points take about a second."""
    import base64
    import io

    import datashader as dsh
    import datashader.transfer_functions as tf
    import pandas as pd

    coords = np.asarray(coords, dtype=np.float64)
    if box is not None:
        xr, yr = (float(box[0]), float(box[1])), (float(box[2]), float(box[3]))
    else:
        lo, hi = coords.min(0), coords.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        xr = (float(lo[0] - pad * span[0]), float(hi[0] + pad * span[0]))
        yr = (float(lo[1] - pad * span[1]), float(hi[1] + pad * span[1]))
    df = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1],
                       "c": pd.Categorical(np.asarray(labels, int), categories=range(n_classes))})
    canvas = dsh.Canvas(plot_width=width, plot_height=height, x_range=xr, y_range=yr)
    agg = canvas.points(df, "x", "y", dsh.count_cat("c"))
    img = tf.shade(agg, color_key=dict(zip(range(n_classes), class_colors(n_classes))),
                   how="eq_hist", min_alpha=60)
    buf = io.BytesIO()
    img.to_pil().save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), xr, yr


def add_density_layer(fig: go.Figure, uri: str, x_range: tuple[float, float],
                      y_range: tuple[float, float], opacity: float = 0.85) -> go.Figure:
    """Put a :func:`density_image` under a 2D figure's points, at its data coordinates."""
    fig.add_layout_image(source=uri, xref="x", yref="y", x=x_range[0], y=y_range[1],
                         sizex=x_range[1] - x_range[0], sizey=y_range[1] - y_range[0],
                         sizing="stretch", layer="below", opacity=opacity)
    fig.update_xaxes(range=list(x_range), autorange=False)
    fig.update_yaxes(range=list(y_range), autorange=False)
    return fig


def hover_safe(text: str) -> str:
    """User text (class or file names) inside plotly hover text: no HTML, no template braces."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%{", "% {"))


def embedding_figure(coords: np.ndarray, labels: Sequence[int], classes: Sequence[str],
                     indices: Sequence[int] | None = None, *, names: Sequence[str] | None = None,
                     title: str | None = None, height: int = 520,
                     highlight: Sequence[int] | None = None, marker_size: int | None = None,
                     dragmode: str = "lasso", splits: Sequence[str] | None = None,
                     image_hover: bool = False, color_values: Sequence[float] | None = None,
                     color_title: str = "", color_range: tuple[float, float] | None = None,
                     color_scale: str | list | None = None,
                     color_ticks: tuple[list, list] | None = None,
                     webgl: bool | None = None) -> go.Figure:
    """Scatter of projected points (2 or 3 columns in ``coords``), coloured by class.

    ``indices``: dataset position of each row (default ``arange``), stored as
    ``customdata[:, 0]``. ``names``: per-row hover text (e.g. file names), shown as text.
    ``highlight``: dataset indices drawn ringed on top (a selection, neighbours...).
    ``dragmode`` (2D): ``"lasso"`` — a drag draws a lasso, but Streamlit then ignores plain
    clicks; ``"pan"`` — a drag pans and a click selects one point (Streamlit's
    ``on_select``), the lasso and box stay in the toolbar.
    ``image_hover``: plotly's own hover box is off and ``customdata`` rows are
    ``[index, label, name, split(, value)]`` for a hover preview drawn by the page
    (``ui.hovermap``); the text is raw (the preview sets it as text, never as HTML).
    ``color_values``: one number per row (e.g. neighbours kept) colours the points on a
    colour scale (``color_range``, titled ``color_title``: our own plotly text, ``<br>``
    allowed, never user text) instead of by class; then one
    trace holds every point and the legend is off. ``color_scale``: a plotly colour scale
    (default Viridis); ``color_ticks``: (values, labels) for the colour bar (e.g. 0/1 as
    wrong/right).
    ``webgl`` (2D): draw with ``Scattergl``, one canvas instead of one SVG node a point;
    by default above :data:`WEBGL_ABOVE` points, where SVG makes every hover and unhover
    a 50-150 ms restyle of the page (measured in chromium at 10,000 points).
    The legend sits under the plot, away from the toolbar (top right).
    """
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels, dtype=int)
    n, dim = coords.shape
    indices = np.arange(n) if indices is None else np.asarray(indices, dtype=int)
    colors = class_colors(len(classes))
    size = marker_size or (9 if n < 500 else 6 if n < 2500 else 4)
    if webgl is None:
        webgl = n > WEBGL_ABOVE
    scatter = go.Scatter3d if dim == 3 else go.Scattergl if webgl else go.Scatter
    fig = go.Figure()
    names_arr = np.asarray(names if names is not None else [""] * n, dtype=object)
    splits_arr = np.asarray(splits if splits is not None else [""] * n, dtype=object)
    values = None if color_values is None else np.asarray(color_values, dtype=float)

    def custom(m: np.ndarray) -> np.ndarray:
        if not image_hover:
            return np.c_[indices[m], labels[m]]
        cols = [indices[m], labels[m], names_arr[m], splits_arr[m]]
        if values is not None:
            cols.append(values[m])
        return np.array(list(zip(*cols)), dtype=object).reshape(int(m.sum()), len(cols))

    def xyz_of(m) -> dict:
        xyz = {"x": coords[m, 0], "y": coords[m, 1]}
        if dim == 3:
            xyz["z"] = coords[m, 2]
        return xyz

    line = {"width": 0.5 if dim == 2 else 0, "color": "white"}
    msize = size if dim == 2 else max(2, size - 3)
    if values is not None:
        lo, hi = color_range or (float(np.nanmin(values)), float(np.nanmax(values)))
        all_rows = np.ones(n, bool)
        plain_title = hover_safe(color_title.replace("<br>", " "))
        fig.add_trace(scatter(
            **xyz_of(all_rows), mode="markers", name=plain_title or "value",
            customdata=custom(all_rows), showlegend=False,
            text=None if image_hover else [hover_safe(x) for x in names_arr],
            marker={"size": msize, "color": values, "colorscale": color_scale or "Viridis",
                    "cmin": lo, "cmax": hi, "opacity": 0.9, "line": line,
                    "colorbar": {"title": {"text": color_title, "side": "top",
                                           "font": {"size": 13}},
                                 "thickness": 10, "len": 0.75, "tickfont": {"size": 12},
                                 **({"tickvals": color_ticks[0], "ticktext": color_ticks[1]}
                                    if color_ticks else {})}},
            hoverinfo="none" if image_hover else None,
            hovertemplate=None if image_hover else
            f"%{{text}}<br>{plain_title}: %{{marker.color}}<extra></extra>"))
    for k, cls in enumerate(classes):
        m = labels == k
        if values is not None or not m.any():
            continue
        hover = [hover_safe(names[i]) for i in np.flatnonzero(m)] \
            if names is not None and not image_hover else None
        fig.add_trace(scatter(
            **xyz_of(m), mode="markers", name=hover_safe(cls), text=hover,
            customdata=custom(m),
            marker={"size": msize, "color": colors[k], "opacity": 0.85, "line": line},
            hoverinfo="none" if image_hover else None,
            hovertemplate=None if image_hover else
            (f"<b>{hover_safe(cls)}</b><br>%{{text}}<br>#%{{customdata[0]}}<extra></extra>"
             if hover is not None else
             f"<b>{hover_safe(cls)}</b><br>#%{{customdata[0]}}<extra></extra>"),
        ))
    if highlight is not None and len(highlight):
        pos = {int(d): r for r, d in enumerate(indices)}
        rows = [pos[int(h)] for h in highlight if int(h) in pos]
        if rows:
            xyz = {"x": coords[rows, 0], "y": coords[rows, 1]}
            if dim == 3:
                xyz["z"] = coords[rows, 2]
            fig.add_trace(scatter(
                **xyz, mode="markers", name="selected", hoverinfo="skip",
                customdata=np.c_[indices[rows], labels[rows]],
                marker={"size": size + (8 if len(rows) <= 200 else 3), "color": "rgba(0,0,0,0)",
                        "line": {"width": 2.5, "color": "#111"} if len(rows) <= 200 else
                        {"width": 1, "color": "rgba(0,0,0,0.55)"}}))  # many: thin rings
    axis = {"showticklabels": False, "title": None, "zeroline": False, "showgrid": False}
    fig.update_layout(
        height=height, font=FONT, title=title, hovermode="closest", plot_bgcolor="#fbfbfd",
        margin={"l": 10, "r": 10, "t": 60 if title else 32, "b": 10},
        # under the plot: the toolbar (top right) never covers a legend entry
        legend={"itemsizing": "constant", "title": None, "orientation": "h", "x": 0, "y": -0.01,
                "yanchor": "top", "font": {"size": 15}},
        clickmode="event+select", dragmode=dragmode if dim == 2 else "orbit",
        xaxis=axis, yaxis=axis,
    )
    if dim == 3:
        fig.update_layout(scene={"xaxis": axis, "yaxis": axis, "zaxis": axis})
    return fig


def for_presenter(fig: go.Figure, scale: float = 1.45, min_height: int | None = None) -> go.Figure:
    """The figure readable from the back of a room: every font (title, axes, ticks, legend,
    annotations, colour bar) and every marker ``scale`` times larger; ``min_height``
    raises its height. Changes ``fig`` in place and returns it.

    >>> f = for_presenter(go.Figure(go.Scatter(x=[0], y=[0], marker={"size": 8})))
    >>> f.layout.font.size, f.data[0].marker.size
    (22, 12)
    """
    def bigger(v, default):
        return int(round((v or default) * scale))

    lay = fig.layout
    fig.update_layout(font_size=bigger(lay.font.size, 15),
                      legend_font_size=bigger(lay.legend.font.size, 15))
    for ann in lay.annotations or ():
        ann.font.size = bigger(ann.font.size, 15)
    if lay.title and lay.title.text:
        lay.title.font.size = bigger(lay.title.font.size, 17)
    for trace in fig.data:
        marker = getattr(trace, "marker", None)
        if marker is None:
            continue
        if isinstance(marker.size, int | float):
            marker.size = bigger(marker.size, 6)
        colorbar = getattr(marker, "colorbar", None)
        if colorbar is not None and colorbar.tickfont.size:
            colorbar.tickfont.size = bigger(colorbar.tickfont.size, 12)
    if min_height and (lay.height or 0) < min_height:
        fig.update_layout(height=min_height)
    return fig


def counts_figure(counts, height: int | None = None) -> go.Figure:
    """Images per class as horizontal bars stacked by split (``ImageDataset.counts()``)."""
    split_colors = {"train": "#0072B2", "val": "#E69F00", "test": "#009E73"}
    fig = go.Figure()
    for split in counts.columns:
        fig.add_trace(go.Bar(
            y=[hover_safe(c) for c in counts.index], x=counts[split].to_numpy(), name=str(split),
            orientation="h", marker_color=split_colors.get(str(split), "#7F7F7F"),
            hovertemplate=f"{split}: %{{x}}<extra>%{{y}}</extra>"))
    fig.update_layout(
        barmode="stack", height=height or max(190, 90 + 30 * len(counts)), font=FONT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10}, bargap=0.35,
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "traceorder": "normal"},
        yaxis={"autorange": "reversed", "type": "category"}, xaxis={"title": "images"})
    return fig


def reliability_figure(runs: dict[str, Sequence[dict]], height: int = 380,
                       title: str | None = None) -> go.Figure:
    """Reliability diagram: accuracy against confidence per confidence bin
    (:func:`tlviz.calibration.reliability`), beside the diagonal of perfect calibration.

    ``runs``: label -> bins. One run: a bar per bin (its accuracy; hover: count and mean
    confidence) and a marker at each bin's mean confidence. Several runs: one line each
    through (mean confidence, accuracy), markers sized by the bin's count. Below the diagonal
    = over-confident.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line={"color": "#999", "dash": "dot", "width": 1.5}, hoverinfo="skip"))
    colors = class_colors(len(runs))
    for k, (label, bins) in enumerate(runs.items()):
        bins = list(bins)
        if not bins:
            continue
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        count = [b["count"] for b in bins]
        name = hover_safe(label)
        hover = (f"<b>{name}</b><br>confidence %{{x:.1%}}<br>accuracy %{{y:.1%}}"
                 "<br>%{customdata} images<extra></extra>")
        if len(runs) == 1:
            fig.add_trace(go.Bar(
                x=[(b["lo"] + b["hi"]) / 2 for b in bins], y=acc, width=[b["hi"] - b["lo"] for b in bins],
                name="accuracy per bin", marker={"color": colors[k], "opacity": 0.55,
                                                 "line": {"color": "white", "width": 1}},
                customdata=count, hovertemplate=(
                    "confidence bin %{x:.0%}<br>accuracy %{y:.1%}<br>%{customdata} images"
                    "<extra></extra>")))
        size = [6 + 14 * (c / max(count)) ** 0.5 for c in count]
        fig.add_trace(go.Scatter(
            x=conf, y=acc, mode="markers" if len(runs) == 1 else "lines+markers",
            name="mean confidence" if len(runs) == 1 else name, customdata=count,
            marker={"size": size, "color": colors[k], "line": {"color": "white", "width": 1}},
            line={"color": colors[k], "width": 2}, hovertemplate=hover))
    fig.update_layout(
        height=height, font=FONT, title=title, bargap=0, plot_bgcolor="#fbfbfd",
        margin={"l": 10, "r": 10, "t": 60 if title else 30, "b": 10},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        xaxis={"title": "confidence (top class)", "range": [0, 1.03], "tickformat": ".0%"},
        yaxis={"title": "accuracy", "range": [0, 1.05], "tickformat": ".0%"})
    return fig


def add_image_points(fig: go.Figure, coords: np.ndarray, uris: Sequence[str],
                     scale: float = 1.4) -> go.Figure:
    """Draw images (``uris``: data URIs, one per row of ``coords``) centred on their 2D map
    positions: the classic picture of CNN codes.

    Sizes are in data units, so zooming in enlarges them: each image's box is ``scale``
    cells of a sqrt(n) x sqrt(n) grid over the map, per axis, and the image keeps its
    aspect inside it. The figure's markers stay (hover, click, lasso) above the images,
    almost transparent, and the legend is hidden (the hover preview names the class).
    """
    coords = np.asarray(coords, dtype=float)
    n = len(coords)
    if n == 0:
        return fig
    cell = scale / np.sqrt(n)
    sx = float(max(np.ptp(coords[:, 0]), 1e-9)) * cell
    sy = float(max(np.ptp(coords[:, 1]), 1e-9)) * cell
    fig.update_layout(
        images=[{"source": uri, "xref": "x", "yref": "y", "x": float(x), "y": float(y),
                 "sizex": sx, "sizey": sy, "xanchor": "center", "yanchor": "middle",
                 "sizing": "contain", "layer": "below"} for (x, y), uri in zip(coords, uris)],
        xaxis={"range": [coords[:, 0].min() - sx, coords[:, 0].max() + sx]},
        yaxis={"range": [coords[:, 1].min() - sy, coords[:, 1].max() + sy]},
        showlegend=False)
    for tr in fig.data:
        if tr.name != "selected":
            tr.marker.opacity = 0.02
            tr.marker.line = {"width": 0}
    return fig


__all__ = ["add_image_points", "class_colors", "counts_figure", "embedding_figure", "for_presenter",
           "hover_safe",
           "reliability_figure"]
