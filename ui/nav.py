"""The dashboard's pages, in menu order: one table for app.py's ``st.navigation``, the links
between pages and the tests.

Each page is a file in ``pages/``; its ``url_path`` keeps the URLs of Streamlit's
``pages/`` folder convention (``/Embedding_space``). Links between pages name the file
(``st.page_link(nav.TRAIN)``), which Streamlit resolves against the declared pages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app.py
    title: str  # the navigation menu's label and the browser tab's title
    icon: str  # Material icons ship with Streamlit (no emoji font on the projector PC)
    url_path: str  # "" for Home, served at /


PAGES = (
    PageSpec("pages/0_Home.py", "Home", ":material/home:", ""),
    PageSpec("pages/1_Data.py", "Data", ":material/folder_open:", "Data"),
    PageSpec("pages/2_Augmentation.py", "Augmentation", ":material/tune:", "Augmentation"),
    PageSpec("pages/3_Embedding_space.py", "Embedding space", ":material/scatter_plot:",
             "Embedding_space"),
    PageSpec("pages/4_Explore.py", "Explore", ":material/travel_explore:", "Explore"),
    PageSpec("pages/4_Sweeps.py", "Sweeps & morphs", ":material/grid_view:", "Sweeps"),
    PageSpec("pages/5_Train.py", "Train", ":material/model_training:", "Train"),
    PageSpec("pages/6_Compare.py", "Compare", ":material/stacked_line_chart:", "Compare"),
    PageSpec("pages/7_Predict.py", "Predict", ":material/image_search:", "Predict"),
)
HOME, DATA, AUGMENTATION, EMBEDDING, EXPLORE, SWEEPS, TRAIN, COMPARE, PREDICT = (
    p.path for p in PAGES)
ICONS = {p.path: p.icon for p in PAGES}


def pages() -> list:
    """``st.Page`` objects of :data:`PAGES`, Home the default."""
    import streamlit as st

    return [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path or None,
                    default=not p.url_path) for p in PAGES]
