"""AppTest tests of the Train, Compare and Predict pages against the real tlviz (digits, pixels).

Each test gets its own TLVIZ_HOME, so its ledger starts empty.
"""

from __future__ import annotations

import io
from pathlib import Path

import fixtures_bad_inputs as bad
import numpy as np
import pytest
from conftest import open_page
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlviz.runs import Ledger

ROOT = Path(__file__).resolve().parents[1]
TRAIN, COMPARE, PREDICT = "pages/5_Train.py", "pages/6_Compare.py", "pages/7_Predict.py"


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def finish_jobs(at: AppTest) -> AppTest:
    """Wait for the session's training job, then rerun: what the page's watcher (a fragment
    rerun every second in the browser) does when the job ends."""
    for key in ("job.train", "job.ladder"):
        if key in at.session_state:
            assert at.session_state[key].wait(300), f"{key} still running"
    at.run()
    assert not at.exception, at.exception
    return at


def train_run(at: AppTest, head: str = "logistic", **widgets) -> AppTest:
    at.radio(key="w.head").set_value(head).run()
    for key, value in widgets.items():
        sliders = [w for w in [*at.slider, *at.select_slider] if w.key == f"w.{key}"]
        sliders[0].set_value(value).run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    return finish_jobs(at)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def cell_picker(at):
    return next(s for s in at.selectbox if s.label == "Images of a cell")


def test_train_page_trains_a_head_and_records_the_run(fresh_home):
    at = open_page(TRAIN)
    assert "feature-extraction" in at.selectbox(key="w.mode").options
    assert not at.button(key="train.ladder").disabled  # tlviz.ladder is installed
    train_run(at, "knn", knn_k=3)
    val = float(metric(at, "Val accuracy").rstrip("%")) / 100
    assert val > 0.8  # digits on raw pixels with 3-NN is easy
    runs = Ledger().list_runs()
    assert len(runs) == 1 and runs.loc[0, "head"] == "knn"
    assert runs.loc[0, "val_accuracy"] == pytest.approx(val, abs=0.0006)
    assert Ledger().get_run(int(runs.loc[0, "id"]))["config"]["head_params"]["n_neighbors"] == 3
    # the mistakes of the confusion matrix, biggest cell first, with their thumbnails
    cell = cell_picker(at)
    assert cell.index == 0 and "predicted" in cell.options[0]
    t, p = map(int, cell.value.split(","))
    assert t != p
    assert len(at.get("image")) >= 1
    # calibration: the val ECE, a reliability diagram, and no temperature for vote shares
    assert 0 <= float(metric(at, "Val calibration error (ECE)")) <= 1
    assert any("vote shares" in c.value for c in at.caption)
    assert "perfectly calibrated" in at.get("plotly_chart")[-1].proto.spec


def test_train_page_mlp_live_curve_history_lands_in_the_ledger():
    at = open_page(TRAIN)
    train_run(at, "mlp", mlp_hidden=32, epochs=3)
    run = Ledger().list_runs().iloc[0]
    hist = Ledger().history(int(run["id"]))
    assert list(hist["epoch"]) == [1, 2, 3]
    assert hist["val_acc"].notna().all() and hist["train_loss"].notna().all()
    assert len(at.get("plotly_chart")) >= 2  # live curves + confusion matrix


def test_train_page_offers_the_finetune_modes_and_trains_pixels_mlp():
    at = open_page(TRAIN)
    modes = at.selectbox(key="w.mode").options
    assert {"feature-extraction", "pixels-mlp", "scratch-cnn", "fine-tune"} <= set(modes)
    at.selectbox(key="w.mode").set_value("pixels-mlp").run()
    at.slider(key="w.pixels-mlp_epochs").set_value(2).run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    finish_jobs(at)
    run = Ledger().list_runs().iloc[0]
    assert (run["mode"], run["status"], run["epochs"]) == ("pixels-mlp", "completed", 2)
    assert list(Ledger().history(int(run["id"]))["epoch"]) == [1, 2]
    assert metric(at, "Val accuracy").endswith("%")


def test_train_page_picking_a_correct_cell_shows_its_images():
    at = open_page(TRAIN)
    train_run(at, "logistic")
    cell = cell_picker(at)
    correct = next(i for i, o in enumerate(cell.options) if "correct" in o)
    cell.select_index(correct).run()
    t, p = map(int, cell_picker(at).value.split(","))
    assert t == p
    assert not at.exception
    assert len(at.get("image")) >= 1
    # a second run: the picker's counts are the new run's, not the last one's
    first = Ledger().list_runs().iloc[0]
    train_run(at, "knn", knn_k=1)
    run = Ledger().get_run(int(Ledger().list_runs().iloc[0]["id"]))
    assert run["id"] != first["id"]
    label = cell_picker(at).options[cell_picker(at).index]
    t, p = map(int, cell_picker(at).value.split(","))
    assert label.endswith(f"({run['confusion'][t][p]})"), (label, run["confusion"])


