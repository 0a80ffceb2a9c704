"""Looking inside an embedding space: neighbours, selections, augmented satellites,
before/after fine-tuning, and likely label problems.

Every distance here is measured in the full-dimensional feature space, never on the 2D
layout: the layout is only where things are drawn.

>>> import numpy as np
>>> X = np.array([[0, 0], [0, 1], [5, 5], [5, 6]], dtype="float32")
>>> y = np.array([0, 0, 1, 0])
>>> neighbours(X, y, 2, k=2, metric="euclidean")["index"].tolist()
[3, 1]
>>> label_issues(X, y, k=1, metric="euclidean")["index"].tolist()
[2, 3]
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tlviz.augment import AugmentConfig, build_transform
from tlviz.backbones import BackboneSpec, get_backbone_spec
from tlviz.data import ImageDataset
from tlviz.embed import Embeddings, embed_images, iter_batches, torch_features
from tlviz.errors import BadInput
from tlviz.metrics import separation_report
from tlviz.neighbours import (
    INDEX_ABOVE,
    METRICS,
    faiss_available,
    index_for,
    index_search,
    knn,
    pairwise,
    vote,
)
from tlviz.nets import FeatureNet
from tlviz.project import ProjectionConfig, Projector

Progress = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------- distances


def _rows(n: int, mask: np.ndarray | None) -> np.ndarray:
    return np.arange(n) if mask is None else np.flatnonzero(np.asarray(mask, bool))


def neighbours(X: np.ndarray, y: np.ndarray, i: int, k: int = 8, metric: str = "cosine",
               mask: np.ndarray | None = None, index_key: str | None = None) -> pd.DataFrame:
    """The ``k`` nearest neighbours of row ``i`` in the full feature space.

    Returns a DataFrame (rank order) with columns ``index`` (row of X), ``distance``,
    ``label`` and ``same_class``. ``mask`` limits the candidates (e.g. ``emb.valid``).
    ``index_key`` names ``X`` (e.g. its embedding's key): a large ``X`` is then searched
    through its cached FAISS index (:func:`tlviz.neighbours.index_for`).
    """
    if not 0 <= i < len(X):
        raise IndexError(f"row {i} is outside 0..{len(X) - 1}")
    y = np.asarray(y)
    if index_key is not None and len(X) >= INDEX_ABOVE and faiss_available():
        ok = np.ones(len(X), bool) if mask is None else np.asarray(mask, bool).copy()
        ok[i] = False
        want = k + 1 + (len(X) - int(ok.sum()))  # room for every row the mask leaves out
        if want <= 4 * (k + 1) + 1024:
            d, nb = index_search(index_for(X, metric, index_key), np.asarray(X[i:i + 1]),
                                 min(want, len(X)), metric)
            keep = (nb[0] >= 0) & ok[np.maximum(nb[0], 0)]
            idx, dist = nb[0][keep][:k], d[0][keep][:k]
            return pd.DataFrame({"index": idx, "distance": dist, "label": y[idx],
                                 "same_class": y[idx] == y[i]})
    X = np.asarray(X)
    cand = _rows(len(X), mask)
    cand = cand[cand != i]
    if not len(cand):
        return pd.DataFrame(columns=["index", "distance", "label", "same_class"])
    d, nb = knn(X[[i]], k, ref=X[cand], metric=metric)
    idx = cand[nb[0]]
    return pd.DataFrame({"index": idx, "distance": d[0], "label": y[idx],
                         "same_class": y[idx] == y[i]})


def out_of_fold_proba(X: np.ndarray, y: np.ndarray, cv: int = 5, seed: int = 0) -> np.ndarray:
    """(n, n_classes) class probabilities of each row from a logistic head that never saw it
    (stratified ``cv``-fold cross-validation; C chosen once on all rows, as the head does).
    No temperature scaling: confident learning's per-class thresholds were measured on these
    plain probabilities (bench/RESULTS.md), and it would fit 3 more heads per fold."""
    from tlviz.data import cv_folds
    from tlviz.heads import LogisticHead

    classes, codes = np.unique(y, return_inverse=True)
    X = np.asarray(X, dtype=np.float32)
    C = LogisticHead(temperature=1.0).fit(X, codes).chosen_["C"]
    P = np.full((len(X), len(classes)), 1.0 / len(classes))
    for tr, te in cv_folds(codes, cv, seed):
        head = LogisticHead(C=C, temperature=1.0).fit(X[tr], codes[tr])
        P[np.ix_(te, head.classes_.astype(int))] = head.predict_proba(X[te])
    return P


def label_issues(X: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, cv: int = 5,
                 seed: int = 0) -> pd.DataFrame:
    """Likely label errors by confident learning (cleanlab's ``find_label_issues``) on
    out-of-fold probabilities of the default logistic head, most suspicious first.

    Columns: ``index`` (row of X), ``label``, ``given_prob`` (out-of-fold probability of the
    given label), ``suggested`` (the most probable other class) and ``suggested_prob``.
    Per-class thresholds (each class's average self-confidence) make the flagged share track
    the real noise instead of a class's difficulty; ``filter_by="both"`` (an image must be
    flagged by cleanlab's per-class and per-noise-rate pruning) is the conservative choice:
    on the shared datasets it flags <= 10% of the clean labels where the other rules flag up
    to 16% of a 71%-accurate set (bench/RESULTS.md).
    """
    from cleanlab.filter import find_label_issues

    X, y = np.asarray(X), np.asarray(y)
    rows = _rows(len(X), mask)
    cols = ["index", "label", "given_prob", "suggested", "suggested_prob"]
    yr = y[rows]
    classes, codes = np.unique(yr, return_inverse=True)
    if len(rows) < 4 or len(classes) < 2 or np.bincount(codes).min() < 2:
        return pd.DataFrame(columns=cols)
    P = out_of_fold_proba(X[rows], codes, cv, seed)
    # n_jobs=1: a multiprocessing pool started inside the threaded Streamlit server never returns
    ranked = find_label_issues(codes, P, filter_by="both", return_indices_ranked_by="self_confidence",
                               n_jobs=1)
    other = P.copy()
    other[np.arange(len(rows)), codes] = -1.0
    sug = other.argmax(1)
    r = np.asarray(ranked, dtype=np.int64)
    return pd.DataFrame({"index": rows[r], "label": yr[r], "given_prob": P[r, codes[r]],
                         "suggested": classes[sug[r]], "suggested_prob": P[r, sug[r]]},
                        columns=cols).reset_index(drop=True)


# ----------------------------------------------------------------------------- selections


def selection_summary(indices: Sequence[int], labels: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Class counts of a selection: columns ``class``, ``count``, ``share`` (every class listed)."""
    idx = np.asarray(list(indices), dtype=np.int64)
    counts = np.bincount(np.asarray(labels)[idx], minlength=len(classes)) if len(idx) else \
        np.zeros(len(classes), int)
    return pd.DataFrame({"class": list(classes), "count": counts.astype(int),
                         "share": counts / max(len(idx), 1)})


def export_selection(dataset: ImageDataset, indices: Sequence[int], fmt: str = "csv") -> str:
    """A selection as text: ``csv`` (index, path, class, split) or ``txt`` (one path a line)."""
    idx = [int(i) for i in indices]
    if fmt == "txt":
        return "".join(dataset.path(i) + "\n" for i in idx)
    if fmt != "csv":
        raise BadInput("fmt must be 'csv' or 'txt'")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "path", "class", "split"])
    for i in idx:
        w.writerow([i, dataset.path(i), dataset.classes[dataset.labels[i]], dataset.splits[i]])
    return buf.getvalue()


def selection_from_event(event: Mapping | None) -> tuple[int | None, list[int]]:
    """(clicked dataset index, region selection) from a plotly selection event.

    The event is the dict ``st.plotly_chart(on_select=...)`` returns for a figure of
    :func:`tlviz.plots.embedding_figure` (``customdata[0]`` = dataset index). A lasso or box
    gives the region (clicked = None); a single clicked point gives clicked (region empty).
    """
    sel = (event or {}).get("selection") or {}
    idx: list[int] = []
    for p in sel.get("points") or []:
        cd = p.get("customdata")
        if isinstance(cd, Mapping):  # the browser may send arrays as {"0": .., "1": ..}
            cd = cd.get("0", cd.get(0))
        elif isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            with contextlib.suppress(TypeError, ValueError):
                idx.append(int(cd))
    idx = list(dict.fromkeys(idx))  # ringed highlights repeat points: keep the first
    if sel.get("lasso") or sel.get("box") or len(idx) > 1:
        return None, idx
    return (idx[0] if idx else None), []


def save_note(dataset: ImageDataset, indices: Sequence[int], title: str, text: str = "",
              folder: str | Path | None = None) -> Path:
    """Save a selection as a note (JSON: title, text, dataset, indices, paths) under
    ``<TLVIZ_HOME>/notes``; returns the file."""
    from tlviz import config
    from tlviz.safeio import sanitize_name

    if folder is None:
        from tlviz import workspaces

        ws = workspaces.current()
        if ws is not None:
            ws.require_writable("save notes")
    folder = Path(folder) if folder else config.notes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    idx = [int(i) for i in indices]
    note = {"title": str(title), "text": str(text), "dataset": dataset.name,
            "fingerprint": dataset.fingerprint, "created": time.time(), "indices": idx,
            "paths": [dataset.path(i) for i in idx],
            "classes": [dataset.classes[dataset.labels[i]] for i in idx]}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}-{sanitize_name(title or 'selection', 60)}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{sanitize_name(title or 'selection', 60)}-{n}.json"
    path.write_text(json.dumps(note, ensure_ascii=False, indent=1))
    return path


