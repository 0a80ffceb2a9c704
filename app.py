"""tlviz dashboard: the entry point. Run with ``streamlit run app.py``.

It only sets the page config, declares the pages (``ui/nav.py``: files in ``pages/``, in
menu order), draws the shared sidebar once per run and runs the page; pages read the
sidebar's choices with ``ui.sidebar.choices()``. Shared pieces are in ``ui/``, every computation in ``tlviz``.
Heavy modules (torch, umap) load lazily, on first use.
"""

from __future__ import annotations

import streamlit as st

from ui import cache, nav, sidebar, workspace

page = st.navigation(nav.pages())
st.set_page_config(page_title=f"tlviz · {page.title}", page_icon=":material/visibility:",
                   layout="wide")
cache.server_started()  # classroom mode: sweeps idle workspaces, logs the presenter key
with workspace.activated(), sidebar.drawn():  # classroom mode: the session's own workspace
    page.run()
