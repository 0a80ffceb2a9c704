"""AppTest of the Embedding space map's views against the real tlviz: images as points,
colour by neighbours kept, trustworthiness beside the metrics, the hover component's
payload (sprite sheets as media URLs, no file path) and the URL choices' validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
EMB = "pages/3_Embedding_space.py"


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def tiny(fresh_home) -> Path:
    return make_image_folder(fresh_home / "datasets" / "tiny", n_classes=3, per_class=10, size=32)


def open_map(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"dataset": "tiny", "backbone": "tiny_random",
                            "compare": "none", "method": "pca", **query})
    at.run()
    at.switch_page(EMB).run()
    assert not at.exception, at.exception
    return at


def figure(at: AppTest, n: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[n].proto.spec)


def test_images_as_points_draw_every_image_of_a_small_map(tiny):
    at = open_map(points="images")
    fig = figure(at)
    images = fig["layout"]["images"]
    assert len(images) == 30 and all(i["source"].startswith("data:image/jpeg;base64,") for i in images)
    assert fig["layout"]["showlegend"] is False
    dots = open_map()
    assert "images" not in figure(dots)["layout"]


def test_colour_by_neighbours_kept_matches_the_library_and_trust_is_shown(tiny):
    from tlviz.data import load_dataset
    from tlviz.embed import embed
    from tlviz.metrics import projection_quality
    from tlviz.project import project

    at = open_map(color_by="kept")
    fig = figure(at)
    trace = fig["data"][0]
    assert trace["marker"]["cmin"] == 0 and trace["marker"]["cmax"] == 10
    emb = embed(load_dataset(str(tiny)), "tiny_random")
    idx = emb.indices(None)
    coords = project(np.asarray(emb.features[idx], np.float32), method="pca", dim=2, seed=0)
    q = projection_quality(emb.features[idx], coords, k=10)
    by_index = {row[0]: row[4] for row in trace["customdata"]}  # [index, label, name, split, kept]
    assert [by_index[int(i)] for i in idx] == q["kept"].tolist()
    trust = next(m.value for m in at.metric if m.label == "trust")
    assert trust == f"{q['trustworthiness']:.2f}"


def test_hover_payload_is_media_urls_and_the_figure_carries_raw_text(tiny):
    at = open_map()
    comp = at.get("bidi_component")
    assert len(comp) == 1
    data = json.loads(comp[0].proto.json)
    assert data["target"] == "emb_map_0" and data["n"] == 30 and data["tile"] >= 96
    # media-file URLs (AppTest serves them under /mock/media/), one sheet of 64 tiles
    assert len(data["sheets"]) == 1 and all("/media/" in u and u.endswith(".jpg") for u in data["sheets"])
    assert str(tiny) not in json.dumps(data)  # no file path reaches the browser
    trace = figure(at)["data"][0]
    assert trace["hoverinfo"] == "none" and len(trace["customdata"][0]) == 4
    three_d = open_map(dim="3")
    assert not three_d.get("bidi_component")  # 3D keeps plotly's own hover text


def test_map_choices_from_a_link_are_validated(tiny):
    at = open_map(points="<img src=x>", color_by="../etc")
    assert at.session_state["s.points"] == "dots" and at.session_state["s.color_by"] == "class"
    assert "images" not in figure(at)["layout"]


def test_bigger_maps_estimate_trust_on_a_sample_and_still_colour_every_point(tiny, monkeypatch):
    from ui import cache

    monkeypatch.setattr(cache, "TRUST_SAMPLE", 12)  # 30 images: a "bigger" map
    at = open_map(color_by="kept")
    trust = next(m for m in at.metric if m.label == "trust")
    assert "estimated on 12 of its images" in trust.proto.help
    assert 0 < float(trust.value) <= 1
    trace = figure(at)["data"][0]
    assert len(trace["customdata"]) == 30 and all(0 <= row[4] <= 10 for row in trace["customdata"])


def _array(v) -> np.ndarray:
    """A plotly JSON array: a list, or {"dtype", "bdata"} (base64 typed array)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def test_colour_by_a_run_shows_where_its_head_is_right_and_rings_wrong_val_images(tiny):
    from tlviz.data import load_dataset
    from tlviz.runs import Ledger
    from tlviz.train import TrainConfig, load_predictor, train

    none_yet = open_map(color_by="correct")
    assert any("train one" in c.value for c in none_yet.caption)  # no run: class colours
    ds = load_dataset(str(tiny))
    r = train(TrainConfig(dataset="tiny", backbone="tiny_random", head="knn",
                          head_params={"n_neighbors": 7}), dataset=ds)
    at = open_map(color_by="correct", color_run=str(r.run_id))
    assert at.selectbox(key="w.color_run").value == r.run_id
    trace = figure(at)["data"][0]
    bar = trace["marker"]["colorbar"]
    assert bar["ticktext"] == ["wrong", "right"]
    idx = np.array([row[0] for row in trace["customdata"]], dtype=int)
    pred = load_predictor(Ledger(), r.run_id).predict([ds.load(int(i)) for i in idx]).ravel()
    np.testing.assert_array_equal(_array(trace["marker"]["color"]), pred == ds.labels[idx])
    ringed = [t for t in figure(at)["data"] if t.get("name") == "selected"]
    wrong_val = {int(i) for i, p in zip(idx, pred) if p != ds.labels[i] and ds.splits[i] == "val"}
    got = {int(row[0]) for row in ringed[0]["customdata"]} if ringed else set()
    assert got == wrong_val
    conf = open_map(color_by="confidence", color_run=str(r.run_id))
    values = _array(figure(conf)["data"][0]["marker"]["color"])
    assert ((values > 0) & (values <= 1)).all()


def test_train_without_the_selection_opens_train_with_a_what_if(tiny):
    from tlviz.data import load_dataset

    ds = load_dataset(str(tiny))
    at = open_map()
    picked = [int(i) for i in ds.indices("train")[:3]]
    at.session_state["s.selection"] = picked
    at.run()
    at.button(key="emb_what_if").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train.what_if"] == {"dataset": "tiny", "indices": picked}
    assert any("What-if run" in i.value for i in at.info)  # now on the Train page