def test_train_page_shows_a_running_job_and_stop_cancels_it():
    at = open_page(TRAIN)
    at.radio(key="w.head").set_value("mlp").run()
    at.select_slider(key="w.mlp_hidden").set_value(512).run()
    at.slider(key="w.epochs").set_value(100).run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    # while it runs: Train off, Stop on, a progress bar (the watcher fragment)
    assert at.button(key="train.start").disabled and not at.button(key="train.stop").disabled
    assert at.get("progress")
    at.button(key="train.stop").click().run()
    finish_jobs(at)
    assert Ledger().list_runs().loc[0, "status"] == "cancelled"
    assert any("Training stopped" in w.value for w in at.warning)
    assert not at.button(key="train.start").disabled and at.button(key="train.stop").disabled


def test_stop_cancels_a_running_training_job():
    """ui.jobs: Stop sets the event, tlviz's should_stop sees it, the run becomes cancelled."""
    def script():
        import streamlit as st

        from tlviz.train import Cancelled, TrainConfig, train
        from ui import jobs

        cfg = TrainConfig(dataset="digits", backbone="pixels", head="mlp",
                          head_params={"hidden": 8}, epochs=500)

        def work(j):
            def on_epoch(rec):
                j.on_epoch(rec)
                if rec["epoch"] == 2:
                    j.stop.set()  # what the Stop button's jobs.request_stop does
            return train(cfg, on_epoch=on_epoch, should_stop=j.should_stop)

        job = jobs.start("train", "t", work)
        job.wait(120)
        st.write(f"cancelled={isinstance(job.error, Cancelled)} epochs={len(job.records)}")

    at = AppTest.from_function(script, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == "cancelled=True epochs=2"
    assert Ledger().list_runs().loc[0, "status"] == "cancelled"


def test_finished_ladder_links_to_compare_with_its_runs():
    """The ladder's "Compare these runs" switches to the Compare page (st.switch_page with
    a page declared in app.py's navigation) with exactly its runs."""
    import pandas as pd

    from tlviz.ladder import LadderResult
    from tlviz.train import TrainConfig, train
    from ui.jobs import Job

    ids = [train(TrainConfig(dataset="digits", backbone="pixels", head=h)).run_id
           for h in ("knn", "logistic", "knn")]
    table = pd.DataFrame({"step": [1, 2], "mode": ["feature-extraction"] * 2,
                          "augment": [False, False], "val_mean": [0.9, 0.95],
                          "val_std": [0.01, 0.0], "test_mean": [0.9, 0.94],
                          "seconds_mean": [0.1, 0.2], "run_ids": [[ids[0]], [ids[1]]],
                          "n_val": [300, 300], "n_test": [200, 200], "n_seeds": [1, 1]})
    job = Job("ladder", result=LadderResult(table, pd.DataFrame({"run_id": ids[:2]})))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"dataset": "digits", "backbone": "pixels"})
    at.session_state["job.ladder"] = job  # what ui.jobs keeps once the ladder has run
    at.run()
    at.switch_page(TRAIN).run()
    assert not at.exception, at.exception
    shown = at.dataframe[-1].value  # accuracies with their 95% intervals on the val images
    assert list(shown["val"]) == ["90.0% ± 1.0 (86.1–92.9)", "95.0% ± 0.0 (91.9–96.9)"]
    at.button(key="train.ladder_compare").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare runs"
    assert sorted(at.multiselect(key="w.runs").value) == sorted(str(i) for i in ids[:2])


def test_compare_empty_ledger_says_what_to_do():
    at = open_page(COMPARE)
    assert "No runs yet" in at.info[0].value


