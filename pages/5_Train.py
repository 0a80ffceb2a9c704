"""Train: a head on the frozen backbone (or another mode), live curves, results, the ladder."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tlviz.curves import (
    cell_indices,
    confusion_figure,
    curves_figure,
    ladder_figure,
    off_diagonal_cells,
)
from tlviz.heads import HEAD_HELP
from ui import cache, jobs, sidebar, state, widgets
from ui.text import esc

st.set_page_config(page_title="tlviz · Train", page_icon="🏋️", layout="wide")
choices = sidebar.render()

MODE_HELP = {
    "feature-extraction": "frozen backbone + a head on its features (fast: features are cached)",
    "pixels-mlp": "no backbone: a small network on the raw pixels (the baseline that fails)",
    "scratch-cnn": "a small CNN trained from scratch on these images only",
    "fine-tune": "backbone's last block unfrozen and trained with the head (slow on CPU)",
}
C_VALUES = [0.01, 0.1, 1.0, 10.0, 100.0]
HIDDEN = [0, 32, 64, 128, 256, 512]
COMPARE_PAGE = "pages/6_Compare.py"


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
    from tlviz.finetune import DEFAULTS

    d = DEFAULTS.get(mode, {})
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
        k = st.slider("Neighbours (k)", 1, 25, help="How many most-similar training images vote.",
                      **state.widget("knn_k", 5, bounds=(1, 25)))
        metric = "cosine"
        if advanced:
            metric = st.radio("Distance", ["cosine", "euclidean"], horizontal=True,
                              **state.widget("knn_metric", "cosine", ["cosine", "euclidean"]))
        return {"n_neighbors": int(k), "metric": metric}, None
    if head == "logistic":
        c = st.select_slider("Regularisation C", C_VALUES,
                             help="Small C: simpler boundary (more regularised).",
                             **state.widget("C", 1.0, C_VALUES))
        return {"C": float(c)}, None
    hidden = st.select_slider("Hidden units", HIDDEN, help="0 = no hidden layer (linear).",
                              **state.widget("mlp_hidden", 256, HIDDEN))
    epochs = st.slider("Epochs", 2, 100, **state.widget("epochs", 30, bounds=(2, 100)))
    return {"hidden": int(hidden)}, int(epochs)


def stop_all() -> None:
    for key in ("train", "ladder"):
        jobs.request_stop(key)


def short_label(cfg) -> str:
    return cfg.head if cfg.mode == "feature-extraction" else cfg.mode


def run_label(cfg) -> str:
    return f"{cfg.dataset} · {cfg.backbone} · {short_label(cfg)}"


def thumb_caption(ds, i: int) -> str:
    """The image's file name, shortened in the middle to fit under a thumbnail."""
    name = Path(ds.path(int(i))).name
    return name if len(name) <= 16 else f"{name[:7]}…{name[-8:]}"


# ----------------------------------------------------------------------------- page

st.title("Train")
st.caption("Choose a head, watch accuracy and loss on train (dashed) and val (solid), then see "
           "what it gets wrong. Every run is saved to the ledger: compare runs on the Compare page.")
ds = widgets.dataset_or_stop(choices)
advanced = not choices.presenter
job = jobs.get("train")
busy = job is not None and job.running
ladder_job = jobs.get("ladder")
busy = busy or (ladder_job is not None and ladder_job.running)

c1, c2, c3 = st.columns([1, 1.1, 1.1], gap="large")
with c1:
    mode_list = modes()
    mode = st.selectbox("Training mode", mode_list, help="\n".join(
        f"- **{m}**: {MODE_HELP.get(m, '')}" for m in mode_list),
        **state.widget("mode", "feature-extraction", mode_list))
    st.caption(MODE_HELP.get(mode, ""))
    aug_on = st.toggle("Augmentation", help="Train on randomly transformed copies of the "
                       "training images too.", **state.widget("train_aug", False))
    aug_cfg, aug_from = current_augment()
    if aug_on:
        st.caption(f"Using {aug_from}." + (" Two augmented copies of each training image "
                   "are embedded (slower)." if mode == "feature-extraction" else ""))
    b1, b2 = st.columns(2, gap="small")
    start = b1.button("Train", type="primary",
                      disabled=busy, key="train.start", width="stretch",
                      help="Start training with these settings")
    b2.button("Stop", disabled=not busy, key="train.stop",
              width="stretch", on_click=stop_all)
