"""Augmentation: Keras ImageDataGenerator-style random transforms on one image, as a grid
of augmented versions (redrawn with a seed) and as the equivalent torchvision code."""

from __future__ import annotations

import streamlit as st

from tlviz.augment import FILL_MODES, AugmentConfig, preview, to_code
from ui import sidebar, state, widgets
from ui.text import esc

SIZE = 224  # like Keras' target_size: every image is shown (and transformed) at 224 x 224
BOOK = AugmentConfig.book()
# (state name, config field, label, max, step, help)
SLIDERS = [
    ("aug_rotation", "rotation_range", "Rotation range (°)", 180.0, 5.0, "random angle in ±r degrees"),
    ("aug_wshift", "width_shift_range", "Width shift", 0.5, 0.05, "horizontal shift, fraction of width"),
    ("aug_hshift", "height_shift_range", "Height shift", 0.5, 0.05, "vertical shift, fraction of height"),
    ("aug_shear", "shear_range", "Shear (°)", 45.0, 0.5, "shear angle in ±s degrees"),
    ("aug_zoom", "zoom_range", "Zoom", 0.9, 0.05, "zoom factor in [1-z, 1+z] (above 1 zooms out)"),
    ("aug_bright", "brightness_range", "Brightness", 0.9, 0.05, "brightness factor in [1-b, 1+b]"),
    ("aug_contrast", "contrast_range", "Contrast", 0.9, 0.05, "contrast factor in [1-c, 1+c]"),
]
FLAGS = [("aug_hflip", "horizontal_flip", "Horizontal flip"),
         ("aug_vflip", "vertical_flip", "Vertical flip")]


def _preset(cfg: AugmentConfig) -> None:
    """Button callback: put every control to ``cfg``'s values."""
    for name, fld, *_ in SLIDERS + FLAGS:
        state.set(name, getattr(cfg, fld), default=getattr(BOOK, fld))
    state.set("aug_fill", cfg.fill_mode, default=BOOK.fill_mode)
    state.set("aug_cval", cfg.cval, default=BOOK.cval)


def _redraw() -> None:
    state.set("aug_seed", state.get("aug_seed", 0) + 1, default=0)


choices = sidebar.choices()
st.title("Augmentation")
st.caption("Random transforms make each epoch see slightly different images — the controls of "
           "Keras' ImageDataGenerator used in *Deep Learning with Python*.")
ds = widgets.dataset_or_stop(choices)
widgets.showing(choices, backbone=False)

controls, view = st.columns([1, 2.5], gap="large")
with controls:
    b1, b2 = st.columns(2)
    b1.button("Book", on_click=_preset, args=(BOOK,), key="aug_book", width="stretch",
              help="The book's generator: rotation 40°, shifts 0.2, "
              "shear 0.2 rad, zoom 0.2, horizontal flip")
    b2.button("None", on_click=_preset, args=(AugmentConfig.none(),), key="aug_none",
              width="stretch", help="No augmentation at all")
    values: dict = {}
    for name, fld, label, hi, step, help_ in SLIDERS:
        if choices.presenter and fld in ("brightness_range", "contrast_range"):
            values[fld] = state.get(name, getattr(BOOK, fld), bounds=(0.0, hi))
            continue
        values[fld] = st.slider(label, 0.0, hi, step=step, help=help_,
                                **state.widget(name, float(getattr(BOOK, fld)), bounds=(0.0, hi)))
    f1, f2 = st.columns(2)
    for col, (name, fld, label) in zip((f1, f2), FLAGS):
        values[fld] = col.checkbox(label, **state.widget(name, getattr(BOOK, fld)))
    if choices.presenter:
        values["fill_mode"] = state.get("aug_fill", BOOK.fill_mode, FILL_MODES)
        values["cval"] = state.get("aug_cval", BOOK.cval, bounds=(0.0, 1.0))
    else:
        values["fill_mode"] = st.selectbox(
            "Fill mode", FILL_MODES, help="how the corners uncovered by a rotation or shift "
            "are filled", **state.widget("aug_fill", BOOK.fill_mode, FILL_MODES))
        values["cval"] = st.slider("Fill value (constant mode)", 0.0, 1.0, step=0.05,
                                   disabled=values["fill_mode"] != "constant",
                                   **state.widget("aug_cval", BOOK.cval, bounds=(0.0, 1.0)))
    counts = [4, 8, 12, 16, 24]
    n = 12 if choices.presenter else st.select_slider(
        "Augmented versions", counts, **state.widget("aug_n", 12, counts))

try:
    cfg = AugmentConfig(**values)
except ValueError as e:  # a hand-edited link can carry an out-of-range value
    st.error(f"Invalid augmentation setting: {esc(e)}. Press *Book preset* to reset.")
    st.stop()
state.set("augment", cfg.to_dict(), url=False)  # the Train page can reuse it

with view:
    split = "train" if "train" in ds.split_names else None
    pool = ds.indices(split)
    classes = [c for k, c in enumerate(ds.classes) if (ds.labels[pool] == k).any()]
    thumb, c1, c2, c3 = st.columns([0.8, 1.7, 1.1, 1.1], vertical_alignment="bottom")
    cls = c1.selectbox("Image of class", classes, **state.widget("aug_class", classes[0], classes))
    in_class = pool[ds.labels[pool] == ds.classes.index(cls)]
    pick = state.get("aug_pick", 0) % len(in_class)
    if c2.button("Next image", key="aug_another", width="stretch"):
        pick = (pick + 1) % len(in_class)
        state.set("aug_pick", pick, default=0)
    c3.button("Redraw", on_click=_redraw, key="aug_redraw",
              width="stretch", help="new random draws (the seed is in the link)")
    seed = state.sync("aug_seed", 0)
    index = int(in_class[pick])
    try:
        original = ds.load(index)
    except Exception as e:  # noqa: BLE001 - unreadable file: say which
        st.error(f"Cannot read {esc(widgets.file_label(ds, index))}: {esc(e)}")
        st.stop()
    images = preview(original, cfg, n=n, seed=seed, size=SIZE)
    thumb.image(original.resize((SIZE, SIZE)), caption="original", width="stretch")
    st.image(images, width=136)
    st.caption(f"{esc(widgets.file_label(ds, index))} · seed {seed}"
               + (" · identity: augmentation is off" if cfg.is_identity else ""))
    st.markdown("**The same transform in torchvision**")
    st.code(to_code(cfg, size=SIZE), language="python")
