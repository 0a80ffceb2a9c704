"""AppTest tests of Home, Data, Augmentation and Embedding space against the real tlviz.

Tiny generated image folders and the hidden ``tiny_random`` backbone keep them fast; each
test gets its own TLVIZ_HOME (empty ledger, caches and user datasets).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import fixtures_bad_inputs as bad
import numpy as np
import pytest
from conftest import make_image_folder
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlviz.metrics import wilson_interval
from tlviz.runs import Ledger

ROOT = Path(__file__).resolve().parents[1]
DATA, AUG, EMB = "pages/1_Data.py", "pages/2_Augmentation.py", "pages/3_Embedding_space.py"


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def tiny(fresh_home) -> Path:
    """Three colour classes, 10 images each, no split folders (a seeded split is made), kept
    as the user dataset named "tiny": the web app opens datasets by name, never by path."""
    return make_image_folder(fresh_home / "datasets" / "tiny", n_classes=3, per_class=10, size=32)


def open_app(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """All markdown, caption, warning, error and info text of the page, joined."""
    parts = [*at.markdown, *at.caption, *at.warning, *at.error, *at.info, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


def jpeg(color, size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(folder.rglob("*.png")):
            z.write(f, f.relative_to(folder.parent))
    return buf.getvalue()


# ----------------------------------------------------------------------------- structure


def test_app_declares_every_page_file_in_menu_order():
    from ui import nav

    assert [p.path for p in nav.PAGES] == sorted(
        str(f.relative_to(ROOT)) for f in (ROOT / "pages").glob("*.py"))
    assert [p.title for p in nav.PAGES] == ["Home", "Data", "Augmentation", "Embedding space",
                                           "Explore", "Sweeps & morphs", "Train", "Compare",
                                           "Predict"]
    # the URLs of Streamlit's pages/ convention, kept: links and bookmarks still work
    assert [p.url_path for p in nav.PAGES] == ["", "Data", "Augmentation", "Embedding_space",
                                              "Explore", "Sweeps", "Train", "Compare", "Predict"]
    assert all(p.icon.startswith(":material/") for p in nav.PAGES)  # no emoji font needed


def _calls(path: Path, name: str) -> int:
    import ast

    tree = ast.parse(path.read_text())
    return sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == name for n in ast.walk(tree))


def test_app_py_alone_sets_the_page_config_and_draws_the_sidebar():
    import ast

    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]
    assert {f.name: _calls(f, "set_page_config") for f in files if _calls(f, "set_page_config")} \
        == {"app.py": 1}
    assert _calls(ROOT / "app.py", "navigation") == 1 and _calls(ROOT / "app.py", "drawn") == 1
    for f in (ROOT / "pages").glob("*.py"):
        assert _calls(f, "render") == 0 and _calls(f, "choices") == 1, f.name
    for f in files:  # Streamlit's public API only
        for node in ast.walk(ast.parse(f.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [m for m in mods if m.startswith("streamlit.")], (f.name, mods)


def test_page_files_stay_thin():
    for f in (ROOT / "pages").glob("*.py"):
        assert len(f.read_text().splitlines()) <= 200, f.name


# ----------------------------------------------------------------------------- Home + sidebar


def test_home_tells_the_story_with_real_runs(tiny):
    at = open_app(dataset=tiny.name, backbone="tiny_random")
    assert at.title[0].value == "Transfer learning, seen"
    assert [m.value for m in at.metric] == ["—", "—", "—"]  # no run yet on this dataset
    offline = at.dataframe[0].value
    assert "digits" in set(offline["dataset"])
    at.button(key="run_story").click().run()
    assert not at.exception, at.exception
    runs = Ledger().list_runs()
    assert sorted(runs["backbone"]) == ["pixels", "tiny_random"]
    assert set(runs["dataset"]) == {tiny.name} and (runs["status"] == "completed").all()
    shown = [m.value for m in at.metric]
    assert shown[0].endswith("%") and shown[1].endswith("%") and shown[2] == "—"
    best_pixels = runs.loc[runs["backbone"] == "pixels", "val_accuracy"].iloc[0]
    assert shown[0] == f"{best_pixels:.1%}"
    # each best accuracy carries its 95% Wilson interval on the val images
    n = int(runs.loc[runs["backbone"] == "pixels", "n_val"].iloc[0])
    lo, hi = wilson_interval(round(best_pixels * n), n)
    assert f"95% CI {lo:.1%}–{hi:.1%} · n={n}" in [c.value for c in at.caption]


def test_sidebar_choices_follow_the_user_across_pages_and_into_the_url():
    at = open_app()
    assert at.selectbox(key="w.dataset").value == "digits"
    at.selectbox(key="w.backbone").set_value("pixels").run()
    at.toggle(key="w.presenter").set_value(True).run()
    assert at.query_params["backbone"] == "pixels" and at.query_params["presenter"] == "1"
    at.switch_page(DATA).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="w.backbone").value == "pixels"
    assert at.toggle(key="w.presenter").value is True
    assert not [s for s in at.slider if s.key == "w.data_n"]  # advanced control hidden


def test_a_stale_link_falls_back_to_defaults_without_a_traceback():
    at = open_app(DATA, dataset="gone-dataset", backbone="no-such-net", data_n="99")
    assert at.selectbox(key="w.dataset").value == "digits"
    assert at.selectbox(key="w.backbone").value == "mobilenet_v2"
    assert at.slider(key="w.data_n").value == 8


def test_unavailable_dataset_says_what_to_do():
    at = open_app(EMB, dataset="oxford-pets")
    assert not at.exception
    assert any("not on this machine" in w.value for w in at.warning)


# ----------------------------------------------------------------------------- Data


def test_data_page_shows_samples_counts_and_skipped_files(tiny):
    bad.make_text_as_jpg(tiny / "class0")  # a file that is not an image
    at = open_app(DATA, dataset=tiny.name, data_n="4")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["images"] == "30" and metrics["classes"] == "3"
    assert sum(int(metrics[s]) for s in ("train", "val", "test")) == 30
    rows = at.image
    assert len(rows) == 3 and all(len(r.proto.imgs) == 4 for r in rows)  # 4 samples per class
    skipped = at.dataframe[-1].value
    assert list(skipped.columns) == ["file", "reason"] and len(skipped) == 1
    assert skipped["file"].iloc[0].startswith("class0/")
    at.button_group(key="w.data_split").set_value("val").run()
    assert not at.exception and at.query_params["data_split"] == "val"


def test_zip_upload_becomes_a_dataset_that_can_be_reopened(tiny):
    at = open_app(DATA)
    at.file_uploader(key="data_zip").upload("my tiny.zip", zip_of(tiny), "application/zip").run()
    at.button(key="data_zip_open").click().run()
    assert not at.exception, at.exception
    chosen = at.selectbox(key="w.dataset").value
    assert chosen.startswith("my tiny") and chosen in at.selectbox(key="w.dataset").options
    assert {m.label: m.value for m in at.metric}["classes"] == "3"
    again = open_app(DATA, dataset=chosen)  # a new session reopens it from the link
    assert {m.label: m.value for m in again.metric}["images"] == "30"


def test_bad_zip_upload_shows_an_error_not_a_traceback(tmp_path):
    at = open_app(DATA)
    slip = bad.make_zip_slip(tmp_path).read_bytes()
    at.file_uploader(key="data_zip").upload("evil.zip", slip, "application/zip").run()
    at.button(key="data_zip_open").click().run()
    assert not at.exception
    assert at.error and "evil" in at.error[0].value and "refused" in at.error[0].value
    assert at.selectbox(key="w.dataset").value == "digits"


def test_webcam_dataset_is_saved_and_selected():
    at = open_app(DATA)
    at.text_input(key="cam_name_0").set_value("thumbs up")
    at.text_input(key="cam_name_1").set_value("thumbs down")
    for k, color in ((0, (200, 30, 30)), (1, (30, 30, 200))):
        at.camera_input(key=f"cam_{k}").upload("photo.jpg", jpeg(color)).run()
        at.camera_input(key=f"cam_{k}").upload("photo.jpg", jpeg(color, (48, 40))).run()
    assert "2 photo(s)" in texts(at)
    at.text_input(key="cam_ds_name").set_value("gestures")
    at.button(key="cam_save").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="w.dataset").value == "gestures"
    assert {m.label: m.value for m in at.metric}["images"] == "4"


def test_webcam_save_needs_two_classes():
    at = open_app(DATA)
    at.camera_input(key="cam_0").upload("photo.jpg", jpeg((200, 30, 30))).run()
    at.button(key="cam_save").click().run()
    assert not at.exception and "at least two classes" in at.error[0].value


# ----------------------------------------------------------------------------- Augmentation


def test_augmentation_grid_and_code_follow_the_controls(tiny):
    at = open_app(AUG, dataset=tiny.name)
    code = at.code[0].value
    assert "RandomAffine(degrees=40.0" in code and "RandomHorizontalFlip" in code  # book preset
    at.button(key="aug_none").click().run()
    assert "Random" not in at.code[0].value  # nothing random left
    assert at.slider(key="w.aug_rotation").value == 0.0
    at.slider(key="w.aug_rotation").set_value(30.0).run()
    at.checkbox(key="w.aug_vflip").check().run()
    assert not at.exception, at.exception
    code = at.code[0].value
    assert "degrees=30.0" in code and "RandomVerticalFlip" in code
    assert at.query_params["aug_rotation"] == "30.0"
    at.button(key="aug_redraw").click().run()
    assert at.query_params["aug_seed"] == "1"
    assert [len(i.proto.imgs) for i in at.image] == [1, 12]  # the original, then the grid
    first = at.image[0].proto.imgs[0].url
    at.button(key="aug_another").click().run()
    assert at.query_params["aug_pick"] == "1" and at.image[0].proto.imgs[0].url != first


def test_augmentation_link_with_out_of_range_value_falls_back(tiny):
    at = open_app(AUG, dataset=tiny.name, aug_rotation="500", aug_fill="spiral")
    assert at.slider(key="w.aug_rotation").value == 40.0
    assert at.selectbox(key="w.aug_fill").value == "nearest"


# ----------------------------------------------------------------------------- Embedding space


def _metrics(at: AppTest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in at.metric:
        out.setdefault(m.label, []).append(m.value)
    return out


def test_embedding_page_projects_two_backbones_with_metrics(tiny):
    at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="bogus", dim="7")
    assert at.selectbox(key="w.compare").value == "pixels"  # beside the sidebar's backbone
    assert at.button_group(key="w.method").value == "umap"  # stale link values fall back
    assert at.button_group(key="w.dim").value == 2
    assert len(at.get("plotly_chart")) == 2
    m = _metrics(at)
    assert len(m["silhouette"]) == 2 and len(m["kNN-5 acc."]) == 2
    assert all(-1 <= float(v) <= 1 for v in m["silhouette"])
    assert all(v.endswith("%") for v in m["kNN-5 acc."])
    for method in ("pca", "tsne"):
        at.button_group(key="w.method").set_value(method).run()
        assert not at.exception, at.exception
        assert len(at.get("plotly_chart")) == 2
    at.button_group(key="w.dim").set_value(3).run()
    assert not at.exception and at.query_params["dim"] == "3"


def test_embedding_selection_shows_the_images(tiny):
    at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="pca")
    at.session_state["s.selection"] = [0, 11, 25]  # what a lasso in the browser stores
    at.run()
    assert "3 selected image(s)" in texts(at)
    at.button(key="emb_clear").click().run()
    assert "selected image(s)" not in texts(at)


def test_embedding_page_reports_missing_weights(tiny):
    from tlviz.backbones import get_backbone_spec

    if get_backbone_spec("resnet18").available()[0]:
        pytest.skip("resnet18 weights are on this machine: nothing is missing")
    at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="pca", compare="resnet18")
    assert not at.exception
    compare = at.selectbox(key="w.compare")
    assert "resnet18" not in compare.options and compare.value == "pixels"  # not offered
    assert "resnet18" in compare.help and "no weights" in compare.help
    assert len(at.get("plotly_chart")) == 2
    # the sidebar's backbone without weights: one message, no map
    at = open_app(EMB, dataset=tiny.name, backbone="resnet18", method="pca")
    assert not at.exception and len(at.get("plotly_chart")) == 0
    assert sum("resnet18" in e.value and "weights" in e.value for e in at.error) == 1


def test_embedding_features_match_the_library(tiny):
    """The page's numbers are tlviz's numbers (no re-implementation in the page)."""
    from tlviz.data import load_dataset
    from tlviz.embed import embed
    from tlviz.metrics import separation_report

    at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="pca", compare="none")
    emb = embed(load_dataset(str(tiny)), "tiny_random")
    X, y = emb.split(None)
    expected = separation_report(X, y)
    assert _metrics(at)["silhouette"] == [f"{expected['silhouette']:.2f}"]
    assert np.isfinite(expected["scatter_ratio"])


# ----------------------------------------------------------------------------- figures


def test_embedding_figure_maps_points_back_to_dataset_rows_and_escapes_names():
    from tlviz.plots import embedding_figure

    coords = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 1, 0, 1, 1, 0])
    fig = embedding_figure(coords, labels, ["<b>cats</b>", "dogs"], indices=[10, 11, 12, 13, 14, 15],
                           names=[f"f{i}.jpg" for i in range(6)], highlight=[13, 99])
    cats, dogs, ring = fig.data
    assert cats.customdata[:, 0].tolist() == [10, 12, 15] and list(cats.text) == ["f0.jpg", "f2.jpg", "f5.jpg"]
    assert dogs.customdata[:, 0].tolist() == [11, 13, 14]
    assert "<b>" not in cats.name and "&lt;b&gt;cats" in cats.hovertemplate
    assert ring.customdata[:, 0].tolist() == [13] and list(ring.x) == [6.0]  # unknown 99 ignored
    assert cats.marker.color != dogs.marker.color
    fig3 = embedding_figure(np.zeros((3, 3)), np.array([0, 0, 1]), ["a", "b"])
    assert fig3.data[0].type == "scatter3d"


def test_embedding_selection_comes_back_from_a_shared_link(tiny):
    at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="pca", selection="3,7")
    assert not at.exception and "2 selected image(s)" in texts(at)
    assert not at.toast  # a good link: no notice
    for link in ("3,999", "3,x", ",".join(map(str, range(70)))):  # out of range, text, too many
        at = open_app(EMB, dataset=tiny.name, backbone="tiny_random", method="pca", selection=link)
        assert not at.exception and "selected image(s)" not in texts(at)
