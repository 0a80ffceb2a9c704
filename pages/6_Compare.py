"""Compare: overlay the learning curves of several runs (the Keras book's closing chart)."""

from __future__ import annotations

import json

import streamlit as st

from tlviz.curves import curves_figure
from ui import cache, sidebar, state, widgets

choices = sidebar.choices()

LATEST = 4


def augment_text(raw) -> str:
    if not raw:
        return "off"
    try:
        d = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return "on"
    return "on" if d else "off"


st.title("Compare runs")
st.caption("Accuracy (left) and loss (right) per epoch: training dashed, validation solid, one "
           "colour per run. Heads fitted in one step (kNN, logistic) show as single points.")

ledger = cache.ledger()
rows = widgets.runs_or_stop("No runs yet. Train a head on the Train page; every run lands here.")
ids = list(rows)
finished = [i for i in ids if rows[i]["status"] == "completed"]
default = (finished or ids)[:LATEST]
picked = st.multiselect("Runs", ids, format_func=lambda i: widgets.run_label(rows[i]),
                        placeholder="Choose runs to compare",
                        help="The newest runs are picked by default; a link with ?runs=3,4,5 "
                             "opens these runs.",
                        **state.widget("runs", default, ids))
if not picked:
    st.info("Choose one or more runs above.")
    st.stop()

run_ids = [int(i) for i in picked]
labels = {i: f"#{i} {rows[str(i)]['head'] if rows[str(i)]['mode'] == 'feature-extraction' else rows[str(i)]['mode']}"
          for i in run_ids}
histories = ledger.histories(run_ids)
st.plotly_chart(curves_figure({labels[i]: histories[i] for i in run_ids}, height=420),
                key="compare.curves", config={"displayModeBar": False})

table = ledger.compare(run_ids)
table["augment"] = table["augment"].map(augment_text)
table["what"] = [labels[int(i)].split(" ", 1)[1] for i in table["id"]]
table["epochs"] = [("" if e is None or e != e else str(int(e))) for e in table["epochs"]]
cols = ["id", "dataset", "backbone", "what", "augment", "epochs", "val_accuracy",
        "test_accuracy", "seconds", "created"]
st.dataframe(
    table[cols], hide_index=True, width="stretch",
    column_config={
        "id": st.column_config.NumberColumn("run", format="#%d", width="small"),
        "what": st.column_config.TextColumn("head / mode"),
        "epochs": st.column_config.TextColumn("epochs", width="small"),
        "val_accuracy": st.column_config.NumberColumn("val acc", format="percent"),
        "test_accuracy": st.column_config.NumberColumn("test acc", format="percent"),
        "seconds": st.column_config.NumberColumn("time (s)", format="%.1f"),
        "created": st.column_config.TextColumn("when"),
    })

c1, c2, c3 = st.columns([1, 1, 2])
c1.download_button("Export CSV", ledger.export_text(run_ids, "csv"), file_name="tlviz-runs.csv",
                   mime="text/csv", key="compare.csv", width="stretch")
c2.download_button("Export JSON", ledger.export_text(run_ids, "json"),
                   file_name="tlviz-runs.json", mime="application/json", key="compare.json",
                   width="stretch")
if not choices.presenter:
    with c3.popover(f"Delete {len(run_ids)} run{'s' * (len(run_ids) > 1)}…", width="stretch"):
        st.warning(f"Delete run{'s' * (len(run_ids) > 1)} "
                   f"{', '.join(f'#{i}' for i in run_ids)} from the ledger? This cannot be undone.")
        sure = st.checkbox("Yes, delete them", key="compare.sure")
        if st.button("Delete", type="primary", disabled=not sure, key="compare.delete"):
            n = ledger.delete(run_ids)
            cache.forget_predictors()
            st.session_state.pop("compare.sure", None)
            state.set("runs", [], url=False)
            st.toast(f"Deleted {n} run{'s' * (n != 1)}.")
            st.rerun()