def test_compare_overlays_runs_exports_and_deletes():
    at = open_page(TRAIN)
    train_run(at, "knn")
    train_run(at, "logistic")
    ids = [str(i) for i in Ledger().list_runs()["id"]]
    at.switch_page(COMPARE).run()
    assert not at.exception
    picked = at.multiselect(key="w.runs")
    assert sorted(picked.value) == sorted(ids)
    fig = at.get("plotly_chart")[0].proto.spec
    assert "#" + ids[0] in fig and "#" + ids[1] in fig
    table = at.dataframe[0].value
    assert len(table) == 2
    # accuracies with their 95% intervals, the val ECE and the temperature of the logistic run
    assert all("%" in v and "–" in v for v in table["val_text"])
    assert table["val_ece"].notna().all() and (table["t_text"] == "—").sum() == 1  # kNN: none
    assert "95% CI" in fig and "reliability" in at.expander[0].label
    # a link with ?runs= opens just those runs
    at2 = open_page(COMPARE, runs=ids[1])
    assert at2.multiselect(key="w.runs").value == [ids[1]]
    assert len(at2.dataframe[0].value) == 1
    # delete needs the confirmation tick
    assert at2.button(key="compare.delete").disabled
    at2.checkbox(key="compare.sure").check().run()
    at2.button(key="compare.delete").click().run()
    assert not at2.exception, at2.exception
    assert [str(i) for i in Ledger().list_runs()["id"]] == [ids[0]]


def test_predict_empty_ledger_says_what_to_do():
    at = open_page(PREDICT)
    assert "No finished runs" in at.info[0].value


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_predict_uploaded_image_shows_probabilities():
    from sklearn.datasets import load_digits

    at = open_page(TRAIN)
    train_run(at, "logistic")
    at.switch_page(PREDICT).run()
    assert not at.exception
    d = load_digits()
    k = int(np.flatnonzero(d.target == 7)[0])
    img = np.clip(d.images[k] * 255 / 16, 0, 255).astype(np.uint8)
    at.file_uploader(key="predict.upload").set_value(("seven.png", _png(img), "image/png")).run()
    assert not at.exception, at.exception
    assert metric(at, "Prediction") == "7"
    assert any("(ECE)" in c.value for c in at.caption)  # how far to trust its "% sure"
    bars = at.get("plotly_chart")[0].proto.spec
    assert '"orientation":"h"' in bars.replace(" ", "")


@pytest.mark.parametrize("make", [bad.make_truncated_png, bad.make_text_as_jpg,
                                  bad.make_zero_byte])
def test_predict_bad_upload_is_an_error_message(tmp_path, make):
    led = Ledger()
    rid = led.start_run({"dataset": "digits", "backbone": "pixels", "head": "knn"})
    led.finish_run(rid, val_accuracy=0.5)
    at = open_page(PREDICT)
    path = make(tmp_path)
    at.file_uploader(key="predict.upload").set_value((path.name, path.read_bytes(),
                                                      "image/png")).run()
    assert not at.exception, at.exception
    assert at.error and at.error[0].value.startswith("Cannot use this image:")


def test_predict_run_without_weights_is_an_error_message():
    led = Ledger()
    rid = led.start_run({"dataset": "digits", "backbone": "pixels", "head": "knn"})
    led.finish_run(rid, val_accuracy=0.5)  # completed, but no weights stored
    at = open_page(PREDICT)
    at.file_uploader(key="predict.upload").set_value(
        ("x.png", _png(np.zeros((8, 8), np.uint8)), "image/png")).run()
    assert not at.exception, at.exception
    assert "cannot predict" in at.error[0].value


def test_predict_with_a_knn_run_counts_neighbours_instead_of_percent_sure():
    from sklearn.datasets import load_digits

    at = open_page(TRAIN)
    train_run(at, "knn", knn_k=5)
    at.switch_page(PREDICT).run()
    d = load_digits()
    k = int(np.flatnonzero(d.target == 3)[0])
    img = np.clip(d.images[k] * 255 / 16, 0, 255).astype(np.uint8)
    at.file_uploader(key="predict.upload").set_value(("three.png", _png(img), "image/png")).run()
    assert not at.exception, at.exception
    m = next(m for m in at.metric if m.label == "Prediction")
    assert m.delta.endswith("of 5 nearest training images") and "sure" not in m.delta


def test_a_map_selection_becomes_a_what_if_run_that_compare_names():
    at = open_page(TRAIN)
    train_run(at, "logistic")
    from tlviz.data import load_dataset

    ds = load_dataset("digits")
    picked = [int(i) for i in ds.indices("train")[:7]]
    at.session_state["train.what_if"] = {"dataset": "digits", "indices": picked}
    at.run()
    assert any("What-if run" in i.value for i in at.info)
    train_run(at, "logistic")
    newest = Ledger().list_runs().iloc[0]
    run = Ledger().get_run(int(newest["id"]))
    assert run["config"]["exclude"] == sorted(picked) and newest["name"].startswith("what-if")
    assert "train.what_if" not in at.session_state  # one what-if run per pick
    compare = open_page(COMPARE)
    assert not compare.exception
    assert "(without 7 image(s))" in compare.get("plotly_chart")[0].proto.spec
