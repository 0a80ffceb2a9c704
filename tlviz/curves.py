"""Plotly figures for training runs: learning curves, confusion matrix, probabilities, ladder.

Pure plotly (no streamlit), so the same figures serve the dashboard, notebooks and tests.
Conventions, after the closing charts of *Deep Learning with Python*: accuracy left,
loss right; training dashed, validation solid; one colour per run.

>>> fig = curves_figure({"run 1": [{"epoch": 1, "train_acc": 0.5, "val_acc": 0.6}]})
>>> [t.name for t in fig.data]
['run 1 · train', 'run 1 · val']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")
FONT = {"size": 15}
METRICS = (("acc", "accuracy"), ("loss", "loss"))


def _records(history) -> list[dict]:
    """A history as a list of dicts: accepts a DataFrame, a list of dicts or None."""
    if history is None:
        return []
    if hasattr(history, "to_dict"):
        return history.to_dict(orient="records")
    return list(history)


def _column(recs: list[dict], key: str) -> list[float | None]:
    out = []
    for r in recs:
        v = r.get(key)
        out.append(None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v))
    return out


def curves_figure(histories: Mapping[str, object], *, height: int = 380,
                  title: str | None = None,
                  finals: Mapping[str, tuple[float, float, float]] | None = None) -> go.Figure:
    """Accuracy and loss per epoch, one colour per run, train dashed and val solid.

    ``histories`` maps a run label to its history (DataFrame or list of per-epoch dicts
    with ``epoch``, ``train_acc``, ``val_acc``, ``train_loss``, ``val_loss``; missing
    values are skipped). One-epoch runs (kNN, logistic) show as markers. Used both for
    the live chart of one run and for the overlay of several runs. ``finals``: label ->
    (val accuracy, low, high) of the finished run, drawn at its last epoch with the 95%
    interval as an error bar.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy", "Loss"),
                        horizontal_spacing=0.1)
    accs: list[float] = []
    last_epoch, has_loss = 1, False
    recs_of = {label: _records(h) for label, h in histories.items()}
    last_epoch = max([1, *(int(r.get("epoch", i + 1)) for recs in recs_of.values()
                           for i, r in enumerate(recs))])
    for k, (label, recs) in enumerate(recs_of.items()):
        color = PALETTE[k % len(PALETTE)]
        epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(recs)]
        if len(recs) == 1 and last_epoch > 1:  # fitted in one step: its value across the chart
            for split, dash in (("train", "dot"), ("val", "solid")):
                v = _column(recs, f"{split}_acc")[0]
                if v is None:
                    continue
                accs.append(v)
                fig.add_trace(go.Scatter(
                    x=[0.5, last_epoch + 0.5], y=[v, v], mode="lines",
                    name=f"{label} · {split} (one step)", legendgroup=f"{label}/{split}",
                    line={"color": color, "dash": dash, "width": 2},
                    hovertemplate=f"{split} accuracy %{{y:.3f}} (fitted in one step)<extra>"
                                  f"{_hover_safe(label)}</extra>"), row=1, col=1)
            continue
        for col, (metric, _) in enumerate(METRICS, start=1):
            for split, dash in (("train", "dash"), ("val", "solid")):
                y = _column(recs, f"{split}_{metric}")
                if not any(v is not None for v in y):
                    continue
                if metric == "acc":
                    accs += [v for v in y if v is not None]
                else:
                    has_loss = True
                mode = "lines+markers" if sum(v is not None for v in y) > 1 else "markers"
                fig.add_trace(go.Scatter(
                    x=epochs, y=y, name=f"{label} · {split}", legendgroup=f"{label}/{split}",
                    mode=mode, line={"color": color, "dash": dash, "width": 2.5},
                    marker={"color": color, "size": 9 if dash == "solid" else 8,
                            "symbol": "circle" if dash == "solid" else "circle-open"},
                    showlegend=col == 1,
                    hovertemplate=f"{split} {metric}: %{{y:.3f}}<br>epoch %{{x}}<extra>"
                                  f"{_hover_safe(label)}</extra>"), row=1, col=col)
        final = (finals or {}).get(label)
        if final is not None and final[0] == final[0] and final[1] == final[1] and epochs:
            epochs = epochs if len(recs) > 1 or last_epoch == 1 else [last_epoch]
            acc, lo, hi = final
            accs.append(lo)
            fig.add_trace(go.Scatter(
                x=[max(epochs) + 0.15 + 0.07 * (k % 5)], y=[acc],  # beside, runs apart
                mode="markers", name=f"{label} · val 95% CI", legendgroup=f"{label}/val",
                showlegend=False, marker={"color": color, "size": 7, "symbol": "diamond"},
                error_y={"type": "data", "symmetric": False, "array": [hi - acc],
                         "arrayminus": [acc - lo], "color": color, "thickness": 2, "width": 6},
                hovertemplate=f"val accuracy %{{y:.1%}} (95% CI {lo:.1%}–{hi:.1%})<extra>"
                              f"{_hover_safe(label)}</extra>"), row=1, col=1)
    # whole epochs on x; accuracy from a round floor below the worst value up to 100 %
    xaxis = {"title_text": "epoch", "range": [0.5, last_epoch + 0.5]}
    if last_epoch <= 12:
        xaxis["dtick"] = 1
    fig.update_xaxes(**xaxis)
    low = max(0.0, np.floor((min(accs, default=0.0) - 0.05) * 10) / 10)
    step = 0.02 if 1 - low <= 0.1 else 0.05 if 1 - low <= 0.3 else 0.1
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", row=1, col=1,
                     range=[low - 0.005, 1.015],
                     tickvals=np.round(np.arange(low, 1.0 + 1e-9, step), 4).tolist())
    fig.update_yaxes(title_text="loss", rangemode="tozero", row=1, col=2)
    if histories and not has_loss:
        x0, x1 = fig.layout.xaxis2.domain
        fig.add_annotation(text="no loss per epoch:<br>kNN and logistic heads<br>are fitted in "
                           "one step", showarrow=False, xref="paper", yref="paper",
                           x=(x0 + x1) / 2, y=0.5, xanchor="center", yanchor="middle",
                           font={"size": 15, "color": "#666"})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50 if title else 30, "b": 10},
                      font=FONT, title=title, hovermode="closest",
                      legend={"orientation": "h", "y": -0.22, "x": 0})
    return fig


