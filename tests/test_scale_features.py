"""Features-only sets (tlviz synth-features): listed and opened by name, their features a
cache hit for the ``stored`` backbone, and the Embedding page's large map (a datashader
density image of every point under a stratified sample of interactive dots)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder

from tlviz import cli
from tlviz.backbones import STORED
from tlviz.data import list_datasets, load_named
from tlviz.embed import embed
from tlviz.errors import BadInput
from tlviz.synth import is_feature_set, make_feature_set

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("datashader", reason="datashader is not installed (requirements-scale.txt)")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _length(v) -> int:
    """Points in a plotly JSON array (a list, or a typed array: base64 bytes)."""
    if isinstance(v, dict):
        import base64

        return len(base64.b64decode(v["bdata"])) // np.dtype(v["dtype"]).itemsize
    return len(v)


def test_a_features_only_set_is_listed_opened_and_served_from_the_cache(home, tmp_path, capsys):
    src = make_image_folder(tmp_path / "src", n_classes=3, per_class=10, size=32)
    assert cli.main(["synth-features", "--name", "synth-t", "--n", "5000", "--dataset", str(src),
                     "--backbone", "tiny_random", "--dim", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"] == 5000
    info = next(i for i in list_datasets() if i.name == "synth-t")
    assert info.kind == "features" and info.available()[0]
    ds = load_named("synth-t")
    assert len(ds) == 5000 and is_feature_set(ds) and ds.num_classes == 3
    assert np.asarray(ds.load(7)).shape == (32, 32, 3)  # the source image's thumbnail
    emb = embed(ds, STORED)
    assert emb.from_cache and emb.features.shape == (5000, 8) and emb.valid.all()
    src_emb = embed(load_named("synth-t"), STORED)
    np.testing.assert_array_equal(src_emb.features, emb.features)
    with pytest.raises(BadInput):
        embed(ds, STORED, cache=False)  # no network behind stored features


def test_the_map_page_draws_a_density_layer_and_sampled_dots_beyond_the_limit(home, tmp_path,
                                                                             monkeypatch):
    from streamlit.testing.v1 import AppTest

    src = make_image_folder(tmp_path / "src2", n_classes=3, per_class=8, size=32)
    make_feature_set("synth-big", 3000, str(src), "tiny_random", dim=6)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"dataset": "synth-big", "backbone": "tiny_random", "method": "pca"})
    at.run()
    import ui.embedmap

    monkeypatch.setattr(ui.embedmap, "LARGE", 1000)  # the page's limit, lowered for the test
    at.switch_page("pages/3_Embedding_space.py").run()
    assert not at.exception, at.exception
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    images = fig["layout"]["images"]
    assert len(images) == 1 and images[0]["source"].startswith("data:image/png;base64,")
    assert images[0]["layer"] == "below"
    dots = sum(_length(t["x"]) for t in fig["data"] if t.get("x") is not None)
    assert dots == 1000
    text = " ".join(c.value for c in at.caption)
    assert "All 3,000 points drawn as a density image" in text
    assert "features-only set of 3,000" in text
    whole = images[0]

    # zoom into a region (what the button does with a box drawn on the chart): the density
    # image is redrawn for that region and the dots re-sampled from the points inside it
    x0, x1 = float(whole["x"]), float(whole["x"] + whole["sizex"] * 0.3)
    y1, y0 = float(whole["y"]), float(whole["y"] - whole["sizey"])
    box = (x0, x1, y0, y1)
    at.session_state["emb_plot_0.zoom"] = {"view": ("synth-big", STORED, "pca", None, 0),
                                           "box": box}
    at.run()
    assert not at.exception, at.exception
    zoomed = json.loads(at.get("plotly_chart")[0].proto.spec)
    img = zoomed["layout"]["images"][0]
    assert img["x"] == pytest.approx(x0) and img["sizex"] == pytest.approx(x1 - x0)
    assert img["source"] != whole["source"]
    assert zoomed["layout"]["xaxis"]["range"] == pytest.approx([x0, x1])
    dots = sum(_length(t["x"]) for t in zoomed["data"] if t.get("x") is not None)
    caption = next(c.value for c in at.caption if c.value.startswith("Zoomed into"))
    n_in = int(caption.split(": ")[1].split(" of ")[0].replace(",", ""))
    assert 0 < n_in < 3000 and dots == min(n_in, 1000), (n_in, dots)
    assert next(b for b in at.button if b.key == "emb_plot_0.zoom_in").disabled  # no region drawn
    at.button(key="emb_plot_0.zoom_out").click().run()  # back to the whole map
    assert any("All 3,000 points drawn" in c.value for c in at.caption)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)  # 3D: an even sample
    at.query_params.update({"dataset": "synth-big", "backbone": "tiny_random", "method": "pca",
                            "dim": "3"})
    at.run()
    at.switch_page("pages/3_Embedding_space.py").run()
    assert not at.exception, at.exception
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "images" not in fig["layout"]
    assert sum(_length(t["x"]) for t in fig["data"] if t.get("x") is not None) == 1000
    assert any("3D: 1,000 of 3,000 points drawn" in c.value for c in at.caption)


def test_explore_opens_a_large_features_only_set(home, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    src = make_image_folder(tmp_path / "src3", n_classes=3, per_class=8, size=32)
    make_feature_set("synth-ex", 3000, str(src), "tiny_random", dim=6)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"dataset": "synth-ex", "backbone": "tiny_random",
                            "explore_method": "pca"})
    at.run()
    import ui.embedmap

    monkeypatch.setattr(ui.embedmap, "LARGE", 1000)
    at.switch_page("pages/4_Explore.py").run()
    assert not at.exception, at.exception
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(fig["layout"]["images"]) == 1
    dots = sum(_length(t["x"]) for t in fig["data"] if t.get("x") is not None)
    assert 1000 <= dots <= 1000 + 2 * 9  # the sample, plus the ringed image and neighbours
    assert any("All 3,000 images as a density image" in c.value for c in at.caption)


def test_a_drawn_box_or_lasso_gives_the_region_to_zoom_into():
    from ui.embedmap import region_of

    assert region_of({"box": [{"x": [3, 1], "y": [0.5, -2]}]}) == (1.0, 3.0, -2.0, 0.5)
    assert region_of({"box": [], "lasso": [{"x": [0, 2, 1], "y": [0, 0, 4]}]}) == (0, 2, 0, 4)
    for junk in ({}, {"box": [{"x": [1, 1], "y": [0, 2]}]}, {"box": [{"x": ["a", "b"], "y": [0, 1]}]},
                 {"lasso": [{"x": [0, float("nan")], "y": [0, 1]}]}, {"box": [{"x": [0]}]},
                 {"box": ["not a shape"]}, {"points": [{"x": 1, "y": 2}]}):
        assert region_of(junk) is None, junk


def test_zooming_re_samples_the_dots_from_the_points_inside_the_region(monkeypatch):
    import ui.embedmap as em

    monkeypatch.setattr(em, "LARGE", 100)
    rng = np.random.default_rng(0)
    coords, labels = rng.uniform(0, 10, (2000, 2)), rng.integers(0, 4, 2000)
    whole = em.zoom_pick(labels, coords, None, seed=0)
    share = np.bincount(labels) * 100 / len(labels)  # each class keeps its share
    assert len(whole) == 100 and np.abs(np.bincount(labels[whole]) - share).max() <= 1
    box = (0.0, 2.0, 0.0, 2.0)  # about 80 points: all of them drawn
    inside = em.inside(coords, box)
    assert 0 < len(inside) <= 100
    assert np.array_equal(em.zoom_pick(labels, coords, box, seed=0), inside)
    big = (0.0, 6.0, 0.0, 6.0)  # about 720 points: 100 of them, each inside
    pick = em.zoom_pick(labels, coords, big, seed=0)
    assert len(pick) == 100 and set(pick) <= set(em.inside(coords, big))
