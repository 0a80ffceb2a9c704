"""Home: transfer learning in one screen (best run per step of the story), and what works
offline right now."""

from __future__ import annotations

import streamlit as st

from tlviz.metrics import accuracy_interval
from ui import cache, sidebar, widgets
from ui.text import esc

STEPS = [
    ("1 · Raw pixels", "Pixels straight into a classifier, a few hundred images: it memorises "
     "the training set and barely generalises."),
    ("2 · Frozen backbone + simple head", "An ImageNet network turns each image into features; "
     "a kNN, logistic or small MLP head on them works with a few dozen images per class."),
    ("3 · Fine-tune the last block", "Unfreeze the backbone's last block, train it gently with "
     "the head and augmentation: a few points more."),
]


def _step_of(row) -> int:
    """Which step of the story a ledger run illustrates (0, 1 or 2)."""
    if row["mode"] == "fine-tune":
        return 2
    if row["backbone"] == "pixels" or row["mode"] in ("pixels-mlp", "scratch-cnn"):
        return 0
    return 1


def _best_per_step(dataset: str) -> list[tuple[float, str, int] | None]:
    """Best val accuracy per step among completed runs on ``dataset``, with its label and
    number of val images (None: no run yet)."""
    try:
        runs = cache.ledger().list_runs(status="completed")
    except Exception:  # noqa: BLE001 - an unreadable ledger must not break the home page
        return [None, None, None]
    runs = runs[(runs["dataset"] == dataset) & runs["val_accuracy"].notna()]
    best: list[tuple[float, str, int] | None] = [None, None, None]
    for _, r in runs.iterrows():
        k = _step_of(r)
        label = f"{r['backbone']} + {r['head']}" if r["mode"] == "feature-extraction" else r["mode"]
        if best[k] is None or r["val_accuracy"] > best[k][0]:
            n = r["n_val"]
            best[k] = (float(r["val_accuracy"]), label, 0 if n != n else int(n))
    return best


def _run_story(choices: sidebar.Choices, backbone: str) -> None:
    """Train pixels + logistic and ``backbone`` + logistic (both runs go to the ledger)."""
    from tlviz.train import TrainConfig, train

    ds = widgets.dataset_or_stop(choices)
    for bb in dict.fromkeys(["pixels", backbone]):
        with widgets.progress(f"{bb} + logistic") as cb:
            train(TrainConfig(dataset=choices.dataset, backbone=bb, head="logistic",
                              seed=choices.seed), dataset=ds, ledger=cache.ledger(), progress=cb)


choices = sidebar.choices()
st.title("Transfer learning, seen")
st.markdown("A network trained on millions of photos has already learned to *see*. Borrow its "
            "eyes, and a handful of your own images per class is enough to build a classifier.")

best = _best_per_step(choices.dataset)
st.caption(f"Best validation accuracy on **{esc(choices.dataset)}** so far, from the run ledger.")
for col, (title, text), result in zip(st.columns(3, gap="medium", border=True), STEPS, best):
    with col:
        st.markdown(f"#### {title}")
        if result is None:
            st.metric("val accuracy", "—",
                      help="No run yet on this dataset: train one (button below or Train page).")
        else:
            lo, hi = accuracy_interval(result[0], result[2])
            st.metric("val accuracy", f"{result[0]:.1%}",
                      help=f"best completed run: {result[1]}")
            if lo == lo:
                st.caption(f"95% CI {lo:.1%}–{hi:.1%} · n={result[2]}")
        st.write(text)

story_backbone = choices.backbone if choices.backbone != "pixels" else "mobilenet_v2"
left, right = st.columns([1, 1.6], vertical_alignment="center")
if left.button("Run steps 1 and 2 now", type="primary", key="run_story",
               icon=":material/play_arrow:",
               help=f"Trains pixels + logistic and {story_backbone} + logistic on "
                    f"{choices.dataset}; both runs go to the ledger (see Compare)."):
    try:
        _run_story(choices, story_backbone)
        st.rerun()
    except Exception as e:  # noqa: BLE001 - a message, never a traceback
        st.error(f"Could not train on {esc(choices.dataset)} ({type(e).__name__}): {esc(e)}")
right.caption("Step 3 (fine-tuning) and the whole ladder, several seeds each, are on the Train page.")

st.subheader("Available offline right now")
# one table above the other, each the page's width: names and descriptions are not cut
config = {"here": st.column_config.TextColumn(width="small"),
          "dataset": st.column_config.TextColumn(width="medium"),
          "backbone": st.column_config.TextColumn(width="medium"),
          "about": st.column_config.TextColumn(width="large")}
st.dataframe([{"dataset": d.name, "here": "✓" if d.ok else "—",
               "about": d.description if d.ok else d.why.split(". ")[0]}
              for d in cache.datasets()], hide_index=True, width="stretch", column_config=config)
st.dataframe([{"backbone": b.name, "here": "✓" if b.ok else "—",
               "about": b.description if b.ok else b.why.split(":")[0]}
              for b in cache.backbones()], hide_index=True, width="stretch", column_config=config)