def list_notes(folder: str | Path | None = None) -> list[dict]:
    """Saved notes, newest first (unreadable files are skipped)."""
    from tlviz import config

    folder = Path(folder) if folder else config.notes_dir()
    out = []
    for f in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            note = json.loads(f.read_text())
            if isinstance(note, dict):
                out.append({**note, "file": str(f)})
    return out


# ----------------------------------------------------------------------------- satellites


def centroid_distance(X: np.ndarray, y: np.ndarray) -> float:
    """Typical distance between classes: mean euclidean distance between class centroids."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    cls = np.unique(y)
    if len(cls) < 2:
        return float("nan")
    C = np.stack([X[y == c].mean(0) for c in cls])
    D = pairwise(C, C, "euclidean")
    return float(D[np.triu_indices(len(cls), 1)].mean())


def _knn_vote(X_ref: np.ndarray, y_ref: np.ndarray, Q: np.ndarray, k: int = 5) -> np.ndarray:
    """Majority class of the ``k`` nearest reference rows (euclidean), nearer breaking ties."""
    _, nb = knn(Q, k, ref=X_ref, metric="euclidean")
    return vote(y_ref[nb], int(y_ref.max()) + 1).argmax(1)


def fit_projector(X: np.ndarray, method: str = "umap", seed: int = 0, **params) -> Projector:
    """A fitted :class:`~tlviz.project.Projector` (its ``transform`` places new rows)."""
    return Projector(ProjectionConfig(method=method, dim=2, seed=seed, **params)).fit(X)


@dataclass
class Satellites:
    """Augmented copies of a few images, embedded and placed in the same layout.

    ``points``: one row per original (``copy == -1``) and per copy, with ``index``
    (dataset row), ``copy``, ``x``, ``y`` (layout), ``label``, ``distance`` (full-dim,
    euclidean, to its original), ``knn_class`` (5-NN vote among the reference images) and
    ``crossed`` (the vote differs from the original's label). ``per_image``: per original,
    the mean copy distance, its ratio to the typical between-class distance and the share
    of copies that crossed. ``ratio``: mean copy-to-original distance / ``class_distance``.
    ``baseline_crossed``: share of the originals themselves whose vote is another class
    (copies of those "cross" without moving).
    """

    points: pd.DataFrame
    per_image: pd.DataFrame
    ratio: float
    mean_distance: float
    class_distance: float
    crossed_share: float
    baseline_crossed: float = 0.0
    copies: dict[int, list] = field(default_factory=dict)


def _features_of(images: list, backbone: str | FeatureNet, spec: BackboneSpec | None) -> np.ndarray:
    return np.concatenate([embed_images(images[s:s + 32], backbone, spec)
                           for s in range(0, len(images), 32)])


def satellites(dataset: ImageDataset, emb: Embeddings, indices: Sequence[int],
               augment: AugmentConfig | Mapping | None, n_copies: int = 8,
               projector: Projector | None = None, seed: int = 0, k: int = 5,
               keep_images: bool = True) -> Satellites:
    """Embed ``n_copies`` augmented copies of each image in ``indices`` and place them.

    Copies go through the same backbone as ``emb`` (``augment`` is an AugmentConfig or its
    dict), and originals and copies both through ``projector.transform`` (a PCA fitted on
    the valid features when None), so an identity augmentation puts every copy on its
    original. Reference rows for centroids and the k-NN vote are ``emb.valid`` rows.
    """
    cfg = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment or {})
    indices = [int(i) for i in indices]
    if not indices:
        raise BadInput("choose at least one image")
    if n_copies < 1:
        raise BadInput("n_copies must be at least 1")
    spec = get_backbone_spec(emb.backbone)
    X_ref, y_ref = emb.split(None)
    if projector is None:
        projector = fit_projector(X_ref, "pca", seed)
    aug = build_transform(cfg)
    g = torch.Generator().manual_seed(seed)
    originals, copies = [], {}
    for i in indices:
        im = dataset.load(i, size=spec.preprocess.load_size)
        originals.append(im)
        copies[i] = [aug(im, g) for _ in range(n_copies)]
    F_orig = _features_of(originals, emb.backbone, spec)
    F_copy = _features_of([c for i in indices for c in copies[i]], emb.backbone, spec)
    XY = projector.transform(np.concatenate([F_orig, F_copy]))
    owner = np.repeat(np.arange(len(indices)), n_copies)
    dist = np.linalg.norm(F_copy.astype(np.float64) - F_orig[owner], axis=1)
    vote = _knn_vote(X_ref, y_ref, np.concatenate([F_orig, F_copy]), k)
    lab = dataset.labels[np.asarray(indices)]
    all_idx = np.concatenate([indices, np.asarray(indices)[owner]])
    all_lab = np.concatenate([lab, lab[owner]])
    copy_no = np.concatenate([np.full(len(indices), -1), np.tile(np.arange(n_copies), len(indices))])
    points = pd.DataFrame({
        "index": all_idx, "copy": copy_no,
        "x": XY[:, 0], "y": XY[:, 1], "label": all_lab,
        "distance": np.concatenate([np.zeros(len(indices)), dist]),
        "knn_class": vote, "crossed": vote != all_lab})
    cd = centroid_distance(X_ref, y_ref)
    cop = points[points["copy"] >= 0]
    per = cop.groupby("index", sort=False).agg(label=("label", "first"),
                                               mean_distance=("distance", "mean"),
                                               crossed_share=("crossed", "mean")).reset_index()
    per["ratio"] = per["mean_distance"] / cd
    mean_d = float(dist.mean())
    return Satellites(points, per, mean_d / cd, mean_d, cd, float(cop["crossed"].mean()),
                      float(points["crossed"][: len(indices)].mean()), copies if keep_images else {})


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "rotation ±40°": AugmentConfig(rotation_range=40),
    "shift ±20%": AugmentConfig(width_shift_range=0.2, height_shift_range=0.2),
    "shear ±11.5°": AugmentConfig(shear_range=11.46),
    "zoom ±20%": AugmentConfig(zoom_range=0.2),
    "horizontal flip": AugmentConfig(horizontal_flip=True),
    "book preset": AugmentConfig.book(),
}


def compare_augmentations(dataset: ImageDataset, emb: Embeddings, indices: Sequence[int],
                          configs: Mapping[str, AugmentConfig] | None = None, n_copies: int = 8,
                          seed: int = 0, progress: Progress | None = None) -> pd.DataFrame:
    """One row per augmentation: mean copy distance, ratio to the class distance, and the
    share of copies whose 5-NN vote changes class (overall and per original class)."""
    configs = dict(configs or AUGMENT_PRESETS)
    projector = _NoProjection()
    rows = []
    for n, (name, cfg) in enumerate(configs.items()):
        s = satellites(dataset, emb, indices, cfg, n_copies, projector, seed, keep_images=False)
        row = {"augmentation": name, "mean_distance": s.mean_distance, "ratio": s.ratio,
               "crossed_share": s.crossed_share, "originals_crossed": s.baseline_crossed}
        cop = s.points[s.points["copy"] >= 0]
        for c, part in cop.groupby("label"):
            row[f"crossed: {emb.classes[int(c)]}"] = float(part["crossed"].mean())
        rows.append(row)
        if progress:
            progress(n + 1, len(configs), name)
    return pd.DataFrame(rows)


class _NoProjection:
    """Stands in for a projector when only full-dimensional numbers are wanted."""

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((len(X), 2), np.float32)


# ----------------------------------------------------------------------------- before / after


def embed_with(dataset: ImageDataset, net: FeatureNet, spec: BackboneSpec,
               indices: Sequence[int] | None = None, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray:
    """Features of ``dataset`` rows through any FeatureNet (e.g. a fine-tuned one), in torch."""
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    out = np.zeros((len(idx), net.feature_dim), np.float32)
    pos = {int(i): j for j, i in enumerate(idx)}
    net = net.eval()
    done = 0
    for chunk, batch, _bad in iter_batches(dataset, spec, batch_size, idx):
        out[[pos[int(i)] for i in chunk]] = torch_features(net, batch)
        done += len(chunk)
        if progress:
            progress(done, len(idx), "embedding with the fine-tuned backbone")
    return out


def procrustes_align(ref: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotate/reflect, scale and shift ``moving`` onto ``ref`` (rows correspond).

    Returns the aligned copy (in ``ref``'s units) and the disparity: the sum of squared
    differences after standardising both (0 = same shape), as :func:`scipy.spatial.procrustes`.
    """
    from scipy.linalg import orthogonal_procrustes

    A, B = np.asarray(ref, np.float64), np.asarray(moving, np.float64)
    ma, mb = A.mean(0), B.mean(0)
    A0, B0 = A - ma, B - mb
    na, nb = np.linalg.norm(A0), np.linalg.norm(B0)
    if na == 0 or nb == 0:
        return np.tile(ma, (len(B), 1)), 0.0
    R, s = orthogonal_procrustes(B0 / nb, A0 / na)
    aligned = (B0 / nb) @ R * s
    disparity = float(((A0 / na - aligned) ** 2).sum())
    return (aligned * na + ma).astype(np.float32), disparity


@dataclass
class BeforeAfter:
    """Two layouts of the same images (frozen vs fine-tuned features), aligned.

    ``before``/``after``: (n, 2) coordinates for ``indices``; ``report``: separation
    metrics (full-dim features) with columns before/after, index (split, metric).
    """

    indices: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    before: np.ndarray
    after: np.ndarray
    report: pd.DataFrame
    disparity: float
    moved: np.ndarray  # per image: layout displacement before -> after


def before_after(dataset: ImageDataset, frozen: str | FeatureNet, finetuned: FeatureNet, *,
                 spec: BackboneSpec | None = None, indices: Sequence[int] | None = None,
                 method: str = "pca", align: str = "procrustes", seed: int = 0,
                 X_before: np.ndarray | None = None, progress: Progress | None = None
                 ) -> BeforeAfter:
    """Embed the same images with the frozen and the fine-tuned backbone and align the layouts.

    ``align``: "procrustes" (each set projected alone, the after layout rotated, scaled and
    shifted onto the before layout) or "joint" (one projection fitted on both sets).
    ``X_before`` skips the frozen pass (e.g. cached :func:`~tlviz.embed.embed` rows).
    """
    if align not in ("procrustes", "joint"):
        raise BadInput("align must be 'procrustes' or 'joint'")
    if spec is None:
        if not isinstance(frozen, str):
            raise BadInput("give spec= (input size, normalisation) with a FeatureNet")
        spec = get_backbone_spec(frozen)
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(idx) < 3:
        raise BadInput("need at least 3 images to compare layouts")
    if X_before is None:
        if isinstance(frozen, str):
            from tlviz.backbones import create_backbone

            frozen = create_backbone(frozen)
        X_before = embed_with(dataset, frozen, spec, idx, progress=progress)
    X_after = embed_with(dataset, finetuned, spec, idx, progress=progress)
    X_before = np.asarray(X_before, np.float32)
    if align == "joint":
        P = fit_projector(np.concatenate([X_before, X_after]), method, seed)
        before, after = P.embedding_[:len(idx)], P.embedding_[len(idx):]
        _, disparity = procrustes_align(before, after)
    else:
        before = fit_projector(X_before, method, seed).embedding_
        after, disparity = procrustes_align(before, fit_projector(X_after, method, seed).embedding_)
    y, sp = dataset.labels[idx], dataset.splits[idx]
    parts = {}
    for split in [None, *[s for s in ("train", "val", "test") if (sp == s).any()]]:
        m = np.ones(len(idx), bool) if split is None else sp == split
        if m.sum() < 3 or len(np.unique(y[m])) < 2:
            continue
        parts[split or "all"] = pd.DataFrame({"before": separation_report(X_before[m], y[m]),
                                              "after": separation_report(X_after[m], y[m])})
    report = pd.concat(parts, names=["split", "metric"]) if parts else pd.DataFrame(
        columns=["before", "after"])
    moved = np.linalg.norm(after - before, axis=1)
    return BeforeAfter(idx, y, sp, np.asarray(before, np.float32), np.asarray(after, np.float32),
                       report, disparity, moved)


def tween(before: np.ndarray, after: np.ndarray, steps: int = 10) -> list[np.ndarray]:
    """Layouts interpolated from ``before`` to ``after`` (both included), for an animation."""
    return [(1 - t) * before + t * after for t in np.linspace(0.0, 1.0, max(2, steps))]


# ----------------------------------------------------------------------------- figures


def satellites_figure(coords: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      indices: np.ndarray, sat: Satellites, height: int = 560):
    """The layout (faded) with each chosen original as a star and its augmented copies
    around it, joined by thin lines; copies whose 5-NN vote changes class are crossed."""
    import plotly.graph_objects as go

    from tlviz.plots import class_colors, embedding_figure, hover_safe

    fig = embedding_figure(coords, labels, classes, indices, height=height, marker_size=5,
                           webgl=False)  # its star and cross traces are SVG
    fig.update_traces(marker_opacity=0.25, hoverinfo="skip", hovertemplate=None)
    colors = class_colors(len(classes))
    pts = sat.points
    orig = pts[pts["copy"] < 0].set_index("index")
    cop = pts[pts["copy"] >= 0]
    lx, ly = [], []
    for _, r in cop.iterrows():
        o = orig.loc[r["index"]]
        lx += [o["x"], r["x"], None]
        ly += [o["y"], r["y"], None]
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", line={"width": 1, "color": "#666"},
                             hoverinfo="skip", showlegend=False))
    for crossed, symbol, name in ((False, "circle", "copy"), (True, "x", "copy, other class")):
        part = cop[cop["crossed"] == crossed]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["y"], mode="markers", name=name,
            customdata=np.c_[part["index"], part["label"], part["knn_class"]],
            text=[f"copy of #{i} ({hover_safe(classes[c])}); looks like "
                  f"{hover_safe(classes[k])}; distance {d:.3g}"
                  for i, c, k, d in zip(part["index"], part["label"], part["knn_class"],
                                        part["distance"])],
            hovertemplate="%{text}<extra></extra>",
            marker={"symbol": symbol, "size": 10 if crossed else 8,
                    "color": [colors[int(c)] for c in part["label"]],
                    "line": {"width": 2 if crossed else 1, "color": "#d00" if crossed else "#222"}}))
    fig.add_trace(go.Scatter(
        x=orig["x"], y=orig["y"], mode="markers", name="original",
        customdata=np.c_[orig.index.to_numpy(), orig["label"]],
        text=[f"#{i} ({hover_safe(classes[c])})" for i, c in zip(orig.index, orig["label"])],
        hovertemplate="original %{text}<extra></extra>",
        marker={"symbol": "star", "size": 18, "color": [colors[int(c)] for c in orig["label"]],
                "line": {"width": 1.5, "color": "#111"}}))
    return fig


