"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Walks every page app.py declares (``ui/nav.py``: new pages are walked too), checks the
navigation menu's labels and order and that no exception box is shown, and saves one
screenshot per page at projector size (1280x720) and laptop size (1440x900) in
artifacts/screenshots/. Then the main flow on hymenoptera (digits when the
real data is absent): embed with mobilenet_v2 -> UMAP plot -> train a logistic head ->
Compare shows the run -> Predict an uploaded image shows a bar chart.
With TLVIZ_UPDATE_DOCS_SCREENSHOT=1 the embedding page also goes to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlencode

import browser_util as bu
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

DOCS_SHOT = bu.ROOT / "docs" / "screenshots" / "embedding.png"


def _flow_dataset() -> tuple[str, Path | None]:
    """hymenoptera when the real data is here, else digits (no image files: use a PNG of one)."""
    base = os.environ.get("TLVIZ_DATA_DIR")
    root = Path(base) / "hymenoptera" if base else None
    if root is not None and (root / "val" / "bees").is_dir():
        return "hymenoptera", sorted((root / "val" / "bees").glob("*.jpg"))[0]
    return "digits", None


def _digit_png(tmp: Path) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    arr = np.clip(d.images[0] * 255 / 16, 0, 255).astype(np.uint8)
    path = tmp / "digit0.png"
    Image.fromarray(arr).resize((64, 64), Image.NEAREST).save(path)
    return path


def _shot(page, name: str) -> Path:
    return bu.screenshot(page, bu.SCREENSHOTS / f"{name}.png")


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    home = tmp_path_factory.mktemp("browser-home")
    with bu.StreamlitServer(home=home) as srv:
        yield srv


def test_main_flow_and_every_page(server, tmp_path):
    dataset, image = _flow_dataset()
    image = image or _digit_png(tmp_path)
    q = "?" + urlencode({"dataset": dataset, "backbone": "mobilenet_v2"})
    urls = bu.page_urls(server.url)
    assert {"Home", "Train", "Compare", "Predict"} <= set(urls)

    with bu.browser() as b:
        page = b.new_page(viewport=bu.PROJECTOR)
        page.set_default_timeout(120_000)

        # every page once before any run exists (empty-ledger states included)
        first = True
        for name, url in urls.items():
            if name in ("Embedding space", "Train", "Compare", "Predict"):
                continue  # visited in the flow below
            bu.open_page(page, url + q, timeout=240)
            bu.assert_no_exception(page, name)
            if first:  # Streamlit's navigation menu: app.py's pages, labels and order
                menu = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
                assert [m.split("\n")[-1].strip() for m in menu] == list(urls), menu  # icon\n\nlabel
                first = False
            _shot(page, _slug(name))

        # embed -> UMAP
        bu.open_page(page, urls["Embedding space"] + q + "&compare=none&method=umap",
                     timeout=300)
        bu.assert_no_exception(page, "Embedding space")
        page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
        page.wait_for_timeout(800)  # plotly's first paint
        _shot(page, "embedding_space")
        if os.environ.get("TLVIZ_UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture
            DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_SHOT))

        # train a logistic head
        bu.open_page(page, urls["Train"] + q + "&mode=feature-extraction&head=logistic")
        bu.assert_no_exception(page, "Train")
        page.get_by_role("button", name=re.compile(r"\bTrain$")).click()
        page.wait_for_timeout(500)
        bu.wait_idle(page, timeout=300)
        bu.assert_no_exception(page, "Train after training")
        val = page.locator('[data-testid="stMetric"]').filter(has_text="Val accuracy")
        val.wait_for()
        assert "%" in val.inner_text()
        cm = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Confusion matrix")
        cm.wait_for()
        _shot(page, "train")
        # a click on the top-left cell (first class, correct) shows that cell's images
        cm.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box = cm.locator(".nsewdrag").first.bounding_box()
        n = 2 if dataset == "hymenoptera" else 10
        page.mouse.click(box["x"] + box["width"] / (2 * n), box["y"] + box["height"] / (2 * n))
        cell = page.locator('[data-testid="stSelectbox"] input[aria-label="Images of a cell"]')
        page.wait_for_function("e => e.value.includes('correct (')", arg=cell.element_handle(),
                               timeout=30_000)
        bu.wait_idle(page)
        bu.assert_no_exception(page, "Train after a click on the confusion matrix")

        # compare shows the run
        bu.open_page(page, urls["Compare"] + q)
        bu.assert_no_exception(page, "Compare")
        assert page.locator('[data-testid="stMultiSelect"]').filter(has_text="#1").count() == 1
        page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
        _shot(page, "compare")

        # predict an uploaded image
        bu.open_page(page, urls["Predict"] + q)
        bu.assert_no_exception(page, "Predict")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(image))
        page.locator('[data-testid="stMetric"]').filter(has_text="Prediction").wait_for()
        bu.wait_idle(page)
        bu.assert_no_exception(page, "Predict after upload")
        bars = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot .bars')
        bars.first.wait_for()
        if dataset == "hymenoptera":
            metric = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
            assert "bees" in metric.inner_text()
        _shot(page, "predict")

        # laptop size: every page again (all cached now)
        page.set_viewport_size(bu.LAPTOP)
        for name, url in urls.items():
            extra = "&compare=none" if name == "Embedding space" else ""
            bu.open_page(page, url + q + extra, timeout=240)
            bu.assert_no_exception(page, f"{name} (laptop)")
            _shot(page, f"{_slug(name)}-laptop")
    shots = sorted(p.name for p in bu.SCREENSHOTS.glob("*.png"))
    assert {"train.png", "compare.png", "predict.png", "embedding_space.png"} <= set(shots)
    if os.environ.get("TLVIZ_UPDATE_DOCS_SCREENSHOT"):
        assert DOCS_SHOT.stat().st_size < 300_000 or _shrink(DOCS_SHOT)


def _shrink(path: Path) -> bool:
    """Keep the README screenshot small: quantise to a 256-colour PNG."""
    from PIL import Image

    tmp = path.with_suffix(".tmp.png")
    Image.open(path).convert("RGB").quantize(256).save(tmp, optimize=True)
    shutil.move(tmp, path)
    return path.stat().st_size < 300_000
