"""The Train page's pieces: per-mode and per-head settings, the job watcher (a fragment that
reruns every second while training runs), the results with their confusion matrix, and
the ladder."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from tlviz.curves import (
    cell_indices,
    confusion_figure,
    curves_figure,
    ladder_figure,
    off_diagonal_cells,
)
from tlviz.modes import get_mode
from tlviz.plots import reliability_figure
from ui import cache, jobs, nav, state, widgets, workspace
from ui.sidebar import Choices
from ui.text import esc

MODE_HELP = {
    "feature-extraction": "frozen backbone + a head on its features (fast: features are cached)",
    "pixels-mlp": "no backbone: a small network on the raw pixels (the baseline that fails)",
    "scratch-cnn": "a small CNN trained from scratch on these images only",
    "fine-tune": "backbone's last block unfrozen and trained with the head (slow on CPU)",
}
C_VALUES = ["auto", 0.01, 0.1, 1.0, 10.0, 100.0]  # auto: chosen by CV inside the train split
K_VALUES = ["auto", 1, 3, 5, 7, 9, 15, 25]
HIDDEN = [0, 32, 64, 128, 256, 512]
CELL, CONFUSION = "train.cell", "train.confusion"  # session keys: picked cell, matrix clicks


# ----------------------------------------------------------------------------- settings


def modes() -> list[str]:
    """Registered training modes; tlviz.finetune adds its own when it is installed."""
    from tlviz import train

    try:
        import tlviz.finetune  # noqa: F401 - registers pixels-mlp, scratch-cnn, fine-tune
    except ImportError:
        pass
    return list(train.MODES)


def current_augment():
    """The user's augmentation from the Augmentation page when set there, else the book's."""
    from tlviz.augment import AugmentConfig

    try:
        cfg = AugmentConfig.from_dict(state.augment() or {})
    except (TypeError, ValueError):
        cfg = None
    if cfg is None or cfg.is_identity:
        return AugmentConfig.book(), "the book's preset (rotation 40°, shifts 0.2, zoom 0.2, flip)"
    return cfg, "your settings from the Augmentation page"


def mode_options(mode: str, advanced: bool) -> tuple[dict, int]:
    """Widgets for a tlviz.finetune mode; returns (extra options, epochs)."""
    d = get_mode(mode).options().to_dict()
    hi = 50 if mode == "fine-tune" else 100
    epochs = int(st.slider("Epochs", 1, hi, **state.widget(f"{mode}_epochs",
                                                           int(d.get("epochs", 10)), bounds=(1, hi))))
    extra = {}
    if mode == "fine-tune":
        extra["n_trainable_blocks"] = int(st.slider(
            "Blocks to unfreeze", 1, 3, help="How many of the backbone's last blocks train.",
            **state.widget("ft_blocks", int(d.get("n_trainable_blocks", 1)), bounds=(1, 3))))
    elif advanced and "hidden" in d:
        extra["hidden"] = int(st.select_slider("Hidden units", HIDDEN,
                                               **state.widget("px_hidden", int(d["hidden"]),
                                                              HIDDEN)))
    return extra, epochs


def head_params(head: str, advanced: bool) -> tuple[dict, int | None]:
    """Widgets for the head's hyper-parameters; returns (params, epochs)."""
    if head == "knn":
        k = st.select_slider("Neighbours (k)", K_VALUES,
                             help="How many most-similar training images vote. auto: the k "
                                  "with the best leave-one-out accuracy on the training images.",
                             **state.widget("knn_k", "auto", K_VALUES))
        metric = "auto"
        if advanced:
            metric = st.radio("Distance", ["auto", "cosine", "euclidean"], horizontal=True,
                              **state.widget("knn_metric", "auto", ["auto", "cosine", "euclidean"]))
        return {"n_neighbors": k if k == "auto" else int(k), "metric": metric}, None
    if head == "logistic":
        c = st.select_slider("Regularisation C", C_VALUES,
                             help="Small C: simpler boundary (more regularised). auto: chosen "
                                  "by cross-validation inside the training split, never on "
                                  "val or test.",
                             **state.widget("C", "auto", C_VALUES))
        return {"C": c if c == "auto" else float(c)}, None
    hidden = st.select_slider("Hidden units", HIDDEN, help="0 = no hidden layer (linear).",
                              **state.widget("mlp_hidden", 256, HIDDEN))
    epochs = st.slider("Epochs", 2, 100, **state.widget("epochs", 30, bounds=(2, 100)))
    return {"hidden": int(hidden)}, int(epochs)