def animation_figure(before: np.ndarray, after: np.ndarray, labels: np.ndarray,
                     classes: Sequence[str], indices: np.ndarray, steps: int = 12,
                     height: int = 560, names: tuple[str, str] = ("frozen", "fine-tuned")):
    """One scatter that morphs from the ``before`` layout into ``after`` (play / slider);
    ``names`` label the two ends on the buttons and the slider."""
    import plotly.graph_objects as go

    from tlviz.plots import embedding_figure

    frames_xy = tween(np.asarray(before), np.asarray(after), steps)
    fig = embedding_figure(frames_xy[0], labels, classes, indices, height=height, webgl=False)
    present = [k for k in range(len(classes)) if (np.asarray(labels) == k).any()]
    frames = []
    for n, xy in enumerate(frames_xy):
        data = [go.Scatter(x=xy[labels == k, 0], y=xy[labels == k, 1]) for k in present]
        frames.append(go.Frame(data=data, name=str(n), traces=list(range(len(present)))))
    fig.frames = frames
    allxy = np.concatenate([before, after])
    pad = 0.05 * (allxy.max(0) - allxy.min(0) + 1e-9)
    lo, hi = allxy.min(0) - pad, allxy.max(0) + pad
    play = {"frame": {"duration": 120, "redraw": False}, "fromcurrent": True,
            "transition": {"duration": 0}}
    fig.update_layout(
        xaxis_range=[lo[0], hi[0]], yaxis_range=[lo[1], hi[1]], dragmode="pan",
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0, "y": 1.08,
                      "xanchor": "left", "buttons": [
                          {"label": "▶ play", "method": "animate",
                           "args": [None, play]},
                          {"label": "◀ back", "method": "animate",
                           "args": [[str(n) for n in reversed(range(len(frames)))], play]}]}],
        sliders=[{"active": 0, "currentvalue": {"prefix": f"{names[0]} → {names[1]}: "},
                  "pad": {"t": 10},
                  "steps": [{"label": f"{n / (len(frames) - 1):.0%}", "method": "animate",
                             "args": [[str(n)], {"mode": "immediate", "frame": {"duration": 0},
                                                 "transition": {"duration": 0}}]}
                            for n in range(len(frames))]}])
    return fig


__all__ = [
    "AUGMENT_PRESETS", "METRICS", "BeforeAfter", "Satellites", "animation_figure", "before_after",
    "centroid_distance", "compare_augmentations", "embed_with", "export_selection", "fit_projector",
    "label_issues", "list_notes", "neighbours", "pairwise", "procrustes_align", "satellites",
    "satellites_figure", "save_note", "selection_from_event", "selection_summary", "tween",
]