def final_bars_figure(finals: Mapping[str, Mapping[str, float | None]], *, height: int = 380,
                      title: str | None = None) -> go.Figure:
    """Runs fitted in one step (kNN, logistic heads) as bars: final val accuracy with its 95%
    interval as an error bar, train accuracy as a hollow marker; one colour per run.

    ``finals``: label -> ``{"val": acc, "low": lo, "high": hi, "train": acc}`` (None or NaN
    values are left out).
    """
    def ok(v):
        return v is not None and v == v

    labels = list(finals)
    fig = go.Figure()
    for k, label in enumerate(labels):
        f, color = finals[label], PALETTE[k % len(PALETTE)]
        name = _hover_safe(label)
        if ok(f.get("val")):
            err = ({"type": "data", "symmetric": False, "array": [f["high"] - f["val"]],
                    "arrayminus": [f["val"] - f["low"]], "thickness": 2, "width": 10,
                    "color": "#333"} if ok(f.get("low")) and ok(f.get("high")) else None)
            ci = (f" (95% CI {f['low']:.1%}–{f['high']:.1%})" if err else "")
            fig.add_trace(go.Bar(
                x=[name], y=[f["val"]], name=f"{name} · val", marker_color=color, error_y=err,
                text=[f"{f['val']:.1%}"], textposition="inside", insidetextanchor="start",
                hovertemplate=f"val accuracy %{{y:.1%}}{ci}<extra>{name}</extra>"))
        if ok(f.get("train")):
            fig.add_trace(go.Scatter(
                x=[name], y=[f["train"]], mode="markers", name=f"{name} · train",
                marker={"symbol": "diamond-open", "size": 14, "color": color,
                        "line": {"width": 3}},
                hovertemplate="train accuracy %{y:.1%}<extra>" + name + "</extra>"))
    vals = [v for f in finals.values() for v in (f.get("low"), f.get("val"), f.get("train"))
            if ok(v)]
    low = max(0.0, np.floor((min(vals, default=0.0) - 0.05) * 10) / 10)
    fig.update_layout(
        height=height, font=FONT, title=title or "Final accuracy (fitted in one step: no epochs)",
        showlegend=False, bargap=0.45, plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"title": "accuracy", "tickformat": ".0%", "range": [low, 1.02],
               "gridcolor": "#eee"},
        xaxis={"type": "category"})
    return fig