def short_label(cfg) -> str:
    return cfg.head if cfg.mode == "feature-extraction" else cfg.mode


def run_label(cfg) -> str:
    return f"{cfg.dataset} · {cfg.backbone} · {short_label(cfg)}"


# ----------------------------------------------------------------------------- jobs


def running(key: str) -> bool:
    """Whether this session's job ``key`` ("train", "ladder") is running."""
    job = jobs.get(key)
    return job is not None and job.running


def stop_all() -> None:
    for key in ("train", "ladder"):
        jobs.request_stop(key)


WHAT_IF = "train.what_if"  # session: {"dataset": name, "indices": [...]} from the map


def what_if(choices: Choices) -> list[int]:
    """The training images the next run leaves out (picked on the map), with a notice and a
    way to forget them; [] for a normal run."""
    w = st.session_state.get(WHAT_IF)
    if not w or w.get("dataset") != choices.dataset:
        return []
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.info(f"**What-if run:** the next run leaves out the {len(w['indices'])} image(s) you "
              "selected on the map (training images only: val and test stay the same, so "
              "Compare puts it fairly beside the run without them).", icon=":material/science:")
    right.button("Forget", key="train.what_if_forget", on_click=st.session_state.pop,
                 args=(WHAT_IF, None))
    return list(w["indices"])


def start_training(cfg, ds, choices: Choices) -> None:
    """Train ``cfg`` in the background (the run goes to the ledger) and redraw the page."""
    from tlviz.train import train

    if not workspace.writable("train"):
        return
    led = cache.ledger()  # resolved here: the thread never calls streamlit

    def work(j: jobs.Job):
        return train(cfg, dataset=ds, ledger=led, progress=j.on_progress, on_epoch=j.on_epoch,
                     should_stop=j.should_stop)

    jobs.start("train", run_label(cfg), work, cfg=cfg, ref=choices.dataset, seed=choices.seed)
    jobs.forget("ladder")
    st.session_state.pop(WHAT_IF, None)  # one what-if run per pick
    st.rerun()  # redraw with Stop enabled


def live_curves(job: jobs.Job, n: int = 0) -> None:
    """Accuracy and loss per epoch while a run trains (a head fitted in one step has no
    curve: its final numbers are in the results below); ``n``: the draw's number."""
    if len(job.records) > 1 or (job.records and job.running):
        st.plotly_chart(widgets.present(curves_figure(
            {short_label(job.meta["cfg"]): list(job.records)}, height=340), 480),
                        key=f"train.live.{n}", config={"displayModeBar": False})


# ----------------------------------------------------------------------------- results


def outcome(job: jobs.Job, ds, choices: Choices) -> None:
    """How the finished training went: a message, or the metrics and the confusion matrix."""
    from tlviz.backbones import WeightsUnavailable
    from tlviz.train import Cancelled

    if isinstance(job.error, Cancelled) and "queue" in str(job.error):
        st.warning("Training stopped while it waited in the queue; nothing was recorded.")
    elif isinstance(job.error, Cancelled):
        st.warning("Training stopped. The run is in the ledger as *cancelled*.")
    elif isinstance(job.error, WeightsUnavailable):
        st.error(f"**{esc(job.meta['cfg'].backbone)}** weights are not on this machine: "
                 f"{esc(job.error)} Pick another backbone in the sidebar.")
    elif job.error is not None:
        st.error(f"Training failed: {esc(job.error)}")
        with st.expander("Details"):
            st.code(job.error_trace, language=None)
    elif job.result is not None:
        r = job.result
        out = r.to_json()
        m1, m2, m3, m4 = st.columns(4)
        for col, split in ((m1, "val"), (m2, "test"), (m3, "train")):
            acc, ci, n = out[f"{split}_accuracy"], out[f"{split}_interval"], out[f"n_{split}"]
            col.metric(f"{split.capitalize()} accuracy", "—" if acc is None else f"{acc:.1%}",
                       help="This dataset has no test split." if acc is None else
                       f"95% interval (Wilson) on {n} images: {ci[0]:.1%}–{ci[1]:.1%}")
            if acc is not None:
                col.caption(f"95% CI {ci[0]:.1%}–{ci[1]:.1%} · n={n}")
        m4.metric("Time", f"{r.seconds:.1f} s")
        chosen = ", ".join(f"{k} = {v}" for k, v in r.chosen.items())
        st.caption(f"Saved as run #{r.run_id} in the ledger."
                   + (f" Chosen on the training split: {chosen}." if chosen else ""))
        if r.confusion is not None:
            mistakes(r, job.meta["ref"], job.meta["seed"], ds if job.meta["ref"] == choices.dataset
                     else None)
        if r.reliability:
            calibration(r, job.meta["cfg"])


