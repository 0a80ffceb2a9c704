"""The sidebar every page shows: page links, dataset and backbone pickers, presenter toggle.

``render()`` returns the current :class:`Choices`; pages read them instead of
session-state strings. Choices live in :mod:`ui.state` (session + URL), so they
survive page switches and a copied link reproduces the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ui import cache, state
from ui.text import esc

# Every page: less empty space above the title. Static CSS only.
BASE_CSS = """
<style>
.block-container, [data-testid="stMainBlockContainer"] { padding-top: 2.2rem; padding-bottom: 2rem; }
</style>
"""
# Presenter mode: bigger text for a projected room. Static CSS only (no user text in HTML).
PRESENTER_CSS = """
<style>
html { font-size: 18.5px; }
h1 { font-size: 2.6rem !important; }
</style>
"""


ROOT = Path(__file__).resolve().parents[1]
# Material icons ship with Streamlit (offline; no emoji font needed on the projector PC).
PAGE_ICONS = {"Data": ":material/folder_open:", "Augmentation": ":material/tune:",
              "Embedding space": ":material/scatter_plot:", "Explore": ":material/travel_explore:",
              "Train": ":material/model_training:", "Compare": ":material/stacked_line_chart:",
              "Predict": ":material/image_search:"}


def pages() -> list[tuple[str, str]]:
    """(path relative to app.py, title) of Home and every ``pages/<n>_<Title>.py``, in order.

    Streamlit's own navigation is off (``client.showSidebarNavigation``): it would call Home
    "app"; this list keeps drop-in pages and Streamlit's URLs (``/Embedding_space``).
    """
    found = []
    for f in (ROOT / "pages").glob("*.py"):
        num, _, name = f.stem.partition("_")
        order = int(num) if num.isdigit() else 10_000
        found.append((order, f.name, (name if num.isdigit() and name else f.stem).replace("_", " ")))
    return [("app.py", "Home")] + [(f"pages/{n}", t) for _, n, t in sorted(found)]


@dataclass(frozen=True)
class Choices:
    """What the sidebar decided: used by every page."""

    dataset: str
    backbone: str
    presenter: bool
    seed: int = 0


def _dataset_label(ref: str, infos: dict[str, cache.Availability]) -> str:
    info = infos[ref]
    return ref if info.ok else f"{ref} · not on this machine"


def _backbone_label(name: str, infos: dict[str, cache.Availability]) -> str:
    info = infos.get(name)
    return name if info is None or info.ok else f"{name} · weights missing offline"


def _picker(label: str, options: list, infos: dict, fmt, name: str, default: str, help: str):
    """A sidebar selectbox over registry entries, with a warning when the choice is not here."""
    value = st.selectbox(label, options, format_func=lambda o: fmt(o, infos), help=help,
                         **state.widget(name, default, options))
    info = infos.get(value)
    if info is not None and not info.ok:
        st.caption(f":material/warning: {esc(info.why)}")
    return value


def render() -> Choices:
    """Draw the shared sidebar and return the current choices (call once per page)."""
    # Only what the app offers, by name: a link's folder or zip path is refused (issue: a
    # link must not open any folder of the server's disk), with a notice, touching nothing.
    ds_infos = {i.name: i for i in cache.datasets()}
    bb_infos = {i.name: i for i in cache.backbones((state.backbone(cache.backbone_names()),))}
    ds_options = list(ds_infos)
    bb_options = list(bb_infos)
    st.set_page_config(layout="wide", page_icon=":material/visibility:")
    with st.sidebar:
        for path, title in pages():
            st.page_link(path, label=title, icon=PAGE_ICONS.get(title, ":material/home:"
                                                                 if path == "app.py" else None))
        st.divider()
        ref = _picker("Dataset", ds_options, ds_infos, _dataset_label, "dataset",
                      state.default_dataset(), "Datasets marked 'not on this machine' can be "
                      "fetched or located on the Data page.")
        backbone = _picker("Backbone", bb_options, bb_infos, _backbone_label, "backbone",
                           state.default_backbone(), "The pretrained network that turns each "
                           "image into a feature vector. 'pixels' = the raw pixels, no network.")
        presenter = st.toggle("Presenter mode", help="Bigger text, fewer controls: for a "
                              "projected room.", **state.widget("presenter", False))
        seed = state.get("seed", 0, bounds=(0, 10_000))
        if not presenter:
            with st.expander("Advanced"):
                seed = st.number_input("Split seed", 0, 10_000, step=1,
                                       help="Seed of the train/val/test split when the "
                                            "dataset has no split folders.",
                                       **state.widget("seed", 0, bounds=(0, 10_000)))
    st.html(BASE_CSS + (PRESENTER_CSS if presenter else ""))  # static CSS, no user text
    return Choices(ref, backbone, bool(presenter), int(seed))
