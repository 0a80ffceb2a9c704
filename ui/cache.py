"""Every ``st.cache_*`` definition of the dashboard, as thin wrappers around tlviz calls.

tlviz caches embeddings and projections on disk too, so a revisit is instant even after
a restart; these wrappers add the in-process layer (no re-reading, no re-hashing).
Long computations with a progress bar (embedding, augmentation comparison, before/after)
run outside the cached call, into a shared :class:`Memo` slot: cached functions never draw.
Heavy modules (torch, umap) are imported inside the functions to keep app start fast.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import streamlit as st

from tlviz import config

Progress = Callable[[int, int, str], None]
T = TypeVar("T")


class Memo:
    """One value computed once and shared by every session, filled *outside* any cached call.

    Streamlit records what a cached function draws and replays it on every hit, so a
    progress bar cannot be drawn from inside one. A ``st.cache_resource`` function here only
    hands out this empty slot (keyed like a cache entry, evicted like one); the caller fills
    it with a computation that may draw its progress bar. Concurrent callers of the same
    key wait for the first; a failed or interrupted computation leaves the slot empty.
    Callers must not mutate the shared value.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value = None

    def get(self, compute: Callable[[], T]) -> T:
        with self._lock:
            if not self._done:
                self._value = compute()
                self._done = True
            return self._value


@dataclass(frozen=True)
class Availability:
    """A dataset or backbone as the pickers show it."""

    name: str
    description: str
    kind: str  # datasets: builtin | datadir | download | user; backbones: bundled | torchvision | none
    ok: bool
    why: str
    downloadable: bool = False


# ----------------------------------------------------------------------------- workspaces
# Classroom mode: a session's own datasets are keyed by its workspace too (``scope``), so
# that two workspaces' datasets of the same name never share an entry; shared datasets
# (built-in, data folder, published) have the scope "" and are computed once for everyone.


def _workspace_id() -> str:
    from ui import workspace

    ws = workspace.session()
    return ws.id if ws is not None else ""


@contextlib.contextmanager
def _in(scope: str):
    """tlviz's folder functions follow workspace ``scope`` ("" : none) inside the block."""
    from tlviz import workspaces

    with workspaces.active(workspaces.Workspace(scope) if scope else None):
        yield


def _scope_of(ref: str) -> str:
    """The workspace id when ``ref`` is one of the session's own datasets, else ""."""
    ws = _workspace_id()
    if not ws:
        return ""
    kinds = {i.name: i.kind for i in _dataset_infos(str(config.home_dir()), str(config.data_dir()), ws)}
    return ws if kinds.get(ref) == "user" else ""


def _scoped(cache: Callable) -> Callable:
    """``cache`` (a ``st.cache_*`` decorator) applied to ``fn(ref, ...)`` keyed by
    ``_scope_of(ref)`` as well, with that workspace active while ``fn`` runs."""
    def wrap(fn: Callable) -> Callable:
        def inner(scope: str, *args, **kwargs):
            with _in(scope):
                return fn(*args, **kwargs)

        inner.__qualname__ = f"{fn.__qualname__}.scoped"  # a cache of its own per function
        inner.__module__ = fn.__module__
        cached = cache(inner)

        @functools.wraps(fn)
        def public(ref: str, *args, **kwargs):
            return cached(_scope_of(ref), ref, *args, **kwargs)

        public.clear = cached.clear
        return public
    return wrap


@st.cache_resource(show_spinner=False)
def server_started() -> str:
    """Once per server process: in classroom mode, sweep idle workspaces and print the
    presenter token to the server's log. Returns the mode."""
    import sys

    from tlviz import workspaces

    mode = workspaces.mode()
    if mode == "classroom":
        removed = workspaces.sweep()
        workspaces.mark_interrupted()  # runs a killed server was training
        print(f"tlviz classroom mode: {len(removed)} idle workspace(s) removed; presenter key "
              f"(publishes datasets to everyone): {workspaces.presenter_token()}",
              file=sys.stderr, flush=True)
    return mode


@st.cache_data(ttl=60, show_spinner=False)
def _dataset_infos(home: str, data: str, scope: str = "") -> list[Availability]:
    from tlviz.data import list_datasets

    try:
        with _in(scope):
            infos = list_datasets()
    except OSError as e:  # an unreadable data folder must not take every page down
        return [Availability("digits", "scikit-learn's handwritten digits", "builtin", True,
                             f"(other datasets unavailable: {e})")]
    out = []
    for info in infos:
        try:
            ok, why = info.available()
        except Exception as e:  # noqa: BLE001 - one odd dataset must not hide the others
            ok, why = False, f"cannot check ({type(e).__name__}: {e})"
        out.append(Availability(info.name, info.description, info.kind, ok, why,
                                info.download is not None))
    return out


