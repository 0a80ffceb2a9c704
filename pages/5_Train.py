"""Train: a head on the frozen backbone (or another mode), live curves, results, the ladder.

Training runs in a background job (``ui/jobs.py``); the pieces are in ``ui/train_sections.py``.
"""

from __future__ import annotations

import streamlit as st

from tlviz.heads import HEAD_HELP
from ui import jobs, sidebar, state, widgets, workspace
from ui import train_sections as sections
from ui.text import esc

choices = sidebar.choices()
st.title("Train")
st.caption("Choose a head, watch accuracy and loss on train (dashed) and val (solid), then see "
           "what it gets wrong. Every run is saved to the ledger: compare runs on the Compare page.")
ds = widgets.dataset_or_stop(choices)
widgets.showing(choices)
advanced = not choices.presenter
train_running, ladder_running = sections.running("train"), sections.running("ladder")
busy = train_running or ladder_running
left_out = sections.what_if(choices)
viewing = not workspace.writable("train")  # a shared view: a note, and the buttons off

c1, c2, c3 = st.columns([1, 1.1, 1.1], gap="large")
with c1:
    mode_list = sections.modes()
    mode = st.selectbox("Training mode", mode_list, help="\n".join(
        f"- **{m}**: {sections.MODE_HELP.get(m, '')}" for m in mode_list),
        **state.widget("mode", "feature-extraction", mode_list))
    st.caption(sections.MODE_HELP.get(mode, ""))
    aug_on = st.toggle("Augmentation", help="Train on randomly transformed copies of the "
                       "training images too.", **state.widget("train_aug", False))
    aug_cfg, aug_from = sections.current_augment()
    if aug_on:
        st.caption(f"Using {aug_from}." + (" Two augmented copies of each training image "
                   "are embedded (slower)." if mode == "feature-extraction" else ""))
    b1, b2 = st.columns(2, gap="small")
    start = b1.button("Train", type="primary", disabled=busy or viewing, key="train.start", width="stretch",
                      help="Start training with these settings")
    b2.button("Stop", disabled=not busy, key="train.stop", width="stretch",
              on_click=sections.stop_all)
extra: dict = {}
with c3:
    if mode == "feature-extraction":
        head = state.get("head", "logistic", list(HEAD_HELP))
        params, epochs = sections.head_params(head, advanced)
    else:
        head, params = "logistic", {}
        extra, epochs = sections.mode_options(mode, advanced)
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
    from tlviz.train import TrainConfig

    sections.start_training(TrainConfig(
        dataset=choices.dataset, backbone=choices.backbone, head=head, head_params=params,
        mode=mode, epochs=epochs, seed=seed, extra=extra, exclude=left_out,
        name=f"what-if: without {len(left_out)} image(s)" if left_out else None,
        augment=aug_cfg.to_dict() if aug_on else {}), ds, choices)  # {}: explicitly off

job = jobs.get("train")
if job is not None:
    st.markdown(f"##### Run: {esc(job.name)}")
    jobs.watch(job, train_running, sections.live_curves)
    if not job.running:
        sections.outcome(job, ds, choices)

st.divider()
st.subheader("The ladder")
st.caption("The whole story in one click, each rung with three seeds on the current dataset "
           "and backbone: raw pixels → small CNN from scratch (± augmentation) → frozen "
           "backbone + logistic head → fine-tuning the last block. About ten minutes for a few "
           "hundred images on a laptop CPU; Stop keeps the rungs already done.")
sections.ladder(choices, busy or viewing, ladder_running)
