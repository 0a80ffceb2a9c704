"""Classroom mode in real browsers (headless Chromium): two browser contexts on one server.

One uploads a zip whose class names are unique strings and trains on it; the other, given
that dataset's name and the run's id in its URLs, never sees those class names, images or
runs. Then three browsers do the whole flow at once (bench/bench_classroom.py at N=3):
no errors, every run in its own workspace.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from pathlib import Path

import browser_util as bu
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1500)]
SECRET = ("numbat-e81c4f", "tuatara-5d0a97")
SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    with bu.StreamlitServer(home=tmp_path_factory.mktemp("classroom-home"),
                            env={"TLVIZ_MODE": "classroom"}) as srv:
        yield srv


def _zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for i, c in enumerate(SECRET):
            for split in ("train", "val"):
                for k in range(6):
                    buf = io.BytesIO()
                    Image.new("RGB", (40, 40), (30 * k, 200 * i, 90)).save(buf, format="PNG")
                    z.writestr(f"{split}/{c}/{k}.png", buf.getvalue())
    return path


def _menu(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.wait_for_timeout(300)
    bu.wait_idle(page)


def test_another_browser_never_sees_an_uploaded_dataset_or_its_runs(server, tmp_path):
    archive = _zip(tmp_path / "secret-zoo.zip")
    urls = bu.page_urls(server.url)
    with bu.browser() as b:
        a = b.new_context(viewport={"width": 1280, "height": 800}).new_page()
        a.set_default_timeout(120_000)
        bu.open_page(a, urls["Data"] + "?backbone=pixels")
        a.get_by_role("tab", name="Upload a .zip").click()
        a.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(archive))
        a.get_by_role("button", name="Open this .zip").click()
        a.locator('[data-testid="stAlertContentSuccess"]').wait_for()
        bu.wait_idle(a)
        bu.assert_no_exception(a, "Data after the upload")
        assert SECRET[0] in a.content()
        name = re.search(r"dataset=([^&]+)", a.url).group(1)
        assert name.startswith("secret-zoo")
        bu.screenshot(a, SHOTS / "classroom_data_1280.png")
        _menu(a, "Train")
        a.get_by_role("button", name=re.compile(r"\bTrain$")).click()
        a.locator('[data-testid="stMetric"]').filter(has_text="Val accuracy").wait_for()
        bu.assert_no_exception(a, "Train")
        _menu(a, "Compare")
        assert a.locator('[data-testid="stMultiSelect"]').filter(has_text="#1").count() == 1
        # a reload is a new session: the browser's session cookie brings the workspace back
        cookie = next(c for c in a.context.cookies() if c["name"] == "tlviz_ws")
        assert cookie["sameSite"] == "Strict" and cookie["expires"] == -1  # until it closes
        assert cookie["value"] not in a.url
        a.reload()
        bu.wait_idle(a)
        a.locator('[data-testid="stMultiSelect"]').filter(has_text="#1").wait_for()  # its run
        assert "No runs yet" not in a.content()
        a.get_by_text("Workspace").first.click()  # the sidebar's workspace box, opened
        bu.wait_idle(a)
        a.set_viewport_size({"width": 1920, "height": 1080})
        bu.wait_idle(a)
        bu.screenshot(a, SHOTS / "classroom_compare_1920.png")

        # another browser (own cookies, own session), given the name and run id by link
        other = b.new_context(viewport={"width": 1280, "height": 800}).new_page()
        other.set_default_timeout(120_000)
        seen = []
        other.on("response", lambda r: seen.append(r.url))
        for page_name, query in (("Data", f"?dataset={name}"), ("Explore", f"?dataset={name}"),
                                 ("Embedding space", f"?dataset={name}&backbone=pixels"),
                                 ("Compare", "?runs=1"), ("Predict", "?run=1")):
            bu.open_page(other, urls[page_name] + query)
            bu.assert_no_exception(other, page_name)
            html = other.content()
            assert not any(s in html for s in SECRET), page_name
            assert name not in other.locator('[data-testid="stSidebar"]').inner_text()
            if page_name == "Compare":
                assert "No runs yet" in html
            if page_name == "Predict":
                assert "No finished runs" in html
        bu.screenshot(other, SHOTS / "classroom_other_1280.png")
        assert not any(SECRET[0] in u or SECRET[1] in u for u in seen)


def test_three_browsers_at_once_each_in_its_own_workspace(tmp_path):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_classroom

    fig = bench_classroom.run(3, home=tmp_path / "home", backbone="pixels", timeout_s=600)
    assert fig["errors"] == []
    assert fig["own_workspaces"], fig["workspaces"]
    assert fig["embeddings"] == 1  # one computation for the three of them
    assert all(len(r["times"]) == 4 for r in fig["results"])


def _statuses(home: Path) -> dict[str, list[str]]:
    import sqlite3

    out = {}
    for db in sorted((home / "workspaces").glob("*/runs.db")):
        try:
            with sqlite3.connect(db, timeout=30) as con:  # plain SQLite: marks nothing itself
                out[db.parent.name] = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")]
        except sqlite3.OperationalError:  # a ledger being created this instant: no runs yet
            out[db.parent.name] = []
    return out


def test_kill9_of_the_server_keeps_finished_runs_and_marks_running_ones(tmp_path):
    import os
    import signal
    import time

    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    home = tmp_path / "home"
    env = {"TLVIZ_MODE": "classroom", "TLVIZ_MAX_JOBS": "2"}
    srv = bu.StreamlitServer(home=home, env=env).start()
    try:
        urls = bu.page_urls(srv.url)
        with bu.browser() as b:
            done = b.new_context().new_page()
            done.set_default_timeout(180_000)
            bu.open_page(done, urls["Train"] + "?dataset=digits&backbone=pixels&head=logistic")
            done.get_by_role("button", name=re.compile(r"\bTrain$")).click()
            done.locator('[data-testid="stMetric"]').filter(has_text="Val accuracy").wait_for()
            busy = b.new_context().new_page()  # a backbone to embed first: a run in progress
            busy.set_default_timeout(180_000)
            bu.open_page(busy, urls["Train"] + "?dataset=hymenoptera&backbone=mobilenet_v2"
                         "&head=mlp&epochs=100")
            busy.get_by_role("button", name=re.compile(r"\bTrain$")).click()
            deadline = time.monotonic() + 120
            while not any("running" in v for v in _statuses(home).values()):
                assert time.monotonic() < deadline, _statuses(home)
                time.sleep(0.1)
            os.killpg(srv.proc.pid, signal.SIGKILL)
            srv.proc.wait(10)
    finally:
        srv.stop()
    before = _statuses(home)
    assert sorted(before.values()) == [["completed"], ["running"]], before
    srv2 = bu.StreamlitServer(home=home, env=env).start()  # same home: a restart
    try:
        with bu.browser() as b:
            page = b.new_page()
            bu.open_page(page, srv2.url)  # its first session runs the start-up sweep
            bu.assert_no_exception(page, "Home after the restart")
    finally:
        srv2.stop()
    after = {k: v for k, v in _statuses(home).items() if v}  # the new visitor's is empty
    assert set(after) == set(before)  # each run still in its own workspace
    assert sorted(after.values()) == [["completed"], ["interrupted"]], after