def datasets() -> list[Availability]:
    """The datasets of ``list_datasets()`` with availability (re-checked every minute)."""
    return _dataset_infos(str(config.home_dir()), str(config.data_dir()), _workspace_id())


def refresh_datasets() -> None:
    """Forget the dataset list and everything derived from loaded datasets (after a download,
    upload or webcam save: a re-saved dataset may reuse its name). tlviz's disk caches are
    keyed by content, so nothing is recomputed that did not change."""
    for fn in (_dataset_infos, dataset, _embeddings_slot, projection_layout, separation, thumbnail,
               _sprites_slot, projection_quality, point_images):
        fn.clear()


@st.cache_data(show_spinner=False)
def backbones(extra: tuple[str, ...] = ()) -> list[Availability]:
    """Visible backbones with offline availability (weights on disk or not needed).

    ``extra``: hidden backbones to list as well when registered (e.g. ``tiny_random``
    asked for by a link or a test).
    """
    from tlviz.backbones import get_backbone_spec, list_backbones

    specs = list_backbones()
    for name in extra:
        try:
            spec = get_backbone_spec(name)
        except KeyError:
            continue
        if spec not in specs:
            specs.append(spec)
    out = []
    for spec in specs:
        ok, why = spec.available()
        out.append(Availability(spec.name, spec.description, spec.source, ok, why))
    return out


@st.cache_data(show_spinner=False)
def backbone_names() -> list[str]:
    """Every registered backbone name, hidden (test) ones included: what a link may ask for."""
    from tlviz.backbones import list_backbones

    return [s.name for s in list_backbones(include_hidden=True)]


@_scoped(st.cache_resource(show_spinner=False, max_entries=6))
def dataset(ref: str, seed: int = 0):
    """``tlviz.data.load_named(ref, seed)``, kept in memory: a listed dataset's *name* only,
    never a path (the web app opens only what it offers). Raises DatasetError/Unavailable."""
    from tlviz.data import load_named

    return load_named(ref, seed=seed)


@_scoped(st.cache_resource(show_spinner=False, max_entries=12))
def _embeddings_slot(ref: str, backbone: str, seed: int) -> Memo:
    return Memo()


def embeddings(ref: str, backbone: str, seed: int = 0, progress: Progress | None = None):
    """``tlviz.embed.embed`` of dataset ``ref`` through ``backbone`` (disk-cached as well),
    computed once per process; ``progress`` sees the computation when it happens here.

    Raises WeightsUnavailable (offline without weights) or DatasetError.
    """
    from tlviz.embed import embed

    def compute():
        ds = dataset(ref, seed)
        if embeddings_on_disk(ref, backbone, seed):  # reading a file: no need to queue
            return embed(ds, backbone, progress=progress)
        from tlviz.jobqueue import Ticket
        from ui import jobs

        def waiting(place: int) -> None:
            if progress is not None:
                progress(0, 0, f"waiting in the server's queue, place {place}")

        with jobs.QUEUE.slot(Ticket(_workspace_id(), "embedding"), on_wait=waiting):
            return embed(ds, backbone, progress=progress)

    return _embeddings_slot(ref, backbone, seed).get(compute)


def embeddings_on_disk(ref: str, backbone: str, seed: int = 0) -> bool:
    """True when tlviz's disk cache already holds these embeddings (showing them is quick)."""
    from tlviz.embed import is_cached

    return is_cached(dataset(ref, seed), backbone)


@_scoped(st.cache_data(show_spinner=False, max_entries=32))
def projection_layout(ref: str, backbone: str, method: str = "umap", dim: int = 2, seed: int = 0,
                      split: str | None = None, proj_seed: int = 0):
    """(indices, coordinates, fitted) of the valid images of ``split`` (all for None):
    ``tlviz.project.layout``, stratified by class; ``fitted`` is None when every point was
    fitted, else True for the fitted sample and False for the points placed by transform.
    """
    from tlviz.project import layout

    emb = embeddings(ref, backbone, seed)
    idx = emb.indices(split)
    X = np.asarray(emb.features[idx], dtype=np.float32)
    lay = layout(X, method=method, dim=dim, seed=proj_seed, labels=emb.labels[idx],
                 key=f"{emb.key}:{split or 'all'}:{len(idx)}")
    return idx, lay.coords, lay.fitted


