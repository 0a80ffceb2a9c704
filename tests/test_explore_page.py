"""AppTest tests of the Explore page (digits on raw pixels, PCA layout; a tiny fine-tune run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder
from streamlit.testing.v1 import AppTest

from tlviz import explore
from tlviz.data import load_dataset
from tlviz.embed import embed

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_Explore.py"
IMAGE, SELECTION = "s.explore_image", "s.selection"  # ui.state's session keys
PICK = "w.explore_image"  # the Neighbours tab's image number input


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def open_explore(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"dataset": "digits", "backbone": "pixels", "explore_method": "pca",
                            **query})
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return ds, embed(ds, "pixels", cache=False)


def test_neighbours_follow_the_picked_image(digits):
    ds, emb = digits
    at = open_explore()
    assert at.session_state[IMAGE] == 0
    # an image whose neighbours include another class, so the count is informative
    from tlviz.neighbours import knn

    _, nb8 = knn(emb.features, 8, metric="cosine")
    i = int(((emb.labels[nb8] != emb.labels[:, None]).sum(1)).argmax())
    at.number_input(key=PICK).set_value(i).run()
    assert not at.exception, at.exception
    assert at.session_state[IMAGE] == i
    nb = explore.neighbours(emb.features, emb.labels, i, k=8, metric="cosine")
    assert int(metric(at, "of its 8 nearest")) == int((~nb["same_class"]).sum()) >= 4
    at.slider(key="w.explore_k").set_value(12).run()
    nb = explore.neighbours(emb.features, emb.labels, i, k=12, metric="cosine")
    assert int(metric(at, "of its 12 nearest")) == int((~nb["same_class"]).sum())


def test_lasso_selection_shows_counts_exports_and_saves_a_note(fresh_home):
    at = open_explore()
    assert any("lasso" in i.value for i in at.info)
    ds = load_dataset("digits")
    sel = [0, 1, 2, 10, 11, 20]  # as the lasso handler stores it
    at.session_state[SELECTION] = sel
    at.run()
    assert not at.exception, at.exception
    assert metric(at, "images selected") == str(len(sel))
    counts = next(d.value for d in at.dataframe if "count" in d.value.columns)
    expected = explore.selection_summary(sel, ds.labels, ds.classes)
    expected = expected[expected["count"] > 0]
    assert counts["count"].tolist() == expected["count"].tolist()
    at.text_input(key="explore.note_title").input("odd <b>digits</b> 🙂")
    at.text_area(key="explore.note_text").input("check these")
    next(b for b in at.button if b.label == "Save the selection as a note").click().run()
    assert not at.exception, at.exception
    notes = list((fresh_home / "notes").glob("*.json"))
    assert len(notes) == 1
    note = json.loads(notes[0].read_text())
    assert note["indices"] == sel and note["title"] == "odd <b>digits</b> 🙂"
    assert any("Saved 6 images" in s.value for s in at.success)
    # the note can bring the selection back
    at.session_state[SELECTION] = []
    at.run()
    next(b for b in at.button if b.label == "Select these images").click().run()
    assert at.session_state[SELECTION] == sel


def test_click_and_lasso_events_map_to_dataset_indices():
    click = {"selection": {"points": [{"customdata": [42, 3], "x": 0.1, "y": 2}],
                           "box": [], "lasso": []}}
    lasso = {"selection": {"points": [{"customdata": [5, 0]}, {"customdata": [9, 1]},
                                      {"customdata": [5, 0]}], "lasso": [{"x": [0, 1]}]}}
    assert explore.selection_from_event(click) == (42, [])
    assert explore.selection_from_event(lasso) == (None, [5, 9])
    as_sent = {"selection": {"points": [{"customdata": {"0": 7, "1": 2}}], "lasso": [], "box": []}}
    assert explore.selection_from_event(as_sent) == (7, [])
    assert explore.selection_from_event({"selection": {"points": [{"customdata": "x"}]}}) == (None, [])
    assert explore.selection_from_event({"selection": {"points": []}}) == (None, [])
    assert explore.selection_from_event(None) == (None, [])


def test_satellites_and_augmentation_comparison():
    at = open_explore()
    at.selectbox(key="explore.sat_aug").set_value("horizontal flip")
    at.slider(key="explore.sat_n").set_value(4)
    next(b for b in at.button if b.label == "Embed augmented copies").click().run()
    assert not at.exception, at.exception
    ratio = float(metric(at, "copy distance / class distance"))
    assert 0 < ratio < 5
    chosen = at.session_state["explore.sat"][0]
    assert len(chosen) >= 2 and at.session_state[IMAGE] in chosen
    per = next(d.value for d in at.dataframe if "ratio" in d.value.columns
               and "index" in d.value.columns)
    assert per["index"].tolist() == list(chosen)
    at.button(key="explore.cmp_btn").click().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "augmentation" in d.value.columns)
    assert table["augmentation"].tolist() == list(explore.AUGMENT_PRESETS)
    assert (table["ratio"] > 0).all()


def test_label_issues_match_the_library_and_open_in_neighbours(digits):
    ds, emb = digits
    at = open_explore()
    issues = explore.label_issues(emb.features, emb.labels)
    text = next(m.value for m in at.markdown if "look mislabelled" in m.value)
    assert text.startswith(f"**{len(issues)}** of {len(ds)} images")
    box = at.selectbox(key="explore.issue_pick")
    assert box.options[0] == f"#{issues['index'].iloc[0]}"
    box.set_value(int(issues["index"].iloc[1])).run()
    assert not at.exception, at.exception
    assert at.session_state[IMAGE] == int(issues["index"].iloc[1])


def test_before_after_without_and_with_a_fine_tuned_run(fresh_home):
    at = open_explore()
    assert any("No fine-tuned run" in i.value for i in at.info)

    from tlviz.train import TrainConfig, train

    folder = make_image_folder(fresh_home / "datasets" / "tiny3", n_classes=3, per_class=8,
                               splits=("train", "val"))  # a user dataset: opened by name
    res = train(TrainConfig(dataset=folder.name, backbone="tiny_random", head="logistic",
                            mode="fine-tune", epochs=2, augment={}, extra={"head_epochs": 3}))
    import streamlit as st

    st.cache_data.clear()  # the dataset list is cached for a minute; the app refreshes it on save
    at = open_explore(dataset=folder.name)
    assert at.selectbox(key="explore.ba_run").value == res.run_id
    next(b for b in at.button if b.label == "Compare frozen and fine-tuned").click().run()
    assert not at.exception, at.exception
    rep = next(d.value for d in at.dataframe if "before" in d.value.columns)
    assert {"before", "after", "change"} <= set(rep.columns)
    assert {"train", "val"} <= set(rep.index.get_level_values(0))
    np.testing.assert_allclose(rep["change"], rep["after"] - rep["before"])
    at.toggle(key="explore.ba_anim").set_value(True).run()
    assert not at.exception, at.exception


def test_bad_links_and_stale_state_fall_back():
    at = open_explore(explore_split="nonsense", explore_metric="hamming", explore_k="999")
    assert at.selectbox(key="w.explore_split").value == "all"
    assert at.slider(key="w.explore_k").value == 8
    at.session_state[IMAGE] = 10**6  # e.g. left from a bigger dataset
    at.session_state[SELECTION] = [3, 10**6]
    at.run()
    assert not at.exception, at.exception
    assert at.session_state[IMAGE] == 0
    assert at.session_state[SELECTION] == [3]


@pytest.mark.browser
@pytest.mark.slow
def test_browser_lasso_selects_images_and_click_picks_neighbours(tmp_path):
    """Real chromium: click a point, see it become the current image (in the link too);
    draw a lasso on the plot, see the selection; screenshot."""
    import re

    import browser_util as bu

    why = bu.missing_requirements()
    if why:
        pytest.skip(why)
    with bu.StreamlitServer(home=tmp_path / "home") as srv, bu.browser() as b:
        page = b.new_page(viewport=bu.LAPTOP)
        bu.open_page(page, f"{srv.url}/Explore?dataset=digits&backbone=pixels&explore_method=pca",
                     timeout=240)
        bu.assert_no_exception(page, "Explore")
        plot = page.locator(".js-plotly-plot .nsewdrag").first
        plot.wait_for(timeout=60_000)
        # a click on a point makes it the current image (in the link and the Neighbours tab)
        point = page.locator(".js-plotly-plot .scatterlayer .trace").nth(3).locator("path.point")
        pb = point.nth(2).bounding_box()
        page.mouse.click(pb["x"] + pb["width"] / 2, pb["y"] + pb["height"] / 2)
        page.wait_for_function("() => location.search.includes('explore_image=')",
                               timeout=30_000)
        bu.wait_idle(page)
        bu.assert_no_exception(page, "Explore after a click")
        picked = re.search(r"explore_image=(\d+)", page.url).group(1)
        image_no = page.locator('[data-testid="stNumberInput"]').filter(has_text="Image #")
        assert image_no.locator("input").input_value() == picked
        # a lasso (from the toolbar: a drag pans) selects a region
        page.locator('.modebar-btn[data-title="Lasso Select"]').first.click()
        box = plot.bounding_box()
        cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["height"] / 4
        page.mouse.move(cx - r, cy - r)
        page.mouse.down()
        for x, y in [(cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]:
            page.mouse.move(x, y, steps=8)
        page.mouse.up()
        bu.wait_idle(page)
        page.get_by_role("tab").filter(has_text="Selection").click()
        page.get_by_text("images selected").first.wait_for(timeout=30_000)
        bu.assert_no_exception(page, "Explore after a lasso")
        bu.screenshot(page, bu.SCREENSHOTS / "explore-digits-lasso.png", full_page=True)
