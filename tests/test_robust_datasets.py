"""Odd dataset shapes and the limits on user input: each case works or says what is wrong.

Empty classes, one class, a class with one image, classes missing from train, thousands
of classes, Unicode/emoji/HTML class names, the same image in two splits; the image-count
limit and the environment overrides of every limit.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import fixtures_bad_inputs as F
import numpy as np
import pytest
from conftest import make_image_folder
from PIL import Image

from tlviz import config
from tlviz.data import DatasetError, load_dataset, save_user_dataset, scan_folder
from tlviz.runs import Ledger
from tlviz.safeio import Limits, default_limits
from tlviz.train import TrainConfig, train


def _train(ds, tmp_path, head="knn"):
    led = Ledger(tmp_path / "runs.db")
    return train(TrainConfig(dataset=ds.name, backbone="pixels", head=head), dataset=ds,
                 ledger=led), led


def test_empty_class_folders_are_left_out_with_a_warning(tiny_folder):
    (tiny_folder / "empty").mkdir()
    (tiny_folder / "only-bad").mkdir()
    F.make_zero_byte(tiny_folder / "only-bad")
    ds = scan_folder(tiny_folder)
    assert ds.classes == ["class0", "class1"]
    assert "class 'empty' has no readable images and is left out" in ds.warnings
    assert "class 'only-bad' has no readable images and is left out" in ds.warnings


def test_a_single_class_warns_and_training_refuses_clearly(tmp_path):
    root = make_image_folder(tmp_path / "one", n_classes=1, per_class=6)
    ds = scan_folder(root)
    assert ds.classes == ["class0"]
    assert any("only one class ('class0')" in w for w in ds.warnings)
    led = Ledger(tmp_path / "runs.db")
    with pytest.raises(DatasetError, match="only one class.*'class0'.*at least two classes"):
        train(TrainConfig(dataset="one", backbone="pixels", head="logistic"), dataset=ds, ledger=led)
    assert led.list_runs().empty  # refused before anything was recorded


def test_no_train_split_warns_and_training_refuses(tmp_path):
    root = make_image_folder(tmp_path / "valonly", n_classes=2, per_class=3, splits=("val",))
    ds = scan_folder(root)
    assert "no train/ folder: nothing to train on" in ds.warnings
    with pytest.raises(DatasetError, match="no training images"):
        _train(ds, tmp_path)


def test_a_class_with_one_image_says_the_split_is_impossible(tiny_folder, tmp_path):
    (tiny_folder / "solo").mkdir()
    F.make_png(tiny_folder / "solo")
    ds = scan_folder(tiny_folder)
    assert ("class 'solo' has 1 image(s): too few for a stratified train/val/test split; "
            "all kept in train") in ds.warnings
    solo = ds.classes.index("solo")
    assert set(ds.splits[ds.labels == solo]) == {"train"}
    r, led = _train(ds, tmp_path)
    assert led.get_run(r.run_id)["status"] == "completed" and r.classes == ds.classes


def test_a_class_missing_from_train_is_named(tmp_path):
    root = make_image_folder(tmp_path / "s", n_classes=2, per_class=4, splits=("train", "val"))
    shutil.copytree(root / "val" / "class1", root / "val" / "newcomer")
    ds = scan_folder(root)
    assert any("1 class(es) have no training images ('newcomer')" in w for w in ds.warnings)


def test_thousands_of_classes(tmp_path):
    n = 1500
    root = tmp_path / "many"
    rng = np.random.default_rng(0)
    for k in range(n):
        d = root / f"c{k:04d}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), np.uint8)).save(d / f"{i}.png")
    ds = scan_folder(root)
    assert ds.num_classes == n and len(ds) == 2 * n
    # every class is too small for train/val/test: one summary warning, not 1,500
    small = [w for w in ds.warnings if "fewer than 3 images" in w]
    assert len(small) == 1 and small[0].startswith(f"{n} classes have fewer than 3 images")
    assert ds.counts().shape == (n, 1)
    val = ds.ensure_val()
    assert set(val.splits[val.labels == 7]) == {"train", "val"}
    r, led = _train(ds, tmp_path)
    assert np.asarray(led.get_run(r.run_id)["confusion"]).shape == (n, n)


NAMES = ["café", "🐱 cats", "👩‍🔬 scientists", "<script>alert(1)</script>", "a & b", "日本語",
         "<img src=x onerror=alert(1)>", "Ünïcödé"]


def test_unicode_emoji_and_html_class_names_survive_as_text(tmp_path):
    root = tmp_path / "names"
    for k, name in enumerate(NAMES):
        safe = name.replace("/", "∕")  # a folder name cannot hold "/"
        F.make_png(root / "train" / safe, name="a.png")
        F.make_png(root / "train" / safe, name="b.png")
        # the val copy decomposed, as macOS writes names: still the same class
        F.make_png(root / "val" / unicodedata.normalize("NFD", safe), name=f"v{k}.png")
    ds = scan_folder(root)
    expected = sorted(n.replace("/", "∕") for n in NAMES)
    assert ds.classes == expected  # exactly the text, NFC, nothing escaped or dropped
    assert all((ds.splits[ds.labels == k] == "val").sum() == 1 for k in range(len(NAMES)))
    assert list(ds.counts().index) == expected


def test_same_image_in_two_splits_warns_of_leakage(tmp_path):
    root = make_image_folder(tmp_path / "leak", n_classes=2, per_class=6, splits=("train", "val"))
    for i in range(5):
        shutil.copy(root / "train" / "class0" / f"img{i:03d}.png",
                    root / "val" / "class0" / f"copy{i}.png")
    ds = scan_folder(root)
    leaks = [w for w in ds.warnings if w.startswith("leakage")]
    assert "leakage: copy0.png is in val and also in train" in leaks
    assert leaks[-1] == "leakage: 5 images appear in more than one split in all"
    clean = scan_folder(make_image_folder(tmp_path / "clean", splits=("train", "val")))
    assert not [w for w in clean.warnings if w.startswith("leakage")]


# --------------------------------------------------------------------------- limits


def test_default_limits_are_sensible():
    lim = Limits()
    assert 10_000_000 <= lim.max_image_pixels <= 100_000_000
    assert lim.max_images >= 10_000 and lim.max_upload_bytes >= 100 * 2**20
    assert default_limits() == lim  # conftest sets no override


def test_dashboard_upload_cap_matches_the_library_limit():
    import tomllib

    cfg = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] * 2**20 == Limits().max_upload_bytes


@pytest.mark.parametrize("var,field,raw,want", [
    ("TLVIZ_MAX_IMAGES", "max_images", "123", 123),
    ("TLVIZ_MAX_IMAGE_PIXELS", "max_image_pixels", "1e6", 1_000_000),
    ("TLVIZ_MAX_UPLOAD_MB", "max_upload_bytes", "2", 2 * 2**20),
    ("TLVIZ_MAX_ZIP_MB", "max_zip_total_bytes", "3", 3 * 2**20),
    ("TLVIZ_MAX_IMAGES", "max_images", "lots", Limits().max_images),  # ignored, default kept
    ("TLVIZ_MAX_IMAGES", "max_images", "-5", Limits().max_images),
])
def test_limits_from_the_environment(monkeypatch, var, field, raw, want):
    monkeypatch.setenv(var, raw)
    assert getattr(default_limits(), field) == want


def test_too_many_images_in_a_folder_is_refused_clearly(tiny_folder, monkeypatch):
    monkeypatch.setenv("TLVIZ_MAX_IMAGES", "10")
    with pytest.raises(DatasetError, match=r"tiny has 24 images, above the limit of 10; use a "
                                           r"smaller subset or set TLVIZ_MAX_IMAGES"):
        load_dataset(tiny_folder)
    monkeypatch.setenv("TLVIZ_MAX_IMAGES", "24")
    assert len(load_dataset(tiny_folder)) == 24


def test_saved_user_datasets_check_their_images(monkeypatch):
    good = F.make_png(Path(config.home_dir()) / "gen").read_bytes()
    with pytest.raises(DatasetError, match=r"image 2 of class 'b': not an image"):
        save_user_dataset("refused webcam", {"a": [good, good], "b": [good, b"<html>"]})
    assert not list(config.user_datasets_dir().glob("*refused webcam*"))  # nothing half-written
    monkeypatch.setenv("TLVIZ_MAX_IMAGES", "3")
    with pytest.raises(DatasetError, match="too many images.*limit is 3"):
        save_user_dataset("webcam", {"a": [good, good], "b": [good, good]})
    monkeypatch.delenv("TLVIZ_MAX_IMAGES")
    ds = scan_folder(save_user_dataset("<b>web/cam</b>", {"🙂": [good] * 3, "😐": [good] * 3}))
    assert ds.classes == ["😐", "🙂"] and len(ds) == 6
    assert Path(ds.root).parent == config.user_datasets_dir()  # the name cannot escape


def test_data_page_shows_awkward_class_names_as_text(tmp_path, monkeypatch):
    """The Data page (AppTest) escapes class names: HTML stays text, nothing is rendered."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))  # a user dataset, opened by name
    root = make_image_folder(tmp_path / "home" / "datasets" / "weird", n_classes=3, per_class=4)
    names = ["<img src=x onerror=alert(1)>", "🐱 cats", "a_b *c* $x$"]
    for k, name in enumerate(names):
        (root / f"class{k}").rename(root / name)
    F.make_zero_byte(root / names[1])
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=120)
    at.query_params.update({"dataset": root.name, "backbone": "pixels"})
    at.run()
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    shown = [m for m in at.markdown if "images" in m.value]
    for name in names:
        md = [m for m in shown if name in m.value.replace("\\", "")]
        assert len(md) == 1, name
        assert not md[0].proto.allow_html
        assert all(f"\\{ch}" in md[0].value for ch in "<>*$_" if ch in name)  # escaped
    assert not [m for m in at.markdown if m.proto.allow_html and "onerror" in m.value]


def test_an_unreadable_data_folder_does_not_hide_the_built_ins(tmp_path, monkeypatch):
    from tlviz.data import list_datasets

    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setenv("TLVIZ_DATA_DIR", str(locked))
    monkeypatch.setattr(Path, "iterdir", _refuse(locked, Path.iterdir))
    names = [i.name for i in list_datasets()]
    assert "digits" in names


def _refuse(folder: Path, iterdir):
    """Path.iterdir that raises PermissionError for ``folder`` (root ignores chmod)."""
    def patched(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)
    return patched