def projection(ref: str, backbone: str, method: str = "umap", dim: int = 2, seed: int = 0,
               split: str | None = None, proj_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, coordinates) of :func:`projection_layout`: ``indices`` are dataset
    positions, row-aligned with the ``dim``-column coordinates."""
    idx, coords, _ = projection_layout(ref, backbone, method, dim, seed, split, proj_seed)
    return idx, coords


@_scoped(st.cache_data(show_spinner=False, max_entries=16))
def morph(ref: str, backbone: str, other: str | None, seed: int = 0,
          method_from: str = "pca") -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(indices, from-layout, to-layout aligned to it, disparity) of the dataset's images:
    ``other=None``: the same features by ``method_from`` then UMAP; else ``backbone``'s UMAP
    into ``other``'s UMAP (the images both could read). None when ``other`` cannot embed."""
    from tlviz.sweeps import morph as aligned_pair

    emb = embeddings(ref, backbone, seed)
    idx = emb.indices(None)
    if other is None:
        X = np.asarray(emb.features[idx], np.float32)
        key = f"{emb.key}:all:{len(idx)}"
        a, b, d = aligned_pair(X, X, method_from, "umap", keys=(key, key))
        return idx, a, b, d
    try:
        emb2 = embeddings(ref, other, seed)
    except Exception:  # noqa: BLE001 - the page says the other backbone could not embed
        return None
    both = np.intersect1d(idx, emb2.indices(None))
    keys = tuple(f"{e.key}:all:{len(e.indices(None))}" if len(both) == len(e.indices(None))
                 else None for e in (emb, emb2))
    a, b, d = aligned_pair(np.asarray(emb.features[both], np.float32),
                           np.asarray(emb2.features[both], np.float32), "umap", "umap", keys=keys)
    return both, a, b, d


@_scoped(st.cache_data(show_spinner=False, max_entries=64))
def separation(ref: str, backbone: str, seed: int = 0, split: str | None = None,
               method: str | None = None, dim: int = 2) -> dict[str, float]:
    """``separation_report`` of the features (``method=None``: cosine, as the heads compare
    them) or of their projection (euclidean: distances on the map)."""
    from tlviz.metrics import separation_report

    emb = embeddings(ref, backbone, seed)
    idx = emb.indices(split)
    if method is None:
        X = np.asarray(emb.features[idx], dtype=np.float32)
    else:
        X = projection(ref, backbone, method, dim, seed, split)[1]
    return separation_report(X, emb.labels[idx], metric="cosine" if method is None else "euclidean",
                             index_key=f"{emb.key}-{split}" if method is None else None)


TRUST_SAMPLE = 2000  # bigger maps: trustworthiness estimated on this many images
TRUST_BUDGET = 200_000_000  # ... fewer above 100k (sample x n): 200 of 1M, 15 s on 2 cores


