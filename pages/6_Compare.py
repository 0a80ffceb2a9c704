"""Compare: overlay the learning curves of several runs (the Keras book's closing chart),
their accuracies with 95% intervals, and how well their probabilities are calibrated."""

from __future__ import annotations

import json

import streamlit as st

from tlviz.curves import curves_figure, final_bars_figure
from tlviz.metrics import accuracy_text
from tlviz.plots import reliability_figure
from ui import cache, sidebar, state, widgets, workspace

choices = sidebar.choices()

LATEST = 4


def augment_text(raw) -> str:
    if not raw or raw != raw:  # None, "", {} or NaN (a column of None read by pandas)
        return "off"
    try:
        d = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return "on"
    return "on" if d else "off"


st.title("Compare runs")
st.caption("Accuracy (left) and loss (right) per epoch: training dashed, validation solid, one "
           "colour per run. Heads fitted in one step (kNN, logistic) show as single points. "
           "The diamond with a bar is the run's final val accuracy and its 95% interval.")

source = widgets.run_source()
ledger = cache.ledger(source)
rows = widgets.runs_or_stop("No runs yet. Train a head on the Train page; every run lands here.",
                            source=source)
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
def _label(row) -> str:
    what = row["head"] if row["mode"] == "feature-extraction" else row["mode"]
    name = str(row.get("name") or "")
    return f"#{row['id']} {what}" + (f" ({name[9:]})" if name.startswith("what-if: ") else "")


labels = {i: _label(rows[str(i)]) for i in run_ids}
histories = ledger.histories(run_ids)
table = ledger.compare(run_ids)
finals = {labels[int(r["id"])]: (r["val_accuracy"], r["val_low"], r["val_high"])
          for _, r in table.iterrows()}
if all(len(histories[i]) <= 1 for i in run_ids):  # kNN / logistic only: no epochs to draw
    bars = {labels[int(r["id"])]: {"val": r["val_accuracy"], "low": r["val_low"],
                                   "high": r["val_high"], "train": r.get("train_accuracy")}
            for _, r in table.iterrows()}
    st.plotly_chart(widgets.present(final_bars_figure(bars, height=400)), key="compare.bars",
                    config={"displayModeBar": False})
else:
    st.plotly_chart(widgets.present(curves_figure(
        {labels[i]: histories[i] for i in run_ids}, height=420, finals=finals), 560),
                    key="compare.curves", config={"displayModeBar": False})

# head or mode, epochs and augmentation in one column: the table fits 1280 px with its intervals
table["what"] = [" · ".join([labels[int(r["id"])].split(" ", 1)[1]]
                            + ([f"{int(r['epochs'])} ep"] if r["epochs"] == r["epochs"]
                               and r["epochs"] is not None else [])
                            + (["aug"] if augment_text(r["augment"]) == "on" else []))
                 for _, r in table.iterrows()]
for split in ("val", "test"):
    table[f"{split}_text"] = [accuracy_text(a, n) for a, n in
                              zip(table[f"{split}_accuracy"], table[f"n_{split}"])]
table["t_text"] = ["—" if t is None or t != t else f"{t:.2f}" for t in table["temperature"]]
cols = ["id", "dataset", "backbone", "what", "val_text", "test_text", "val_ece", "t_text",
        "seconds"]  # when each run was made: in the exports
st.dataframe(
    table[cols], hide_index=True, width="stretch",
    column_config={
        "id": st.column_config.NumberColumn("run", format="#%d", width="small"),
        "what": st.column_config.TextColumn(
            "head / mode", help="The head (frozen backbone) or training mode; epochs when set; "
                                "'aug': trained with augmentation"),
        "val_text": st.column_config.TextColumn(
            "val acc (95% CI)", help="Validation accuracy and its 95% Wilson interval"),
        "test_text": st.column_config.TextColumn(
            "test acc (95% CI)", help="Test accuracy and its 95% Wilson interval"),
        "val_ece": st.column_config.NumberColumn(
            "val ECE", format="%.3f", width="small",
            help="Expected calibration error on val (15 bins): the mean gap between how sure "
                 "the run is and how often it is right. 0 = probabilities mean what they say."),
        "t_text": st.column_config.TextColumn(
            "T", width="small",
            help="Temperature the logits are divided by (fitted on the training split; 1 = "
                 "kept as trained; empty = not scaled: kNN vote shares, trained networks)."),
        "seconds": st.column_config.NumberColumn("s", format="%.1f", width="small",
                                                 help="Training time in seconds"),
    })

bins = {labels[i]: ledger.get_run(i).get("reliability") or [] for i in run_ids}
if any(bins.values()):
    with st.expander("Calibration: reliability diagram (val)"):
        st.plotly_chart(widgets.present(reliability_figure({k: v for k, v in bins.items() if v},
                                                           height=360)),
                        key="compare.reliability", config={"displayModeBar": False})
        st.caption("Per confidence bin: how often the run was right. On the diagonal, "
                   "probabilities mean what they say; below it, the run is over-confident.")

c1, c2, c3 = st.columns([1, 1, 2])
c1.download_button("Export CSV", ledger.export_text(run_ids, "csv"), file_name="tlviz-runs.csv",
                   mime="text/csv", key="compare.csv", width="stretch")
c2.download_button("Export JSON", ledger.export_text(run_ids, "json"),
                   file_name="tlviz-runs.json", mime="application/json", key="compare.json",
                   width="stretch")
if workspace.presenting() and source == "mine":
    done = [i for i in run_ids if rows[str(i)]["status"] == "completed"]
    if c3.button(f"Publish {len(done)} run{'s' * (len(done) != 1)} to everyone", disabled=not done,
                 key="compare.publish", icon=":material/campaign:", width="stretch",
                 help="Every session can then pick them under Runs from: Published, to compare "
                      "with its own and to predict with."):
        new = workspace.publish_runs(done)
        st.toast(f"Published as {', '.join(f'#{i}' for i in new)}: every session sees them now.")
elif not choices.presenter and not ledger.read_only:  # a shared view only reads
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
