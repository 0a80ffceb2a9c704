"""tlviz dashboard — Home: transfer learning in one screen, and what works offline now.

Run with ``streamlit run app.py``. Pages live in ``pages/``; shared pieces in ``ui/``.
"""

from __future__ import annotations

import streamlit as st

from ui import cache, sidebar

st.set_page_config(page_title="tlviz · transfer learning, seen", page_icon="🔭", layout="wide")
choices = sidebar.render()

st.title("Transfer learning, seen")
st.markdown("Placeholder home page (skeleton).")
ok = [d.name for d in cache.datasets() if d.ok]
st.write("Datasets offline now:", ", ".join(ok))
