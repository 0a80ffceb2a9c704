"""The map's other views in a real browser (Debian's chromium), offline (every host but the
app's blocked; Streamlit's own icon look-ups left aside, see browser_util):
colour by a run's right/wrong, the sweep grid, a morph's first and last frame, and
presenter mode at 1920x1080 with a map at least 70% of the screen's height. Each view is
screenshotted to /tmp/shots/ (TLVIZ_SHOTS).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import browser_util as bu
import pytest
from conftest import make_image_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
SHOTS = Path(os.environ.get("TLVIZ_SHOTS", "/tmp/shots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    data = tmp_path_factory.mktemp("views-data")
    make_image_folder(data / "blobs", n_classes=3, per_class=20, size=32,
                      splits=("train", "val"))
    home = tmp_path_factory.mktemp("views-home")
    env = {"TLVIZ_DATA_DIR": str(data), "TLVIZ_HOME": str(home)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:  # a finished run in the server's own ledger, to colour the map by
        from tlviz.train import TrainConfig, train

        run = train(TrainConfig(dataset="blobs", backbone="pixels", head="knn",
                                head_params={"n_neighbors": 15}))
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    with bu.StreamlitServer(home=home, env=env) as srv:
        srv.run_id = run.run_id
        yield srv


def _page(b, srv, viewport=(1280, 800)):
    page = b.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(180_000)
    return page, bu.block_other_hosts(page, srv.url)


def _open(page, srv, path: str, **query) -> None:
    q = {"dataset": "blobs", "backbone": "pixels", **query}
    bu.open_page(page, f"{srv.url}/{path}?{urlencode(q)}", timeout=400)
    bu.assert_no_exception(page, path)


def test_colour_by_a_run_and_presenter_mode(server):
    with bu.browser() as b:
        page, blocked = _page(b, server)
        _open(page, server, "Embedding_space", compare="none", method="pca",
              color_by="correct", color_run=str(server.run_id))
        page.locator(".st-key-emb_map_0 .js-plotly-plot .colorbar").wait_for()
        ticks = page.locator(".st-key-emb_map_0 .colorbar .cbaxis text").all_text_contents()
        assert "right" in ticks and "wrong" in ticks, ticks
        page.wait_for_timeout(500)
        bu.screenshot(page, SHOTS / "views_correct_1280.png")

        page, more = _page(b, server, (1920, 1080))
        _open(page, server, "Embedding_space", method="pca", presenter="1")
        plot = page.locator(".st-key-emb_map_0 .js-plotly-plot")
        plot.wait_for()
        box = plot.bounding_box()
        assert box["height"] >= 0.7 * 1080, box  # the map fills most of the projected screen
        legend = page.locator(".st-key-emb_map_0 .legendtext").first
        assert float(legend.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 20
        page.wait_for_timeout(500)
        bu.screenshot(page, SHOTS / "views_presenter_1920.png")
    assert not blocked and not more, blocked + more


def test_sweep_grid_and_a_morph(server):
    with bu.browser() as b:
        page, blocked = _page(b, server)
        _open(page, server, "Sweeps", sweep_method="umap")
        grid = page.locator('[data-testid="stPlotlyChart"]').first
        grid.wait_for(timeout=300_000)
        bu.wait_idle(page)
        titles = grid.locator(".annotation-text").all_text_contents()
        assert sum("trust" in t for t in titles) == 9, titles  # 3 x 3, each scored
        bu.screenshot(page, SHOTS / "views_sweep_1280.png")

        _open(page, server, "Sweeps", sweep_tab="Morph", morph="pca-umap")
        page.get_by_role("tab", name="Morph").click()
        bu.wait_idle(page)
        morph = page.locator('[data-testid="stPlotlyChart"]').first
        morph.wait_for()
        first = morph.locator(".scatterlayer .point").first.get_attribute("transform")
        bu.screenshot(page, SHOTS / "views_morph_first_1280.png")
        page.get_by_text("▶ play").click()
        page.wait_for_timeout(3500)  # 16 frames x 120 ms
        last = morph.locator(".scatterlayer .point").first.get_attribute("transform")
        assert first != last  # the points moved from the PCA layout to the UMAP one
        slider = morph.locator(".slider-container .slider-label").first.text_content()
        assert "100%" in slider, slider
        bu.screenshot(page, SHOTS / "views_morph_last_1280.png")
    assert not blocked, blocked