extra: dict = {}
with c3:
    if mode == "feature-extraction":
        head = state.get("head", "logistic", list(HEAD_HELP))
        params, epochs = head_params(head, advanced)
    else:
        head, params = "logistic", {}
        extra, epochs = mode_options(mode, advanced)
with c2:
    if mode == "feature-extraction":
        heads = list(HEAD_HELP)
        head = st.radio("Head", heads, horizontal=True,
                        **state.widget("head", "logistic", heads))
        st.caption(HEAD_HELP[head])
        if head == "mlp" and advanced:
            params["dropout"] = float(st.slider("Dropout", 0.0, 0.9, step=0.1,
                                                **state.widget("mlp_dropout", 0.6, bounds=(0.0, 0.9))))
    else:
        st.markdown(f"**{mode}** trains its own network; its settings are on the right.")
    seed = int(st.number_input("Run seed", 0, 10_000, **state.widget("train_seed", 0, bounds=(0, 10_000)))) \
        if advanced else int(state.get("train_seed", 0, bounds=(0, 10_000)))

if start:
    from tlviz.train import TrainConfig, train

    cfg = TrainConfig(dataset=choices.dataset, backbone=choices.backbone, head=head,
                      head_params=params, mode=mode, epochs=epochs, seed=seed, extra=extra,
                      augment=aug_cfg.to_dict() if aug_on else {})  # {}: explicitly off
    dataset, led = ds, cache.ledger()  # resolved here: the thread never calls streamlit

    def work(j: jobs.Job):
        return train(cfg, dataset=dataset, ledger=led, progress=j.on_progress,
                     on_epoch=j.on_epoch, should_stop=j.should_stop)

    jobs.start("train", run_label(cfg), work, cfg=cfg, ref=choices.dataset, seed=choices.seed)
    jobs.forget("ladder")
    st.rerun()  # redraw with Stop enabled

# ----------------------------------------------------------------------------- live + results

if job is not None:
    st.markdown(f"##### Run: {esc(job.name)}")
    status_slot, chart_slot = st.empty(), st.empty()
    draws = iter(range(1_000_000))

    def tick(j: jobs.Job) -> None:
        if j.running:
            done, total, msg = j.progress or (0, 0, "starting")
            epochs_txt = f" · epoch {len(j.records)}" if j.records else ""
            frac = min(1.0, done / total) if total else 0.0
            status_slot.progress(frac, text=f"{msg or 'training'}{epochs_txt} "
                                            f"· {j.seconds:.0f} s")
        else:
            status_slot.empty()

    def draw(j: jobs.Job) -> None:
        if j.records:
            label = short_label(j.meta["cfg"])
            chart_slot.plotly_chart(curves_figure({label: j.records}, height=340),
                                    key=f"train.live.{next(draws)}",
                                    config={"displayModeBar": False})

    jobs.watch(job, draw, tick)
    if busy:  # this run drew the controls as busy: redraw them now the job has ended
        st.rerun()
    from tlviz.backbones import WeightsUnavailable
    from tlviz.train import Cancelled

    if isinstance(job.error, Cancelled):
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
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Val accuracy", "—" if r.val_accuracy is None else f"{r.val_accuracy:.1%}")
        m2.metric("Test accuracy", "—" if r.test_accuracy is None else f"{r.test_accuracy:.1%}",
                  help=None if r.test_accuracy is not None else "This dataset has no test split.")
        m3.metric("Train accuracy", "—" if r.train_accuracy is None else f"{r.train_accuracy:.1%}")
        m4.metric("Time", f"{r.seconds:.1f} s")
        st.caption(f"Saved as run #{r.run_id} in the ledger.")
        if r.confusion is not None:
            split = r.confusion_split
            idx, y_true, y_pred = r.predictions[split]
            classes = r.classes
            cells = off_diagonal_cells(r.confusion)
            cell_key = "train.cell"
            options = [f"{t},{p}" for t, p, _ in cells] + [
                f"{t},{t}" for t in range(len(classes))]
            counts = {f"{t},{p}": c for t, p, c in cells}

            def cell_label(v: str) -> str:
                t, p = map(int, v.split(","))
                n = counts.get(v, int(r.confusion[t][p]))
                what = "correct" if t == p else f"predicted {classes[p]}"
                return f"true {classes[t]} → {what} ({n})"

            if st.session_state.get(cell_key) not in options:
                st.session_state[cell_key] = options[0]

            def on_cell_click() -> None:
                sel = st.session_state.get("train.confusion")
                pts = (sel or {}).get("selection", {}).get("points", []) if sel else []
                cells_trace = [pt for pt in pts if pt.get("curve_number") == 1]
                if cells_trace:  # point k of the cell trace is cell (k // n, k % n)
                    t, p = divmod(int(cells_trace[0]["point_index"]), len(classes))
                    if f"{t},{p}" in options:
                        st.session_state[cell_key] = f"{t},{p}"

            left, right = st.columns([1, 1], gap="large")
            with left:
                st.plotly_chart(confusion_figure(r.confusion, classes, split=split),
                                key="train.confusion", on_select=on_cell_click,
                                selection_mode="points", config={"displayModeBar": False})
            with right:
                if not cells:
                    st.success(f"No mistakes on the {split} split.")
                choice = st.selectbox("Images of a cell", options, format_func=cell_label,
                                      key=cell_key)
                t, p = map(int, choice.split(","))
                hits = cell_indices(idx, y_true, y_pred, t, p)
                ref, dseed = job.meta["ref"], job.meta["seed"]
                shown = hits[:24]
                if len(shown):
                    thumbs = [cache.thumbnail(ref, int(i), 112, dseed) for i in shown]
                    names = [thumb_caption(ds, int(i)) if ref == choices.dataset
                             else f"#{i}" for i in shown]
                    widgets.image_grid(thumbs, names, columns=4)
                    if len(hits) > len(shown):
                        st.caption(f"… and {len(hits) - len(shown)} more.")
                else:
                    st.caption("No images in this cell.")