def calibration(r, cfg) -> None:
    """The run's reliability diagram on val, its ECE and what its temperature did."""
    st.markdown("##### Do its probabilities mean what they say?")
    left, right = st.columns([1.5, 1], gap="large", vertical_alignment="center")
    with left:
        st.plotly_chart(widgets.present(reliability_figure({"val": r.reliability}, height=340)),
                        key="train.reliability", config={"displayModeBar": False})
    with right:
        st.metric("Val calibration error (ECE)", f"{r.val_ece:.3f}",
                  help="Expected calibration error: the val images grouped into 15 bins by the "
                       "top class's probability; the mean gap, weighted by images, between a "
                       "bin's confidence and its accuracy. 0 = perfectly calibrated.")
        t = r.temperature
        if cfg.mode == "feature-extraction" and cfg.head == "knn":
            st.caption("A kNN head's probabilities are vote shares of its nearest training "
                       "images (“4 of 5”); they are not rescaled.")
        elif t is None:
            st.caption("These are the network's own softmax probabilities (not rescaled).")
        elif t != 1:
            st.caption(f"The logits are divided by a **temperature of {t:.2f}**, fitted on "
                       "out-of-fold predictions inside the training images (val and test never "
                       f"seen): {'softer' if t > 1 else 'sharper'} probabilities, the same "
                       "predicted classes.")
        else:
            st.caption("A temperature fitted on the training images did not lower their "
                       "calibration error, so the probabilities are kept as trained (T = 1).")
        st.caption("Bars below the diagonal: the run is more sure than it is right. Hover a "
                   "bar for its number of images: a bin of two images says little.")


def thumb_caption(ds, i: int) -> str:
    """The image's file name, shortened in the middle to fit under a thumbnail; a machine
    name (a UUID or hash, as in many downloaded sets) becomes the image's number."""
    path = Path(ds.path(int(i)))
    if re.fullmatch(r"[0-9a-fA-F-]{16,}", path.stem):
        return f"image #{int(i)}"
    name = path.name
    return name if len(name) <= 16 else f"{name[:7]}…{name[-8:]}"


@workspace.fragment
def mistakes(r, ref: str, dseed: int, ds) -> None:
    """The confusion matrix beside the images of a cell (a click on the matrix picks it).
    ``ds``: the run's dataset when it is the chosen one (file names as captions)."""
    split = r.confusion_split
    idx, y_true, y_pred = r.predictions[split]
    classes = r.classes
    cells = off_diagonal_cells(r.confusion)
    options = [f"{t},{p}" for t, p, _ in cells] + [f"{t},{t}" for t in range(len(classes))]
    counts = {f"{t},{p}": c for t, p, c in cells}

    def cell_label(v: str) -> str:
        t, p = map(int, v.split(","))
        n = counts.get(v, int(r.confusion[t][p]))
        what = "correct" if t == p else f"predicted {classes[p]}"
        return f"true {classes[t]} → {what} ({n})"

    cell_key = f"{CELL}.{r.run_id}"  # one picker per run: no label left over from the last run
    if st.session_state.get(cell_key) not in options:
        st.session_state[cell_key] = options[0]

    def on_cell_click() -> None:
        sel = st.session_state.get(CONFUSION)
        pts = (sel or {}).get("selection", {}).get("points", []) if sel else []
        cells_trace = [pt for pt in pts if pt.get("curve_number") == 1]
        if cells_trace:  # point k of the cell trace is cell (k // n, k % n)
            t, p = divmod(int(cells_trace[0]["point_index"]), len(classes))
            if f"{t},{p}" in options:
                st.session_state[cell_key] = f"{t},{p}"

    left, right = st.columns([1, 1], gap="large")
    with left:
        st.plotly_chart(widgets.present(confusion_figure(r.confusion, classes, split=split)),
                        key=CONFUSION,
                        on_select=on_cell_click, selection_mode="points",
                        config={"displayModeBar": False})
    with right:
        if not cells:
            st.success(f"No mistakes on the {split} split.")
        choice = st.selectbox("Images of a cell", options, format_func=cell_label,
                              key=cell_key)
        t, p = map(int, choice.split(","))
        hits = cell_indices(idx, y_true, y_pred, t, p)
        shown = hits[:24]
        if len(shown):
            thumbs = [cache.thumbnail(ref, int(i), 112, dseed) for i in shown]
            names = [thumb_caption(ds, int(i)) if ds is not None else f"#{i}" for i in shown]
            widgets.image_grid(thumbs, names, columns=4)
            if len(hits) > len(shown):
                st.caption(f"… and {len(hits) - len(shown)} more.")
            if ds is not None and st.button(
                    f"Ring these {len(hits)} on the map", icon=nav.ICONS[nav.EMBEDDING],
                    key=f"train.cell_map.{r.run_id}",
                    help="Open the Embedding space with this cell's images selected"):
                state.set("selection", [int(i) for i in hits], url=False)
                st.switch_page(nav.EMBEDDING)
        else:
            st.caption("No images in this cell.")


