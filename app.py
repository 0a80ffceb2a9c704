"""tlviz dashboard — Home: transfer learning in one screen, and what works offline right now.

Run with ``streamlit run app.py``. Every ``pages/<n>_<Title>.py`` file is a page (drop one
in and it appears, ordered by its number); shared pieces are in ``ui/``, every computation
in ``tlviz``. Heavy modules (torch, umap) load lazily, on first use.

``st.navigation`` lists the pages so that Home is called "Home" rather than "app"; titles
and URLs follow Streamlit's file-name rule (``3_Embedding_space.py`` -> /Embedding_space).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import cache, sidebar, widgets
from ui.text import esc

PAGES = [  # (file, label, what it is for)
    ("pages/1_Data.py", "Data", "pick, download, upload or photograph a dataset"),
    ("pages/2_Augmentation.py", "Augmentation", "Keras-style random transforms, as a grid and as code"),
    ("pages/3_Embedding_space.py", "Embedding space", "UMAP of two backbones side by side"),
    ("pages/4_Explore.py", "Explore", "neighbours, selections, label problems"),
    ("pages/5_Train.py", "Train", "a head on frozen features, or fine-tuning, with live curves"),
    ("pages/6_Compare.py", "Compare", "overlay runs' curves, as in the book's closing chart"),
    ("pages/7_Predict.py", "Predict", "your own photo through a trained run"),
]
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


def _best_per_step(dataset: str) -> list[tuple[float, str] | None]:
    """Best val accuracy per step among completed runs on ``dataset`` (None: no run yet)."""
    try:
        runs = cache.ledger().list_runs(status="completed")
    except Exception:  # noqa: BLE001 - an unreadable ledger must not break the home page
        return [None, None, None]
    runs = runs[(runs["dataset"] == dataset) & runs["val_accuracy"].notna()]
    best: list[tuple[float, str] | None] = [None, None, None]
    for _, r in runs.iterrows():
        k = _step_of(r)
        label = f"{r['backbone']} + {r['head']}" if r["mode"] == "feature-extraction" else r["mode"]
        if best[k] is None or r["val_accuracy"] > best[k][0]:
            best[k] = (float(r["val_accuracy"]), label)
    return best


def _run_story(choices: sidebar.Choices, backbone: str) -> None:
    """Train pixels + logistic and backbone + logistic on ``dataset`` (both go to the ledger)."""
    from tlviz.train import TrainConfig, train

    ds = widgets.dataset_or_stop(choices)
    for bb in dict.fromkeys(["pixels", backbone]):
        with widgets.progress(f"{bb} + logistic") as cb:
            train(TrainConfig(dataset=choices.dataset, backbone=bb, head="logistic",
                              seed=choices.seed), dataset=ds, ledger=cache.ledger(), progress=cb)


def home() -> None:
    """The Home page."""
    choices = sidebar.render()
    st.title("Transfer learning, seen")
    st.markdown("A network trained on millions of photos has already learned to *see*. Borrow its "
                "eyes, and a handful of your own images per class is enough to build a classifier.")

    best = _best_per_step(choices.dataset)
    cols = st.columns(3, gap="medium", border=True)
    for col, (title, text), result in zip(cols, STEPS, best):
        with col:
            st.markdown(f"#### {title}")
            if result is None:
                st.metric(f"val accuracy on {esc(choices.dataset)}", "—",
                          help="No run yet on this dataset: train one (button below or Train page).")
            else:
                st.metric(f"val accuracy on {esc(choices.dataset)}", f"{result[0]:.1%}",
                          help=f"best completed run: {result[1]}")
            st.write(text)

    story_backbone = choices.backbone if choices.backbone != "pixels" else "mobilenet_v2"
    left, right = st.columns([1, 2])
    if left.button(f"Show steps 1 and 2 on {esc(choices.dataset)}", type="primary", key="run_story",
                   icon=":material/play_arrow:",
                   help=f"Trains pixels + logistic and {story_backbone} + logistic; both runs go to "
                        "the ledger (see Compare)."):
        try:
            _run_story(choices, story_backbone)
            st.rerun()
        except Exception as e:  # noqa: BLE001 - a message, never a traceback
            st.error(f"Could not train on {esc(choices.dataset)} ({type(e).__name__}): {esc(e)}")
    right.caption("Step 3 (fine-tuning) and the whole ladder, several seeds each, are on the Train page.")

    st.divider()
    st.subheader("Available offline right now")
    dcol, bcol = st.columns(2, gap="large")
    with dcol:
        rows = [{"dataset": d.name, "here": "✓" if d.ok else "—", "about": d.description if d.ok else d.why}
                for d in cache.datasets()]
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"here": st.column_config.TextColumn(width="small")})
    with bcol:
        rows = [{"backbone": b.name, "here": "✓" if b.ok else "—", "about": b.description if b.ok else b.why}
                for b in cache.backbones()]
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"here": st.column_config.TextColumn(width="small")})

    if not choices.presenter:
        st.subheader("Pages")
        root = Path(__file__).parent
        for file, label, what in PAGES:
            if (root / file).exists():
                st.page_link(file, label=f"**{label}** — {what}")


# Material icons ship with Streamlit (offline, no emoji font needed on the projector PC).
PAGE_ICONS = {"Data": ":material/folder_open:", "Augmentation": ":material/tune:",
              "Embedding_space": ":material/scatter_plot:", "Explore": ":material/travel_explore:",
              "Train": ":material/model_training:", "Compare": ":material/stacked_line_chart:",
              "Predict": ":material/image_search:"}


def _pages() -> list:
    """Home, then every file of pages/ in number order."""
    found = []
    for f in (Path(__file__).parent / "pages").glob("*.py"):
        num, _, name = f.stem.partition("_")
        order = int(num) if num.isdigit() else 10_000
        found.append((order, f.stem, f, name if num.isdigit() and name else f.stem))
    return [st.Page(home, title="Home", icon=":material/home:", default=True)] + [
        st.Page(str(f), icon=PAGE_ICONS.get(name)) for _, _, f, name in sorted(found)]


st.set_page_config(page_title="tlviz · transfer learning, seen", page_icon=":material/visibility:", layout="wide")
st.navigation(_pages()).run()
