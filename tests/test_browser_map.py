"""The embedding map in a real browser (Debian's chromium), offline: every host but the
app's is blocked. Hovering a dot shows its image (a real, decoded <img>) with class,
split and file name; the images-as-points view draws thumbnails in the plot; colouring
by neighbours kept shows a colour bar. Screenshots go to /tmp/shots/.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import browser_util as bu
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

SHOTS = Path(os.environ.get("TLVIZ_SHOTS", "/tmp/shots"))
CARD_READY = """() => { const t = document.getElementById('tlviz-hover-card');
    const img = t && t.querySelector('img');
    return !!(t && t.style.display !== 'none' && t.dataset.ready === '1' && img
              && img.complete && img.naturalWidth > 0); }"""


def _dataset() -> str:
    base = os.environ.get("TLVIZ_DATA_DIR")
    return "hymenoptera" if base and (Path(base) / "hymenoptera" / "val").is_dir() else "digits"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    with bu.StreamlitServer(home=tmp_path_factory.mktemp("map-home")) as srv:
        yield srv


def _offline_page(b, srv, blocked: list[str], viewport=None):
    page = b.new_page(viewport=viewport or {"width": 1280, "height": 800})
    page.set_default_timeout(120_000)
    bu.block_other_hosts(page, srv.url, blocked)
    return page


def _open_map(page, srv, **query) -> None:
    q = {"dataset": _dataset(), "backbone": "pixels", "compare": "none", "method": "pca",
         **query}
    bu.open_page(page, f"{srv.url}/Embedding_space?{urlencode(q)}", timeout=400)
    bu.assert_no_exception(page, "Embedding space")
    page.locator(".st-key-emb_map_0 .js-plotly-plot").wait_for()


def _hover_point(page, n: int):
    box = page.locator(".st-key-emb_map_0 .scatterlayer .trace .points path").nth(n).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x + 3, y + 3)
    page.mouse.move(x, y)


def test_hovering_a_dot_shows_its_image_offline(server):
    blocked: list[str] = []
    with bu.browser() as b:
        page = _offline_page(b, server, blocked)
        _open_map(page, server)
        page.wait_for_timeout(500)
        _hover_point(page, 7)
        page.wait_for_function(CARD_READY, timeout=15_000)
        card = page.locator("#tlviz-hover-card")
        info = page.evaluate("""() => { const t = document.getElementById('tlviz-hover-card');
            const img = t.querySelector('img'), box = img.parentElement.getBoundingClientRect();
            return {src: img.src, sheet: img.dataset.sheet, natural: img.naturalWidth, w: box.width, h: box.height,
                    index: Number(t.dataset.index), text: t.innerText}; }""")
        assert info["natural"] > 0 and info["w"] >= 96 and info["h"] >= 96, info
        # the sheet's bytes came from the app's own media endpoint (fetched, then a blob: URL)
        assert info["sheet"].startswith("/media/") and info["src"].startswith("blob:"), info
        text = info["text"]
        assert f"#{info['index']}" in text and any(s in text for s in ("train", "val", "test"))
        if _dataset() == "hymenoptera":
            assert ("ants" in text or "bees" in text) and ".jpg" in text
        bu.screenshot(page, SHOTS / "map-hover-1280.png")
        # another dot: the card follows, still a loaded image
        first = info["index"]
        _hover_point(page, 40)
        page.wait_for_function(f"() => document.getElementById('tlviz-hover-card').dataset.index"
                               f" !== '{first}'", timeout=10_000)
        page.wait_for_function(CARD_READY, timeout=10_000)
        # leaving the plot hides it
        page.mouse.move(5, 5)
        page.wait_for_function("() => document.getElementById('tlviz-hover-card').style.display"
                               " === 'none'", timeout=5_000)
        assert card.count() == 1
        # a click still feeds the selection, shown beside the map
        _hover_point(page, 7)
        page.mouse.down()
        page.mouse.up()
        page.get_by_text("1 selected image(s)").wait_for(timeout=30_000)
        bu.wait_idle(page)
        bu.assert_no_exception(page, "after a click")
        bu.screenshot(page, SHOTS / "map-selected-1280.png")
    assert not [u for u in blocked if "/media/" in u], blocked


def test_images_as_points_and_neighbours_kept_colouring(server):
    blocked: list[str] = []
    with bu.browser() as b:
        page = _offline_page(b, server, blocked)
        _open_map(page, server, points="images")
        images = page.locator(".st-key-emb_map_0 .js-plotly-plot .layer-subplot image")
        images.first.wait_for()
        n_img = images.count()
        assert 1 <= n_img <= 1000
        assert page.evaluate("""() => [...document.querySelectorAll(
            '.st-key-emb_map_0 .layer-subplot image')].every(i =>
            (i.getAttribute('href') || '').startsWith('data:image/jpeg'))""")
        bu.screenshot(page, SHOTS / "map-images-1280.png")
        _open_map(page, server, color_by="kept")
        page.locator(".st-key-emb_map_0 .colorbar").wait_for()
        assert page.locator(".st-key-emb_map_0 .js-plotly-plot .layer-subplot image").count() == 0
        bu.screenshot(page, SHOTS / "map-kept-1280.png")
