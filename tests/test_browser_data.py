"""The Data page's own datasets in a real browser: a zip upload says what it opened and shows
it; webcam photos (Chromium's fake camera) become a dataset that embeds and trains.

Every request to a host other than the app's is blocked: both flows work offline.
"""

from __future__ import annotations

import re
import zipfile

import browser_util as bu
import pytest
from conftest import make_image_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    with bu.StreamlitServer(home=tmp_path_factory.mktemp("data-home")) as srv:
        yield srv


def test_a_zip_upload_says_what_it_opened_and_shows_it(server, tmp_path):
    root = make_image_folder(tmp_path / "parrots", n_classes=2, per_class=8, size=40,
                             splits=("train", "val"))
    for k, name in enumerate(["quetzal", "kakapo"]):  # class folders with unique names
        for split in ("train", "val"):
            (root / split / f"class{k}").rename(root / split / name)
    (root / "train" / "notes.txt").write_text("not an image")
    archive = tmp_path / "parrots.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(root.rglob("*")):
            z.write(f, f.relative_to(root))
    with bu.browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        blocked = bu.block_other_hosts(page, server.url)
        bu.open_page(page, bu.page_urls(server.url)["Data"])
        page.get_by_role("tab", name="Upload a .zip").click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(archive))
        page.get_by_role("button", name="Open this .zip").click()
        msg = page.locator('[data-testid="stAlertContentSuccess"]')
        msg.wait_for()
        bu.wait_idle(page)
        bu.assert_no_exception(page, "Data after an upload")
        text = msg.inner_text()
        assert "Opened" in text and "quetzal" in text and "kakapo" in text
        assert re.search(r"train 1\d\b", text) and "val" in text, text
        # the data view is shown: its heading is visible without clicking a tab
        assert page.get_by_role("heading", name="Samples per class").is_visible()
        bu.screenshot(page, "/tmp/shots/data_upload_1280.png")
    assert not blocked, blocked


def test_webcam_photos_become_a_dataset_that_trains(server):
    with bu.browser_with_args(CAMERA_ARGS) as b:
        ctx = b.new_context(viewport={"width": 1280, "height": 800},
                            permissions=["camera"])
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        blocked = bu.block_other_hosts(page, server.url)
        urls = bu.page_urls(server.url)
        bu.open_page(page, urls["Data"])
        page.get_by_role("tab", name="Webcam dataset").click()
        cams = page.locator('[data-testid="stCameraInput"]')
        ready = "n => [...document.querySelectorAll('[data-testid=stCameraInput] video')]" \
                ".filter(v => v.readyState >= 2 && v.videoWidth > 0).length >= n"
        for k in range(2):
            for _ in range(4):
                page.wait_for_function(ready, arg=2)  # both cameras stream (the fake device)
                page.wait_for_timeout(300)  # the fake camera's next frame differs
                cams.nth(k).get_by_role("button", name="Take Photo").click()
                bu.wait_idle(page, settle=0.3)
                cams.nth(k).get_by_role("button", name="Clear photo").click()
                bu.wait_idle(page, settle=0.3)
        page.get_by_text("4 photo(s)").first.wait_for()
        assert page.get_by_text("4 photo(s)").count() == 2
        page.get_by_label("Dataset name").fill("cam-test")
        page.get_by_role("button", name="Save dataset").click()
        msg = page.locator('[data-testid="stAlertContentSuccess"]')
        msg.wait_for()
        bu.wait_idle(page)
        assert "8 images in 2 classes" in msg.inner_text()
        bu.assert_no_exception(page, "Data after the webcam save")
        dataset = page.url.split("dataset=")[1].split("&")[0]
        assert dataset.startswith("cam-test")
        bu.screenshot(page, "/tmp/shots/data_webcam_1280.png")

        bu.open_page(page, urls["Train"] + f"?dataset={dataset}&backbone=mobilenet_v2"
                     "&mode=feature-extraction&head=logistic")
        page.get_by_role("button", name=re.compile(r"\bTrain$")).click()
        page.wait_for_timeout(500)
        bu.wait_idle(page, timeout=300)
        bu.assert_no_exception(page, "Train on the webcam dataset")
        val = page.locator('[data-testid="stMetric"]').filter(has_text="Val accuracy")
        val.wait_for()
        assert "%" in val.inner_text()
        ctx.close()
    assert not blocked, blocked
