"""The sidebar every page shows under Streamlit's navigation menu: dataset and backbone
pickers, presenter toggle.

app.py draws it once per run and runs the page inside :func:`drawn`; pages read the
choices with :func:`choices` instead of session-state strings. Choices live in :mod:`ui.state`
(session + URL), so they survive page switches and a copied link reproduces the view.
"""

from __future__ import annotations

import contextlib
import runpy
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ui import cache, state, workspace
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


APP = Path(__file__).resolve().parents[1] / "app.py"
_current: ContextVar[Choices | None] = ContextVar("tlviz_sidebar_choices", default=None)
_entering: ContextVar[bool] = ContextVar("tlviz_entering_app", default=False)


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
    if state.rejected(name) and value == default:  # stays beside the picker, unlike the toast
        st.caption(f":material/link_off: The link's {label.lower()} is not one this app "
                   "offers: showing the default.")
    return value


def render() -> Choices:
    """Draw the shared sidebar and return the current choices."""
    # Only what the app offers, by name: a link's folder or zip path is refused (issue: a
    # link must not open any folder of the server's disk), with a notice, touching nothing.
    ds_infos = {i.name: i for i in cache.datasets()}
    bb_infos = {i.name: i for i in cache.backbones((state.backbone(cache.backbone_names()),))}
    ds_options = list(ds_infos)
    bb_options = list(bb_infos)
    with st.sidebar:
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
    workspace.sidebar(ref)  # classroom mode: share, key, delete my data
    st.html(BASE_CSS + (PRESENTER_CSS if presenter else ""))  # static CSS, no user text
    return Choices(ref, backbone, bool(presenter), int(seed))


@contextlib.contextmanager
def drawn() -> Iterator[Choices]:
    """Draw the sidebar; inside the block (app.py runs the page there) :func:`choices`
    returns its choices."""
    token = _current.set(render())
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def choices() -> Choices:
    """The sidebar's choices, for the page app.py is running: call it at the top of a page
    (a fragment gets what it needs as arguments: its own reruns do not go through app.py)."""
    chosen = _current.get()
    if chosen is None:
        _run_through_app()
    return chosen


def _run_through_app() -> None:
    """A page ran without app.py: run app.py (which runs this page) instead, then stop.

    While a ``pages/`` folder exists, Streamlit keeps its old folder convention until
    ``st.navigation`` has run in the process: a freshly started server's first run, opened
    on a page's link (``/Explore``), runs that page alone, and AppTest does so on every run.
    app.py declares the pages (which ends the convention), and runs the same page (same
    URL path) with the page config and the sidebar, in this same run: widget values and
    button clicks are kept.
    """
    if _entering.get():
        raise RuntimeError("the sidebar was not drawn: run the dashboard with "
                           "`streamlit run app.py`")
    token = _entering.set(True)
    try:
        runpy.run_path(str(APP), run_name="__tlviz_app__")
    finally:
        _entering.reset(token)
    st.stop()
