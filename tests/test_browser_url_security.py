"""A link cannot make the dashboard open a folder of the server's disk (real browser).

Chromium opens ``/Data?dataset=`` with a private folder's absolute path, a ``../`` path
relative to the app and a ``file:`` URL; the page shows none of the folder's class names,
falls back to the default dataset and says so. Every request to another host is blocked.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import browser_util as bu
import pytest
from conftest import make_image_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

SECRETS = ("zqxprivateants", "zqxprivatebees")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("urlsec-browser")
    private = base / "private"
    private.mkdir()
    for k, name in enumerate(SECRETS):
        make_image_folder(base / "tmp", n_classes=1, per_class=6, size=24, seed=k)
        (base / "tmp" / "class0").rename(private / name)
    with bu.StreamlitServer(home=base / "home") as srv, bu.browser() as b:
        yield srv, b, private


def test_a_link_to_a_private_folder_shows_nothing_of_it(setup):
    srv, b, private = setup
    values = [str(private), os.path.relpath(private, bu.ROOT), f"file://{private}"]
    page = b.new_page(viewport={"width": 1280, "height": 800})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(srv.url)
               else route.abort())
    for value in values:
        bu.open_page(page, f"{srv.url}/Data?dataset={quote(value, safe='')}")
        bu.assert_no_exception(page)
        body = page.inner_text("body")
        assert not any(s in body for s in SECRETS), value
        assert "not one this app offers" in body  # the notice
        picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
        assert picker.locator("input").first.input_value() == "digits"  # the default instead
    bu.screenshot(page, bu.SCREENSHOTS / "url_security_data.png")