# ----------------------------------------------------------------------------- the ladder


def ladder(choices: Choices, busy: bool, was_running: bool) -> None:
    """The ladder preset: start it, watch it, show its table and a link to Compare.
    ``busy``: a job runs (the button is off); ``was_running``: the ladder ran when the page
    started drawing."""
    try:
        from tlviz.ladder import run_ladder
    except ImportError:
        st.info("The ladder preset needs `tlviz.ladder`, which is not installed in this version.")
        return
    if st.button("Run the ladder", disabled=busy, key="train.ladder") and workspace.writable("train"):
        ref, backbone, led = choices.dataset, choices.backbone, cache.ledger()

        def ladder_work(j: jobs.Job):
            return run_ladder(ref, backbone=backbone, ledger=led,
                              progress=j.on_progress, should_stop=j.should_stop)

        jobs.start("ladder", f"ladder · {ref} · {backbone}", ladder_work)
        jobs.forget("train")
        st.rerun()
    job = jobs.get("ladder")
    if job is None:
        return
    jobs.watch(job, was_running, lambda j, n: None)
    if job.running:
        return
    from tlviz.train import Cancelled

    if isinstance(job.error, Cancelled):
        st.warning("Ladder stopped; the finished runs are in the ledger.")
    elif job.error is not None:
        st.error(f"The ladder failed: {esc(job.error)}")
    elif job.result is not None:
        res = job.result
        if res.cancelled:
            st.warning("Ladder stopped; the rungs finished so far are below.")
        st.plotly_chart(widgets.present(ladder_figure(res.table)), config={"displayModeBar": False})
        from tlviz.metrics import accuracy_text

        t = res.table
        shown = t[["step", "seconds_mean", "n_seeds", "run_ids"]].assign(
            val=[accuracy_text(m, n, s) for m, n, s in zip(t["val_mean"], t["n_val"], t["val_std"])],
            test=[accuracy_text(m, n) for m, n in zip(t["test_mean"], t["n_test"])])
        st.dataframe(shown[["step", "val", "test", "seconds_mean", "n_seeds", "run_ids"]],
                     hide_index=True, width="stretch", column_config={
            "val": st.column_config.TextColumn(
                "val mean ± std (95% CI)", help="Mean val accuracy over the seeds ± its spread "
                "(points), and the 95% Wilson interval of the mean on the val images"),
            "test": st.column_config.TextColumn("test mean (95% CI)"),
            "seconds_mean": st.column_config.NumberColumn("seconds", format="%.1f"),
            "n_seeds": st.column_config.NumberColumn("seeds", width="small"),
            "run_ids": st.column_config.ListColumn("runs")})
        ids = ",".join(str(i) for i in res.run_ids)
        if st.button("Compare these runs", key="train.ladder_compare", type="primary"):
            state.set("runs", ids.split(","), url=False)
            st.switch_page(nav.COMPARE, query_params={"runs": ids})