@_scoped(st.cache_data(show_spinner=False, max_entries=32))
def projection_quality(ref: str, backbone: str, method: str = "umap", seed: int = 0,
                       split: str | None = None, k: int = 10, full: bool = False) -> dict:
    """``tlviz.metrics.projection_quality`` of the 2D :func:`projection`: trustworthiness
    (estimated on :data:`TRUST_SAMPLE` images of bigger maps, unless ``full``) and
    per-point neighbours kept (row-aligned with the projection's indices; None when
    estimated)."""
    from tlviz.metrics import projection_quality as _quality

    emb = embeddings(ref, backbone, seed)
    idx, coords = projection(ref, backbone, method, 2, seed, split)
    # each asked image costs n feature distances (and k rank counts over them): a budget
    sample = int(min(TRUST_SAMPLE, max(100, TRUST_BUDGET // max(len(idx), 1))))
    return _quality(np.asarray(emb.features[idx], np.float32), coords, k=k, metric="cosine",
                    sample=None if full else sample)


@_scoped(st.cache_data(show_spinner=False, max_entries=8))
def density(ref: str, backbone: str, method: str = "umap", seed: int = 0,
            split: str | None = None, width: int = 900, height: int = 600,
            box: tuple[float, float, float, float] | None = None):
    """``tlviz.plots.density_image`` of every point of the 2D :func:`projection` (of the
    region ``box`` = (x0, x1, y0, y1) when zoomed): (PNG data URI, x range, y range)."""
    from tlviz.plots import density_image

    idx, coords = projection(ref, backbone, method, 2, seed, split)
    emb = embeddings(ref, backbone, seed)
    return density_image(coords, emb.labels[idx], len(emb.classes), width, height, box=box)


@_scoped(st.cache_resource(show_spinner=False, max_entries=4))
def _sprites_slot(ref: str, seed: int) -> Memo:
    return Memo()


def sprite_sheets(ref: str, seed: int = 0, progress: Progress | None = None):
    """``tlviz.sprites.build_sprite_sheets`` of every image of dataset ``ref`` (disk-cached
    too), computed once per process; ``progress`` sees the computation when it happens here."""
    from tlviz.sprites import build_sprite_sheets

    return _sprites_slot(ref, seed).get(
        lambda: build_sprite_sheets(dataset(ref, seed), progress=progress))


@_scoped(st.cache_data(show_spinner=False, max_entries=8))
def point_images(ref: str, seed: int, indices: tuple[int, ...], size: int = 64) -> list[str]:
    """Data URIs of images ``indices`` at ``size`` px, cut from the sprite sheets."""
    from tlviz.sprites import data_uri

    return [data_uri(im, 70) for im in sprite_sheets(ref, seed).tile_images(indices, size)]


@_scoped(st.cache_data(show_spinner=False, max_entries=4096))
def thumbnail(ref: str, index: int, size: int = 96, seed: int = 0) -> np.ndarray:
    """Image ``index`` of dataset ``ref`` as a ``size`` x ``size`` uint8 RGB array (centre crop)."""
    from PIL import Image, ImageOps

    im = dataset(ref, seed).load(int(index), size=size)
    resample = Image.NEAREST if min(im.size) < size // 2 else Image.BILINEAR  # crisp tiny images
    im = ImageOps.fit(im, (size, size), resample)
    return np.asarray(im.convert("RGB"))


@st.cache_resource(show_spinner=False)
def _ledger_at(path: str, read_only: bool = False):
    from tlviz.runs import Ledger

    return Ledger(path, read_only=read_only)


def _ledger_path(source: str = "mine") -> tuple[str, bool]:
    """(path, read-only) of the session's ledger: TLVIZ_HOME's, or its workspace's; with
    ``source="published"`` (classroom mode) the runs the presenter published, read-only."""
    from ui import workspace

    ws = workspace.session()
    if ws is not None and source == "published":
        from tlviz import workspaces

        return str(workspaces.published().ledger_path), True
    if ws is None:
        from tlviz.runs import default_path

        return str(default_path()), False
    return str(ws.ledger_path), ws.read_only


def ledger(source: str = "mine"):
    """The session's run ledger (one shared object per file; safe across threads): the one
    under TLVIZ_HOME, or in classroom mode its workspace's own (read-only in a shared view),
    or with ``source="published"`` the presenter's published runs (read-only)."""
    return _ledger_at(*_ledger_path(source))


def published_runs() -> int:
    """How many runs the presenter published (0 outside classroom mode)."""
    from tlviz import workspaces

    if not workspaces.classroom() or not workspaces.published().ledger_path.exists():
        return 0
    return len(ledger("published").list_runs(status="completed"))


@_scoped(st.cache_data(show_spinner=False, max_entries=16))
def run_proba(ref: str, backbone: str, seed: int, ledger_path: str,
              run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(dataset indices, probabilities) of a feature-extraction run of the ledger at
    ``ledger_path`` (the session's own: run ids are per ledger) on every valid image of the
    dataset: its head on the cached features of its backbone."""
    from tlviz.train import run_feature_proba

    emb = embeddings(ref, backbone, seed)
    idx = emb.indices(None)
    return idx, run_feature_proba(_ledger_at(ledger_path), run_id,
                                  np.asarray(emb.features[idx], np.float32))


# ----------------------------------------------------------------------------- Explore page


@_scoped(st.cache_resource(show_spinner=False, max_entries=6))
def projector(ref: str, backbone: str, method: str = "umap", seed: int = 0,
              split: str | None = None, proj_seed: int = 0):
    """A fitted ``tlviz.project.Projector`` of the valid images of ``split``: its
    ``embedding_`` is the layout (same settings as :func:`projection`), its ``transform``
    places new points (augmented copies) in it."""
    from tlviz.explore import fit_projector

    emb = embeddings(ref, backbone, seed)
    return fit_projector(np.asarray(emb.features[emb.indices(split)], np.float32), method, proj_seed)


@_scoped(st.cache_data(show_spinner=False, max_entries=32))
def label_issues(ref: str, backbone: str, seed: int = 0, split: str | None = None):
    """``tlviz.explore.label_issues`` (confident learning) over the valid images of ``split``."""
    from tlviz.explore import label_issues as _issues

    emb = embeddings(ref, backbone, seed)
    mask = emb.valid if split is None else emb.valid & (emb.splits == split)
    return _issues(emb.features, emb.labels, mask=mask)


@_scoped(st.cache_data(show_spinner=False, max_entries=24))
def satellites(ref: str, backbone: str, seed: int, indices: tuple[int, ...], augment_json: str,
               n_copies: int = 8, method: str = "umap", split: str | None = None,
               aug_seed: int = 0):
    """``tlviz.explore.satellites`` of ``indices`` with the augmentation given as JSON,
    placed in the layout of :func:`projector`."""
    import json

    from tlviz.explore import satellites as _satellites

    proj = projector(ref, backbone, method, seed, split)
    return _satellites(dataset(ref, seed), embeddings(ref, backbone, seed), list(indices),
                       json.loads(augment_json), n_copies, proj, aug_seed)


@_scoped(st.cache_resource(show_spinner=False, max_entries=16))
def _comparison_slot(ref: str, backbone: str, seed: int, indices: tuple[int, ...], n_copies: int,
                     extra_json: str) -> Memo:
    return Memo()


def augmentation_comparison(ref: str, backbone: str, seed: int, indices: tuple[int, ...],
                            n_copies: int = 8, extra_json: str = "",
                            progress: Progress | None = None):
    """``tlviz.explore.compare_augmentations`` over the presets (plus ``extra_json``:
    {name: AugmentConfig dict}, e.g. the user's own settings), computed once per process."""
    import json

    from tlviz.augment import AugmentConfig
    from tlviz.explore import AUGMENT_PRESETS, compare_augmentations

    def compute():
        configs = dict(AUGMENT_PRESETS)
        for name, d in (json.loads(extra_json) if extra_json else {}).items():
            configs[name] = AugmentConfig.from_dict(d)
        return compare_augmentations(dataset(ref, seed), embeddings(ref, backbone, seed),
                                     list(indices), configs, n_copies, progress=progress)

    return _comparison_slot(ref, backbone, seed, tuple(indices), n_copies, extra_json).get(compute)


@st.cache_resource(show_spinner=False, max_entries=2)
def finetuned_net(ledger_path: str, run_id: int):
    """(backbone name, fine-tuned FeatureNet) of a fine-tune run in the ledger."""
    from tlviz.runs import Ledger
    from tlviz.train import load_predictor

    led = Ledger(ledger_path)
    backbone = led.get_run(int(run_id))["config"]["backbone"]
    net = getattr(load_predictor(led, int(run_id)), "feature_net", None)
    if net is None:
        raise ValueError(f"run {run_id} has no fine-tuned backbone to compare")
    return backbone, net


@_scoped(st.cache_resource(show_spinner=False, max_entries=8))
def _before_after_slot(ref: str, seed: int, ledger_path: str, run_id: int,
                       indices: tuple[int, ...], method: str, align: str) -> Memo:
    return Memo()


def before_after(ref: str, seed: int, ledger_path: str, run_id: int, indices: tuple[int, ...],
                 method: str = "pca", align: str = "procrustes",
                 progress: Progress | None = None):
    """``tlviz.explore.before_after`` of ``indices``: frozen features from the embedding
    cache, fine-tuned features from the run's backbone; computed once per process."""
    from tlviz.backbones import get_backbone_spec
    from tlviz.explore import before_after as _before_after

    def compute():
        backbone, net = finetuned_net(ledger_path, run_id)
        emb = embeddings(ref, backbone, seed)
        idx = np.asarray(indices, dtype=np.int64)
        return _before_after(dataset(ref, seed), backbone, net, spec=get_backbone_spec(backbone),
                             indices=idx, method=method, align=align,
                             X_before=np.asarray(emb.features[idx]), progress=progress)

    return _before_after_slot(ref, seed, ledger_path, int(run_id), tuple(indices), method,
                              align).get(compute)


@st.cache_resource(show_spinner=False, max_entries=8)
def _predictor_at(path: str, run_id: int):
    from tlviz.train import load_predictor

    return load_predictor(_ledger_at(path), run_id)


def predictor(run_id: int, source: str = "mine"):
    """``tlviz.train.load_predictor`` for a run of the current ledger (``source``: see
    :func:`ledger`), kept in memory.

    Raises ValueError (no stored weights), KeyError (no such run), WeightsUnavailable.
    """
    return _predictor_at(_ledger_path(source)[0], int(run_id))


def forget_predictors() -> None:
    """Drop loaded predictors (after runs are deleted)."""
    _predictor_at.clear()
