"""tlviz.data: built-ins, folders, zips, splits, fingerprints, bad files, offline downloads."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import fixtures_bad_inputs as F
import numpy as np
import pytest
from conftest import make_image_folder
from PIL import Image

from tlviz import config
from tlviz.data import (
    HYMENOPTERA_URL,
    DatasetError,
    DatasetUnavailable,
    list_datasets,
    load_dataset,
    scan_folder,
    stratified_split,
)


@pytest.fixture
def offline(monkeypatch):
    """Any urllib request fails at once (a proxy on a closed port), even on a connected machine."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _zip_folder(folder: Path, dest: Path, top: str | None = None) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                rel = f.relative_to(folder).as_posix()
                zf.write(f, f"{top}/{rel}" if top else rel)
    return dest


# --------------------------------------------------------------------------- built-in


def test_digits_builtin():
    ds = load_dataset("digits")
    assert ds.classes == [str(k) for k in range(10)]
    assert len(ds) == 1797 and ds.split_names == ["train", "val", "test"]
    im = ds.load(0)
    assert im.mode == "RGB" and im.size == (8, 8)
    counts = ds.counts()
    assert list(counts.columns) == ["train", "val", "test"] and counts.values.sum() == len(ds)
    assert (counts.values > 0).all()  # stratified: every digit in every split


def test_list_datasets_says_what_is_here():
    infos = {i.name: i for i in list_datasets()}
    assert infos["digits"].available() == (True, "available offline")
    for name in ("hymenoptera", "cifar10", "cifar10-small"):
        assert name in infos
    ok, why = infos["cifar10"].available()
    assert not ok and "cifar-10-python.tar.gz" in why


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError, match="unknown dataset 'nope'.*digits"):
        load_dataset("nope")


# --------------------------------------------------------------------------- folders


def test_folder_without_splits_gets_seeded_stratified_split(tmp_path):
    root = make_image_folder(tmp_path / "f", n_classes=3, per_class=10)
    ds = scan_folder(root)
    assert ds.name == "f" and ds.classes == ["class0", "class1", "class2"] and len(ds) == 30
    assert not ds.skipped
    counts = ds.counts()
    assert list(counts.columns) == ["train", "val", "test"]
    assert (counts.values >= 1).all()  # every class in every split
    assert (counts["train"] > counts["val"]).all()
    again = scan_folder(root, seed=0)
    assert list(again.splits) == list(ds.splits) and again.sources == ds.sources
    other = scan_folder(root, seed=1)
    assert list(other.splits) != list(ds.splits)
    assert (other.counts().values == counts.values).all()  # same sizes, other images


def test_stratified_split_too_few_images_stay_in_train():
    splits, warnings = stratified_split(np.array([0, 0, 1, 1, 1, 1, 1]), seed=0)
    assert list(splits[:2]) == ["train", "train"]
    assert set(splits[2:]) == {"train", "val", "test"}
    assert len(warnings) == 1 and "class 0" in warnings[0]


def test_folder_with_split_folders(tiny_split_folder):
    ds = load_dataset(tiny_split_folder)
    assert ds.split_names == ["train", "val"]
    assert len(ds.indices("train")) == 24 and len(ds.indices("val")) == 24
    assert ds.ensure_val() is ds
    assert all("/train/" in ds.path(int(i)) for i in ds.indices("train"))


def test_validation_folder_is_an_alias_of_val(tmp_path):
    root = make_image_folder(tmp_path / "alias", per_class=4, splits=("training", "validation"))
    ds = scan_folder(root)
    assert ds.split_names == ["train", "val"]
    assert len(ds.indices("val")) == 8


def test_ensure_val_holds_out_part_of_train(tmp_path):
    root = make_image_folder(tmp_path / "tt", per_class=10, splits=("train", "test"))
    ds = scan_folder(root).ensure_val(seed=3)
    assert ds.split_names == ["train", "val", "test"]
    assert len(ds.indices("test")) == 20
    assert set(ds.labels[ds.indices("val")]) == {0, 1}
    assert any("held out as val" in w for w in ds.warnings)


@pytest.mark.parametrize("top", [None, "mydata"])
def test_zip_of_a_folder_loads_like_the_folder(tmp_path, top):
    folder = make_image_folder(tmp_path / "src", per_class=5, splits=("train", "val"))
    z = _zip_folder(folder, tmp_path / "pets.zip", top)
    ds = load_dataset(str(z))
    ref = scan_folder(folder)
    assert ds.name == "pets" and ds.classes == ref.classes
    assert ds.counts().equals(ref.counts())
    assert ds.fingerprint == ref.fingerprint  # same bytes, same labels
    assert ds.load(0).size == (40, 40)
    assert load_dataset(str(z)).sources == ds.sources  # extracted once, then reused


def test_bad_zip_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="slip.zip"):
        load_dataset(F.make_zip_slip(tmp_path))
    with pytest.raises(DatasetError, match="not a zip"):
        load_dataset(F.make_not_zip(tmp_path))


