"""Small page helpers: progress bars, guarded loading (message + stop, never a traceback),
image grids. Pages stay thin by calling these and tlviz.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import streamlit as st

from ui import cache, nav
from ui.sidebar import Choices
from ui.text import esc

Progress = Callable[[int, int, str], None]


@contextlib.contextmanager
def progress(label: str) -> Iterator[Progress]:
    """A progress bar for tlviz ``progress(done, total, msg)`` callbacks, removed afterwards."""
    slot = st.empty()
    bar = slot.progress(0.0, text=label)

    def update(done: int, total: int, msg: str = "") -> None:
        frac = min(1.0, done / total) if total else 0.0
        text = f"{label}: {msg} ({done}/{total})" if total else f"{label}: {msg}"
        bar.progress(frac, text=text)

    try:
        yield update
    finally:
        slot.empty()


def load_dataset(choices: Choices, ref: str | None = None, *, link: bool = True):
    """The chosen dataset, or None after showing what went wrong and what to do.

    ``link``: add a link to the Data page when the dataset is not on this machine.
    """
    from tlviz.data import DatasetError, DatasetUnavailable

    ref = ref or choices.dataset
    try:
        return cache.dataset(ref, choices.seed)
    except DatasetUnavailable as e:
        st.warning(f"**{esc(ref)}** is not on this machine: {esc(e)}")
        if link:
            st.page_link(nav.DATA, label="Open the Data page to fetch or pick another dataset",
                         icon=nav.ICONS[nav.DATA])
    except DatasetError as e:
        st.error(f"Cannot open **{esc(ref)}**: {esc(e)}")
    except Exception as e:  # noqa: BLE001 - any other failure: a message, not a traceback
        st.error(f"Cannot open **{esc(ref)}** ({type(e).__name__}): {esc(e)}")
    return None


def present(fig, min_height: int | None = None):
    """``fig`` scaled for the room when presenter mode is on (the sidebar's toggle)."""
    if st.session_state.get("s.presenter"):
        from tlviz.plots import for_presenter

        return for_presenter(fig, min_height=min_height)
    return fig


def showing(choices: Choices, backbone: bool = True) -> None:
    """One line naming what the page shows: the sidebar's dataset (and backbone)."""
    from ui.text import esc

    bb = f" · backbone **{esc(choices.backbone)}**" if backbone else ""
    st.caption(f":material/database: **{esc(choices.dataset)}**{bb} — chosen in the sidebar")


def dataset_or_stop(choices: Choices, ref: str | None = None):
    """The chosen dataset, or a message saying what to do and ``st.stop()``."""
    ds = load_dataset(choices, ref)
    if ds is None:
        st.stop()
    return ds


def load_embeddings(choices: Choices, backbone: str | None = None):
    """Embeddings of the chosen dataset (progress bar while computing), or None after a
    message saying what went wrong (weights missing offline, unreadable dataset...)."""
    from tlviz.backbones import WeightsUnavailable

    backbone = backbone or choices.backbone
    if load_dataset(choices) is None:
        return None
    try:
        with progress(f"Embedding {choices.dataset} with {backbone}") as cb:
            return cache.embeddings(choices.dataset, backbone, choices.seed, progress=cb)
    except WeightsUnavailable as e:
        st.error(f"**{esc(backbone)}** weights are not on this machine. {esc(e)}")
    except Exception as e:  # noqa: BLE001 - the page must survive; the other map still draws
        st.error(f"Embedding with **{esc(backbone)}** failed ({type(e).__name__}): {esc(e)}")
    return None


def embeddings_or_stop(choices: Choices, backbone: str | None = None):
    """:func:`load_embeddings`, stopping the page when it fails."""
    emb = load_embeddings(choices, backbone)
    if emb is None:
        st.stop()
    return emb


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str] | None = None,
               columns: int = 8) -> None:
    """Images in rows of ``columns``; captions are plain text."""
    captions = list(captions) if captions is not None else [None] * len(images)
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, img, cap in zip(cols, images[start:start + columns], captions[start:start + columns]):
            col.image(img, caption=cap, width="stretch")


def use_dataset(ref: str, opened=None) -> None:
    """Make ``ref`` the chosen dataset everywhere (sidebar, URL) and rerun.

    ``opened``: the dataset just made (an upload, webcam photos): the Data page then says
    what was opened and shows it (:func:`show_opened`).
    """
    from ui import state

    cache.refresh_datasets()
    if opened is not None:
        st.session_state["data_opened"] = opened_message(ref, opened)
    state.set("dataset", ref, default=state.default_dataset())
    st.rerun()


def opened_message(name: str, ds) -> str:
    """What a new dataset holds, in one line: classes, images per split, skipped files."""
    from ui.text import esc

    classes = ", ".join(esc(c) for c in ds.classes[:8]) + (" …" if ds.num_classes > 8 else "")
    splits = " · ".join(f"{s} {int((ds.splits == s).sum()):,}" for s in ds.split_names)
    skipped = f" · {len(ds.skipped)} file(s) skipped (listed below)" if ds.skipped else ""
    return (f"Opened **{esc(name)}**: {len(ds):,} images in {ds.num_classes} classes "
            f"({classes}) · {splits}{skipped}")


def show_opened() -> bool:
    """Show the 'Opened …' confirmation once, after an upload or a webcam save."""
    msg = st.session_state.pop("data_opened", None)
    if msg:
        st.success(msg, icon=":material/check_circle:")
    return bool(msg)


def file_label(ds, i: int) -> str:
    """Short name of image ``i``: the path below the dataset root, or ``name[i]``."""
    from pathlib import Path

    p = ds.path(int(i))
    if ds.root is not None:
        try:
            return str(Path(p).relative_to(ds.root))
        except ValueError:
            pass
    return Path(p).name if "/" in p else p


def run_label(row) -> str:
    """#id · dataset · backbone · head-or-mode · val acc [status] (user text stays plain text)."""
    what = row["head"] if row["mode"] in (None, "feature-extraction") else row["mode"]
    from tlviz.metrics import accuracy_text

    acc_txt = accuracy_text(row["val_accuracy"], row.get("n_val"))
    status = "" if row["status"] == "completed" else f" [{row['status']}]"
    return f"#{row['id']} · {row['dataset']} · {row['backbone']} · {what} · val {acc_txt}{status}"


def run_source() -> str:
    """Whose runs a page shows: "mine", or in classroom mode, once the presenter has
    published runs, "published" when picked (a small switch; in the link as ``runs_from``)."""
    from ui import state

    n = cache.published_runs()
    if not n:
        return "mine"
    labels = {"mine": "My runs", "published": f"Published by the presenter ({n})"}
    picked = st.segmented_control("Runs from", list(labels), format_func=labels.get,
                                  **state.widget("runs_from", "mine", list(labels)))
    return picked or "mine"


def runs_or_stop(empty_message: str, status: str | None = None,
                 source: str = "mine") -> dict[str, dict]:
    """Ledger rows by id (newest first), or a message with a link to Train and ``st.stop()``."""
    runs = cache.ledger(source).list_runs(status=status)
    if runs.empty:
        st.info(empty_message)
        st.page_link(nav.TRAIN, label="Open the Train page", icon=nav.ICONS[nav.TRAIN])
        st.stop()
    return {str(r["id"]): r for r in runs.to_dict(orient="records")}
