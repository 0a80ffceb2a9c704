"""Classroom mode in the dashboard (AppTest, real tlviz): each session its own workspace.

Several AppTest sessions stand for several browsers on one server: what one uploads or
trains is never listed, opened by link, predicted with or deleted by another; a shared
view opens read-only; "Delete my data now" removes it all.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import open_page
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlviz import workspaces
from tlviz.errors import BadInput, UnknownName
from tlviz.runs import Ledger

ROOT = Path(__file__).resolve().parents[1]
DATA, EXPLORE, TRAIN = "pages/1_Data.py", "pages/4_Explore.py", "pages/5_Train.py"
COMPARE, PREDICT = "pages/6_Compare.py", "pages/7_Predict.py"
SECRET = ("quokka-7f3e1a", "axolotl-c94b2d")  # class names no other session may ever see


@pytest.fixture(autouse=True)
def classroom(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TLVIZ_MODE", "classroom")
    return tmp_path / "home"


def own(at: AppTest) -> workspaces.Workspace:
    return workspaces.open_token(at.session_state["ws.token"])


def text_of(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success",
                                  "title", "header", "subheader", "text", "code")
             for e in getattr(at, kind, [])]
    parts += [str(o) for s in at.selectbox for o in s.options]
    parts += [str(o) for s in at.multiselect for o in s.options]
    return "\n".join(str(p) for p in parts)


def zip_bytes(classes=SECRET, n: int = 6) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, c in enumerate(classes):
            for k in range(n):
                im = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * k, 120 * i, 90)).save(im, format="PNG")
                z.writestr(f"{c}/{k}.png", im.getvalue())
    return buf.getvalue()


def upload(at: AppTest, name: str = "animals.zip", data: bytes | None = None) -> str:
    at.switch_page(DATA).run()
    at.file_uploader(key="data_zip").set_value((name, data or zip_bytes(), "application/zip")).run()
    at.button(key="data_zip_open").click().run()
    assert not at.exception, at.exception
    return at.selectbox(key="w.dataset").value


def train(at: AppTest) -> None:
    at.switch_page(TRAIN).run()
    at.radio(key="w.head").set_value("logistic").run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    if "job.train" in at.session_state:
        assert at.session_state["job.train"].wait(300)
    at.run()


def test_an_uploaded_dataset_stays_in_its_workspace():
    a = open_page(DATA)
    name = upload(a)
    assert name.startswith("animals") and name != "digits"
    assert (own(a).datasets_dir / name).is_dir()
    b = open_page(EXPLORE, dataset=name)  # another session, given the name in a link
    assert b.selectbox(key="w.dataset").value == "digits"
    assert name not in b.selectbox(key="w.dataset").options
    assert not any(s in text_of(b) for s in SECRET)
    b.switch_page(DATA).run()
    assert not any(s in text_of(b) for s in SECRET) and name not in text_of(b)
    # two sessions uploading zips of the same name: each gets its own
    other = upload(b, "animals.zip", zip_bytes(("heron-1", "ibis-2")))
    assert (own(b).datasets_dir / other).is_dir() and own(a) != own(b)


def test_runs_cannot_be_opened_predicted_with_or_deleted_across_workspaces():
    a = open_page(TRAIN)
    train(a)
    (rid,) = Ledger(own(a).ledger_path).list_runs()["id"]
    b = open_page(COMPARE, runs=str(rid))
    assert "No runs yet" in b.info[0].value
    b = open_page(PREDICT, run=str(rid))
    assert "No finished runs" in b.info[0].value
    train(b)  # b's own run #1 is another run in another ledger
    b.switch_page(COMPARE).run()
    assert not b.exception
    b.checkbox(key="compare.sure").check().run()
    b.button(key="compare.delete").click().run()
    assert Ledger(own(b).ledger_path).list_runs().empty
    assert list(Ledger(own(a).ledger_path).list_runs()["id"]) == [rid]


def test_a_shared_view_shows_the_workspace_read_only():
    a = open_page(DATA)
    name = upload(a)
    train(a)
    a.button(key="ws.share").click().run()
    share = a.query_params["view"]
    share = share[0] if isinstance(share, list) else share
    assert share == workspaces.share_token(a.session_state["ws.token"])
    assert a.session_state["ws.token"] not in str(a.query_params)
    v = open_page(COMPARE, view=share, dataset=name)
    assert v.selectbox(key="w.dataset").value == name  # sees the data
    assert len(v.multiselect(key="w.runs").value) == 1
    assert not [b for b in v.button if b.key == "compare.delete"]  # but cannot delete
    v.switch_page(TRAIN).run()
    assert v.button(key="train.start").disabled and v.button(key="train.ladder").disabled
    assert not v.exception and any("read-only" in i.value for i in v.info)
    v.switch_page(DATA).run()
    assert not [b for b in v.button if b.key == "ws.delete"]
    assert len(Ledger(own(a).ledger_path).list_runs()) == 1
    v.button(key="ws.back").click().run()  # back to a workspace of its own
    assert not v.exception and "ws.token" in v.session_state


@pytest.mark.parametrize("view", ["short", "../../../../etc/passwd", "x" * 500,
                                  workspaces.new_token()])
def test_a_bad_or_guessed_view_token_opens_only_an_own_workspace(view):
    at = open_page(COMPARE, view=view)
    assert not at.exception
    assert "No runs yet" in at.info[0].value
    assert "ws.token" in at.session_state and own(at).exists()


def test_delete_my_data_now_removes_everything_and_says_what():
    a = open_page(DATA)
    name = upload(a)
    train(a)
    ws = own(a)
    a.checkbox(key="ws.sure").check().run()
    a.button(key="ws.delete").click().run()
    assert not a.exception, a.exception
    said = " ".join(s.value for s in a.success)
    assert "Deleted" in said and name in said and "1 run" in said
    assert not ws.exists() and own(a) != ws
    assert name not in a.selectbox(key="w.dataset").options


def _hold_every_slot():
    """Fill the server's queue (as other students' jobs would); returns a release function."""
    import threading

    from tlviz.jobqueue import Ticket
    from ui import jobs

    release, held = threading.Event(), []

    def hold():
        with jobs.QUEUE.slot(Ticket("someone-else")):
            held.append(1)
            release.wait(120)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(jobs.QUEUE.slots)]
    for t in threads:
        t.start()
    while len(held) < len(threads):
        threading.Event().wait(0.01)

    def done():
        release.set()
        for t in threads:
            t.join(10)
    return done


def test_a_queued_job_shows_its_place_and_stop_takes_it_out(monkeypatch):
    monkeypatch.setenv("TLVIZ_WORKSPACE_JOBS", "1")
    release = _hold_every_slot()
    try:
        a = open_page(TRAIN)
        a.button(key="train.start").click().run()
        assert not a.exception, a.exception
        job = a.session_state["job.train"]
        assert job.queued == 1
        a.run()
        assert any("Waiting in the queue: place 1" in p.proto.text for p in a.get("progress"))
        # the same workspace in another tab (its key pasted): over its limit of one job
        b = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        b.query_params.update({"dataset": "digits", "backbone": "pixels"})
        b.session_state["ws.token"] = a.session_state["ws.token"]
        b.run()
        b.switch_page(TRAIN).run()
        b.button(key="train.start").click().run()
        assert not b.exception and any("TLVIZ_WORKSPACE_JOBS" in e.value for e in b.error)
        a.button(key="train.stop").click().run()
        assert job.wait(10) and job.queued is None
        a.run()
        assert any("waited in the queue" in w.value for w in a.warning)
        assert Ledger(own(a).ledger_path).list_runs().empty  # nothing was recorded
    finally:
        release()


def test_a_fragment_rerun_sees_the_session_workspace():
    """A fragment's own reruns skip app.py (where the workspace is made active):
    ``workspace.fragment`` activates it again, so tlviz's folders are the session's."""
    def script():
        import streamlit as st

        from tlviz import config
        from ui import workspace

        @workspace.fragment
        def part():
            st.write(f"folder:{config.user_datasets_dir().parent.name}")

        part()  # called outside app.py's block, as a fragment's rerun is

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == f"folder:{own(at).id}"


def test_the_presenter_key_publishes_a_dataset_to_everyone():
    a = open_page(DATA)
    name = upload(a)
    assert not [b for b in a.button if b.key == "ws.publish"]
    a.text_input(key="ws.presenter_key").input(workspaces.new_token()).run()
    assert not [b for b in a.button if b.key == "ws.publish"]  # a wrong key publishes nothing
    a.text_input(key="ws.presenter_key").input(workspaces.presenter_token()).run()
    a.button(key="ws.publish").click().run()
    assert not a.exception, a.exception
    b = open_page(EXPLORE, dataset=name)
    assert b.selectbox(key="w.dataset").value == name  # listed for another session now
    assert (workspaces.published().datasets_dir / name).is_dir()


def test_the_presenter_publishes_a_run_that_every_session_can_compare_and_predict_with():
    a = open_page(TRAIN)
    train(a)  # digits, pixels, logistic: run #1 of the presenter's own workspace
    a.switch_page(COMPARE).run()
    assert not [b for b in a.button if b.key == "compare.publish"]  # not without the key
    a.text_input(key="ws.presenter_key").input(workspaces.presenter_token()).run()
    a.button(key="compare.publish").click().run()
    assert not a.exception, a.exception
    published = Ledger(workspaces.published().ledger_path, read_only=True)
    mine = Ledger(own(a).ledger_path, read_only=True)
    (pid,) = published.list_runs()["id"].tolist()
    copy, orig = published.get_run(pid), mine.get_run(1)
    assert copy["val_accuracy"] == orig["val_accuracy"] and copy["config"] == orig["config"]
    assert copy["history"].drop(columns="run_id").equals(orig["history"].drop(columns="run_id"))
    assert all(np.array_equal(v, mine.weights(1)[k]) for k, v in published.weights(pid).items())

    b = open_page(COMPARE)  # another session: its own runs first (none), then the published
    assert "No runs yet" in text_of(b)
    b.segmented_control(key="w.runs_from").set_value("published").run()
    assert not b.exception, b.exception
    assert b.multiselect(key="w.runs").value == [str(pid)]
    assert not [x for x in b.button if x.key == "compare.delete"]  # nobody deletes them
    b.switch_page(PREDICT).run()
    assert not b.exception, b.exception
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 200, 200)).save(buf, format="PNG")
    b.file_uploader(key="predict.upload").set_value(("p.png", buf.getvalue(), "image/png")).run()
    assert not b.exception, b.exception
    assert any(m.label == "Prediction" for m in b.metric)
    assert Ledger(own(b).ledger_path, read_only=True).list_runs().empty  # nothing of its own


def test_publishing_a_run_needs_the_presenter_key_and_a_finished_run_of_ones_own(tmp_path):
    token, ws = workspaces.create()
    led = Ledger(ws.ledger_path)
    rid = led.start_run({"dataset": "digits", "backbone": "pixels"})
    with pytest.raises(BadInput):
        workspaces.publish_run(ws, rid, workspaces.new_token())  # a wrong key
    with pytest.raises(UnknownName):
        workspaces.publish_run(ws, rid, workspaces.presenter_token())  # still running
    with pytest.raises(UnknownName):
        workspaces.publish_run(ws, 999, workspaces.presenter_token())
    _, other = workspaces.create()
    led.finish_run(rid, val_accuracy=0.5)
    with pytest.raises(UnknownName):  # another workspace's ledger has no such run
        workspaces.publish_run(other, rid, workspaces.presenter_token())
    assert workspaces.publish_run(ws, rid, workspaces.presenter_token()) == 1


def test_an_upload_over_the_workspace_limit_names_the_limit(monkeypatch):
    monkeypatch.setenv("TLVIZ_WORKSPACE_IMAGES", "5")
    a = open_page(DATA)
    upload(a)  # 12 images
    assert any("TLVIZ_WORKSPACE_IMAGES" in e.value.replace("\\", "") for e in a.error)
    assert a.selectbox(key="w.dataset").value == "digits"
    assert not [d for d in own(a).datasets_dir.iterdir() if not d.name.startswith(".")]