# ----------------------------------------------------------------------------- the ladder

st.divider()
st.subheader("The ladder")
st.caption("The whole story in one click, each rung with three seeds on the current dataset "
           "and backbone: raw pixels → small CNN from scratch (± augmentation) → frozen "
           "backbone + logistic head → fine-tuning the last block. About ten minutes for a few "
           "hundred images on a laptop CPU; Stop keeps the rungs already done.")
try:
    from tlviz.ladder import run_ladder
except ImportError:
    run_ladder = None
    st.info("The ladder preset needs `tlviz.ladder`, which is not installed in this version.")

if run_ladder is not None:
    if st.button("Run the ladder", disabled=busy, key="train.ladder"):
        ref, backbone, led = choices.dataset, choices.backbone, cache.ledger()

        def ladder_work(j: jobs.Job):
            return run_ladder(ref, backbone=backbone, ledger=led,
                              progress=j.on_progress, should_stop=j.should_stop)

        jobs.start("ladder", f"ladder · {ref} · {backbone}", ladder_work)
        jobs.forget("train")
        st.rerun()
    if ladder_job is not None:
        slot = st.empty()

        def tick_ladder(j: jobs.Job) -> None:
            done, total, msg = j.progress or (0, 0, "starting")
            if j.running:
                slot.progress(min(1.0, done / total) if total else 0.0,
                              text=f"{msg} · {j.seconds:.0f} s")
            else:
                slot.empty()

        jobs.watch(ladder_job, lambda j: None, tick_ladder)
        if busy:
            st.rerun()
        from tlviz.train import Cancelled

        if isinstance(ladder_job.error, Cancelled):
            st.warning("Ladder stopped; the finished runs are in the ledger.")
        elif ladder_job.error is not None:
            st.error(f"The ladder failed: {esc(ladder_job.error)}")
        elif ladder_job.result is not None:
            res = ladder_job.result
            if res.cancelled:
                st.warning("Ladder stopped; the rungs finished so far are below.")
            st.plotly_chart(ladder_figure(res.table), config={"displayModeBar": False})
            st.dataframe(res.table, hide_index=True, width="stretch", column_config={
                "val_mean": st.column_config.NumberColumn("val mean", format="percent"),
                "val_std": st.column_config.NumberColumn("val std", format="percent"),
                "test_mean": st.column_config.NumberColumn("test mean", format="percent"),
                "seconds_mean": st.column_config.NumberColumn("seconds", format="%.1f"),
                "run_ids": st.column_config.ListColumn("runs")})
            ids = ",".join(str(i) for i in res.run_ids)
            if st.button("Compare these runs", key="train.ladder_compare", type="primary"):
                state.set("runs", ids.split(","), url=False)
                st.switch_page(COMPARE_PAGE, query_params={"runs": ids})
