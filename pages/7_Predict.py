"""Predict: one image (upload or webcam) through a trained run, class probabilities as bars."""

from __future__ import annotations

import streamlit as st

from tlviz.curves import proba_figure
from tlviz.metrics import accuracy_text
from ui import cache, sidebar, state, widgets
from ui.text import esc

choices = sidebar.choices()

IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"]


st.title("Predict")
st.caption("Show a trained run a new picture — the book's “is this a cat?” check. "
           "The run's backbone turns the image into features, its head gives the probabilities.")

runs_from = widgets.run_source()
rows = widgets.runs_or_stop("No finished runs yet. Train one on the Train page, then come back.",
                            status="completed", source=runs_from)
ids = list(rows)
run_key = st.selectbox("Run", ids, format_func=lambda i: widgets.run_label(rows[i]),
                       help="Newest first. Train more runs on the Train page.",
                       **state.widget("run", ids[0], ids))
row = rows[run_key]

left, right = st.columns([1, 1.3], gap="large")
with left:
    source = st.segmented_control("Image from", ["Upload", "Webcam"], default="Upload",
                                  key="predict.source")
    data, name = None, None
    if source == "Webcam":
        shot = st.camera_input("Take a photo", key="predict.camera")
        if shot is not None:
            data, name = shot.getvalue(), "webcam photo"
    else:
        up = st.file_uploader("Upload an image", type=IMAGE_TYPES, key="predict.upload",
                              help="JPEG, PNG, GIF, BMP, WebP or TIFF.")
        if up is not None:
            data, name = up.getvalue(), up.name

if data is None:
    with right:
        st.info("Upload an image (or take a webcam photo) to see what the run thinks it is.")
    st.stop()

from tlviz.safeio import BadImage, open_image  # noqa: E402 - only once there is an image

try:
    image = open_image(data)
except BadImage as e:
    with right:
        st.error(f"Cannot use this image: {esc(e)}. Try a JPEG or PNG photo.")
    st.stop()

with left:
    st.image(image, caption=name, width=300)

from tlviz.backbones import WeightsUnavailable  # noqa: E402

with right:
    try:
        with st.spinner(f"Loading run #{run_key} and predicting…"):
            model = cache.predictor(int(run_key), runs_from)
            proba = model.predict_proba([image])[0]
    except WeightsUnavailable as e:
        st.error(f"The backbone of run #{run_key} (**{esc(row['backbone'])}**) has no weights "
                 f"on this machine: {esc(e)}")
        st.stop()
    except (ValueError, KeyError) as e:
        st.error(f"Run #{run_key} cannot predict: {esc(e)}. Pick another run.")
        st.stop()
    classes = list(model.classes)
    best = int(proba.argmax())
    votes = getattr(model, "votes", None)  # a kNN head counts neighbours: say so, not "% sure"
    k = votes() if votes else None
    st.metric("Prediction", classes[best],
              f"{round(proba[best] * k)} of {k} nearest training images" if k else
              f"{proba[best]:.1%} sure", delta_color="off", delta_arrow="off",
              help="A kNN head's 'probability' is the share of its k most similar training "
                   "images in each class." if k else None)
    ece, t = row.get("val_ece"), row.get("temperature")
    if ece is not None and ece == ece:
        st.caption(f"Validation: right on {accuracy_text(row['val_accuracy'], row['n_val'])} "
                   f"of {int(row['n_val'])} images (95% interval in brackets); its confidence was "
                   f"off by {100 * ece:.1f} points on average (ECE)"
                   + (f", after dividing its logits by a temperature of {t:.2f} fitted on the "
                      "training images." if t is not None and t == t and t != 1 else "."))
    st.plotly_chart(widgets.present(proba_figure(proba, classes, top=10)), key="predict.proba",
                    config={"displayModeBar": False})
    if len(classes) > 10:
        st.caption(f"The 10 most likely of {len(classes)} classes.")