def _hover_safe(text: str) -> str:
    """User text inside a plotly hovertemplate: no HTML, no template braces."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%{", "% {"))


def confusion_figure(confusion, classes: Sequence[str], *, split: str = "val",
                     height: int | None = None) -> go.Figure:
    """Confusion matrix heatmap (rows: true class, columns: predicted), counts in the cells.

    Each cell also carries an invisible-but-clickable scatter marker whose ``customdata``
    is ``[true, predicted]`` (class positions), because plotly heatmaps cannot be selected:
    with ``st.plotly_chart(on_select="rerun")`` a click on a cell selects that point.
    """
    cm = np.asarray(confusion, dtype=float)
    n = len(classes)
    names = [str(c) for c in classes]
    row_sum = cm.sum(1, keepdims=True)
    share = np.divide(cm, row_sum, out=np.zeros_like(cm), where=row_sum > 0)
    labels = [[str(int(c)) if c else "" for c in row] for row in cm]
    fig = go.Figure(go.Heatmap(  # counts drawn by the heatmap (auto contrast, never dimmed)
        z=share, x=names, y=names, colorscale="Blues", zmin=0, zmax=1, showscale=False,
        text=labels, texttemplate="%{text}", textfont={"size": 17 if n <= 6 else 12},
        hoverinfo="skip"))
    tt, pp = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    tt, pp = tt.ravel(), pp.ravel()
    text = [labels[t][p] for t, p in zip(tt, pp)]
    invisible = {"marker": {"opacity": 0.01}}
    fig.add_trace(go.Scatter(
        x=[names[p] for p in pp], y=[names[t] for t in tt], mode="markers", text=text,
        marker={"size": max(12, 300 // max(n, 1)), "symbol": "square", "opacity": 0.01,
                "color": "#000"}, selected=invisible, unselected=invisible,
        customdata=np.c_[tt, pp],
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images<extra></extra>",
        showlegend=False))
    side = height or min(480, max(320, 120 + 36 * n))  # about its width in a half-page column
    fig.update_layout(
        height=side, margin={"l": 10, "r": 10, "t": 40, "b": 10}, font=FONT,
        title={"text": f"Confusion matrix ({split}) — click a cell to see its images",
               "font": {"size": 15}},
        xaxis={"title": "predicted", "side": "bottom", "type": "category", "constrain": "domain",
               "tickangle": 0 if n <= 6 else -45, "range": [-0.5, n - 0.5], "showgrid": False},
        yaxis={"title": "true", "type": "category", "range": [n - 0.5, -0.5],
               "scaleanchor": "x", "constrain": "domain", "showgrid": False},
        clickmode="event+select", dragmode=False, plot_bgcolor="white")
    return fig


def cell_indices(indices, y_true, y_pred, true: int, pred: int) -> np.ndarray:
    """Dataset positions of the images with true class ``true`` predicted as ``pred``."""
    indices, y_true, y_pred = (np.asarray(a) for a in (indices, y_true, y_pred))
    return indices[(y_true == true) & (y_pred == pred)]


def off_diagonal_cells(confusion) -> list[tuple[int, int, int]]:
    """The non-empty mistake cells as ``(true, pred, count)``, most frequent first."""
    cm = np.asarray(confusion, dtype=int)
    cells = [(t, p, int(cm[t, p])) for t in range(len(cm)) for p in range(len(cm))
             if t != p and cm[t, p] > 0]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))


def proba_figure(proba: Sequence[float], classes: Sequence[str], *, top: int | None = 10,
                 height: int | None = None) -> go.Figure:
    """Horizontal bars of class probabilities, most likely on top and highlighted."""
    p = np.asarray(proba, dtype=float).ravel()
    order = np.argsort(-p, kind="stable")[:top or len(p)]
    names = [str(classes[i]) for i in order]
    colors = [PALETTE[0] if k == 0 else "#9ab" for k in range(len(order))]
    fig = go.Figure(go.Bar(
        x=p[order], y=names, orientation="h", marker_color=colors,
        text=[f"{v:.1%}" for v in p[order]], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(
        height=height or 90 + 46 * len(order), font=FONT,
        margin={"l": 10, "r": 40, "t": 10, "b": 10},
        xaxis={"range": [0, 1.15], "tickformat": ".0%", "title": "probability"},
        yaxis={"autorange": "reversed", "type": "category", "tickfont": {"size": 17}},
        plot_bgcolor="white", uniformtext={"minsize": 14, "mode": "show"})
    return fig


def ladder_figure(table, *, height: int = 360) -> go.Figure:
    """The ladder as bars: mean val accuracy per step (± std over seeds), test as markers.

    ``table`` has columns ``step``, ``mode``, ``augment``, ``val_mean``, ``val_std`` and
    optionally ``test_mean`` and ``n_val`` (tlviz.ladder's ``LadderResult.table``); with
    ``n_val`` the hover gives the 95% interval of the mean on the val images.
    """
    from tlviz.metrics import accuracy_text

    recs = _records(table)
    labels = [_ladder_label(r) for r in recs]
    val = _column(recs, "val_mean")
    std = [v or 0.0 for v in _column(recs, "val_std")]
    hover = [accuracy_text(v, r.get("n_val"), s) for v, s, r in zip(val, std, recs)]
    fig = go.Figure(go.Bar(
        x=labels, y=val, name="val (mean ± std)", marker_color=PALETTE[0],
        error_y={"type": "data", "array": std, "visible": True}, customdata=hover,
        text=[None if v is None else f"{v:.1%}" for v in val], textposition="outside",
        cliponaxis=False, hovertemplate="%{x}<br>val %{customdata}<extra></extra>"))
    test = _column(recs, "test_mean")
    if any(v is not None for v in test):
        fig.add_trace(go.Scatter(x=labels, y=test, name="test (mean)", mode="markers",
                                 marker={"color": PALETTE[1], "size": 11, "symbol": "diamond"},
                                 hovertemplate="%{x}<br>test %{y:.1%}<extra></extra>"))
    fig.update_layout(height=height, font=FONT, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      yaxis={"range": [0, 1.1], "tickformat": ".0%", "title": "accuracy"},
                      xaxis={"type": "category"}, plot_bgcolor="white",
                      legend={"orientation": "h", "y": 1.08, "x": 0})
    return fig


def _ladder_label(r: Mapping) -> str:
    """``scratch-cnn+aug`` for named steps; ``2. mode + aug`` for numbered ones."""
    step, mode = r.get("step"), str(r.get("mode", ""))
    aug = r.get("augment")
    aug_on = bool(aug) and str(aug).lower() not in ("false", "none", "0", "off", "{}")
    if isinstance(step, str) and step:
        return step if not aug_on or "aug" in step else f"{step} + aug"
    aug_txt = " + aug" if aug_on else ""
    return f"{step}. {mode}{aug_txt}" if step is not None else f"{mode}{aug_txt}"


__all__ = ["PALETTE", "cell_indices", "confusion_figure", "curves_figure", "final_bars_figure",
           "ladder_figure",
           "off_diagonal_cells", "proba_figure"]