def test_missing_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="is not a folder"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no readable images"):
        scan_folder(tmp_path / "empty")


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_stable_when_nothing_changes(tiny_folder):
    a = scan_folder(tiny_folder).fingerprint
    assert scan_folder(tiny_folder).fingerprint == a
    assert scan_folder(tiny_folder, seed=5).fingerprint == a  # splits do not change features
    f = next(tiny_folder.rglob("*.png"))
    data = f.read_bytes()
    f.write_bytes(data)  # rewritten, same content: new mtime, same fingerprint
    assert scan_folder(tiny_folder).fingerprint == a


def test_fingerprint_changes_with_one_byte(tmp_path):
    root = make_image_folder(tmp_path / "bmp", per_class=3, fmt="bmp")
    a = scan_folder(root).fingerprint
    f = root / "class1" / "img001.bmp"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # one bit of one pixel (BMP is uncompressed: still a valid image)
    f.write_bytes(bytes(data))
    ds = scan_folder(root)
    assert not ds.skipped and ds.fingerprint != a


def test_fingerprint_changes_with_a_label(tiny_folder):
    a = scan_folder(tiny_folder).fingerprint
    shutil.move(tiny_folder / "class0" / "img000.png", tiny_folder / "class1" / "moved.png")
    assert scan_folder(tiny_folder).fingerprint != a


# --------------------------------------------------------------------------- bad files


def test_unreadable_files_are_skipped_with_a_reason(tiny_folder):
    cls = tiny_folder / "class0"
    bad = [F.make_truncated_jpeg(cls), F.make_zero_byte(cls), F.make_text_as_jpg(cls),
           F.make_html_as_png(cls), F.make_huge_png(cls)]
    (cls / "readme.txt").write_text("hello")
    (tiny_folder / "stray.png").write_bytes(b"")
    F.make_gif(cls)  # a valid GIF loads
    ds = scan_folder(tiny_folder)
    reasons = dict(ds.skipped)
    for p in [*bad, cls / "readme.txt", tiny_folder / "stray.png"]:
        assert str(p) in reasons and reasons[str(p)], p
    assert "0 bytes" in reasons[str(cls / "empty.jpg")]
    assert "not an image file" in reasons[str(cls / "readme.txt")]
    assert "not inside a class folder" in reasons[str(tiny_folder / "stray.png")]
    assert len(ds) == 25  # 24 good PNGs and the GIF
    assert all(ds.load(i).mode == "RGB" for i in range(len(ds)))


def test_class_with_only_bad_files_is_left_out_with_a_warning(tiny_folder):
    F.make_zero_byte(tiny_folder / "ghost")
    ds = scan_folder(tiny_folder)
    assert ds.classes == ["class0", "class1"]
    assert any("'ghost'" in w for w in ds.warnings)


def test_duplicate_across_splits_warns_of_leakage(tiny_split_folder):
    src = tiny_split_folder / "train" / "class0" / "img000.png"
    shutil.copy(src, tiny_split_folder / "val" / "class0" / "copy.png")
    ds = scan_folder(tiny_split_folder)
    assert any(w.startswith("leakage") and "copy.png" in w for w in ds.warnings)


def test_in_memory_arrays_and_subset():
    ds = load_dataset("digits")
    sub = ds.subset([5, 1, 0])
    assert len(sub) == 3 and list(sub.labels) == [int(ds.labels[i]) for i in (5, 1, 0)]
    assert np.array_equal(np.asarray(sub.load(0))[..., 0], np.asarray(ds.load(5))[..., 0])
    assert sub.fingerprint != ds.fingerprint
    assert ds.path(3) == "digits[3]"


# --------------------------------------------------------------------------- downloadable, offline


def test_hymenoptera_absent_names_the_file_and_the_folder(monkeypatch, offline):
    monkeypatch.delenv("TLVIZ_DATA_DIR", raising=False)
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("hymenoptera")
    msg = str(e.value)
    assert HYMENOPTERA_URL in msg and str(config.downloads_dir()) in msg
    with pytest.raises(DatasetUnavailable) as e:  # download=True: the network fails fast
        load_dataset("hymenoptera", download=True)
    msg = str(e.value)
    assert "could not download" in msg and HYMENOPTERA_URL in msg
    assert str(config.downloads_dir()) in msg
    assert not list(config.downloads_dir().glob("*.part"))  # no half file left behind


@pytest.mark.parametrize("name, file", [("cifar10", "cifar-10-python.tar.gz"),
                                        ("flowers102", "102flowers.tgz")])
def test_torchvision_dataset_offline_names_the_file_and_the_folder(offline, name, file):
    folder = str(config.downloads_dir() / name)
    for download in (False, True):
        with pytest.raises(DatasetUnavailable) as e:
            load_dataset(name, download=download)
        assert file in str(e.value) and folder in str(e.value)


def test_save_user_dataset_round_trip(tmp_path):
    import io

    def png(color):
        buf = io.BytesIO()
        Image.new("RGB", (20, 20), color).save(buf, "PNG")
        return buf.getvalue()

    from tlviz.data import save_user_dataset

    root = save_user_dataset("my webcam", {"thumb up": [png("red")] * 3, "thumb down": [png("blue")] * 3})
    infos = {i.name: i for i in list_datasets()}
    assert root.name in infos and infos[root.name].kind == "user"
    ds = load_dataset(root.name)
    assert sorted(ds.classes) == sorted(p.name for p in root.iterdir()) and len(ds) == 6
