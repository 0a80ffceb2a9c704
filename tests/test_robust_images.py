"""Bad and awkward images inside a dataset folder, end to end: scan -> embed -> train.

Every file of the corpus (tests/fixtures_bad_inputs.py) is either loaded correctly (checked
by pixel values) or skipped and listed in ``ds.skipped`` with its reason; the rest embeds
and trains. Files that break *after* the scan are marked invalid at embed time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fixtures_bad_inputs as F
import numpy as np
import pytest
from conftest import make_image_folder

from tlviz.data import scan_folder
from tlviz.embed import embed
from tlviz.runs import Ledger
from tlviz.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on bad_exif_jpeg
WHITE, RED, GREEN = (255, 255, 255), (255, 0, 0), (0, 255, 0)


def _near(px, rgb, tol=12) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(px, rgb))


# kind -> check of the loaded RGB image (as an array)
LOADED = {
    "gif": lambda a: _near(a[0, 0], RED),
    "animated_gif": lambda a: _near(a[0, 0], RED),  # the first frame
    "transparent_gif": lambda a: _near(a[0, 0], WHITE) and _near(a[0, -1], (0, 0, 255)),
    "png_alpha": lambda a: _near(a[0, 0], WHITE) and _near(a[0, -1], RED),
    "png_half_alpha": lambda a: _near(a[0, 0], (127, 127, 127), 2),
    "palette_png_transparency": lambda a: _near(a[0, 0], WHITE) and _near(a[-1, 0], GREEN),
    "la_png": lambda a: _near(a[0, 0], WHITE),
    "l_png": lambda a: _near(a[0, 0], (100, 100, 100), 0),
    "l_png_transparency": lambda a: _near(a[0, 0], WHITE),
    "1bit_png": lambda a: _near(a[0, 0], (0, 0, 0), 0) and _near(a[0, -1], WHITE, 0),
    "16bit_png": lambda a: a[0, 0, 0] == 0 and a[0, -1, 0] == 255 and a.shape[1] == 256,
    "32bit_tiff": lambda a: a[0, 0, 0] == 0 and a[0, -1, 0] == 255,
    "float_tiff": lambda a: a[0, 0, 0] == 0 and a[0, -1, 0] == 255,
    "cmyk_jpeg": lambda a: a[0, 0, 0] < 60 and a[0, 0, 1] > 150 and a[0, 0, 2] > 150,  # cyan
    "1x1_png": lambda a: a.shape == (1, 1, 3) and _near(a[0, 0], (255, 128, 0), 0),
    "exif_rotated_jpeg": lambda a: a.shape == (2, 4, 3) and a[0, -1, 0] > 150 > a[0, 0, 0],
    "bad_exif_jpeg": lambda a: a.shape == (16, 16, 3),
}
# kind -> words the skip reason must contain
SKIPPED = {
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "corrupt_jpeg": "corrupt",
    "garbage_jpeg": "",  # truncated or corrupt, depending on where the garbage breaks
    "zero_byte": "empty file (0 bytes)",
    "text_as_jpg": "not an image",
    "html_as_png": "not an image",
    "huge_png": "too large",
}


def _plant(folder: Path, kind: str, cls: str) -> str:
    """Write the corpus file ``kind`` into ``folder/cls`` under a unique name; return the name."""
    tmp = folder / f".gen-{kind}"
    src = getattr(F, f"make_{kind}")(tmp)
    name = f"{kind}__{src.name}"
    shutil.move(src, folder / cls / name)
    shutil.rmtree(tmp)
    return name


@pytest.fixture
def corpus_folder(tmp_path) -> tuple[Path, dict[str, str]]:
    """Two good classes of 10 PNGs plus every corpus file, alternating between the classes."""
    root = make_image_folder(tmp_path / "corpus", n_classes=2, per_class=10)
    names = {kind: _plant(root, kind, f"class{k % 2}")
             for k, kind in enumerate([*LOADED, *SKIPPED])}
    (root / "class0" / "readme.txt").write_text("not an image")
    (root / "stray.jpg").write_bytes(F._jpeg_bytes(F._gradient(8, 8)))
    return root, names


def test_every_bad_image_is_loaded_or_skipped_with_its_reason(corpus_folder):
    root, names = corpus_folder
    ds = scan_folder(root)
    by_name = {Path(ds.path(i)).name: i for i in range(len(ds))}
    skipped = {Path(p).name: reason for p, reason in ds.skipped}
    for kind, check in LOADED.items():
        assert names[kind] in by_name, f"{kind} was skipped: {skipped.get(names[kind])}"
        arr = np.asarray(ds.load(by_name[names[kind]]))
        assert arr.dtype == np.uint8 and arr.shape[2] == 3
        assert check(arr), f"{kind} loaded wrongly: {arr[0, :3].tolist()}"
    for kind, words in SKIPPED.items():
        assert names[kind] not in by_name, f"{kind} should be skipped"
        assert words in skipped[names[kind]] and skipped[names[kind]], (kind, skipped[names[kind]])
    assert skipped["readme.txt"] == "not an image file (.txt)"
    assert skipped["stray.jpg"] == "not inside a class folder"
    assert len(ds) == 20 + len(LOADED)


@pytest.mark.parametrize("backbone", ["pixels", "tiny_random"])
def test_the_rest_embeds_and_trains(corpus_folder, backbone, tmp_path):
    root, _ = corpus_folder
    ds = scan_folder(root)
    emb = embed(ds, backbone)
    assert emb.valid.all() and not emb.failed
    assert np.isfinite(np.asarray(emb.features)).all()
    led = Ledger(tmp_path / "runs.db")
    r = train(TrainConfig(dataset="corpus", backbone=backbone, head="logistic"), dataset=ds,
              ledger=led)
    run = led.get_run(r.run_id)
    assert run["status"] == "completed" and r.val_accuracy is not None
    assert sum(len(idx) for idx, _, _ in r.predictions.values()) == len(ds)


def test_files_broken_after_the_scan_are_marked_invalid_at_embed_time(tiny_folder, tmp_path):
    ds = scan_folder(tiny_folder)
    broken = {3: "truncated", 10: "file not found", 17: "not an image"}
    data = Path(ds.path(3)).read_bytes()
    Path(ds.path(3)).write_bytes(data[: len(data) // 3])
    Path(ds.path(10)).unlink()
    Path(ds.path(17)).write_bytes(b"<html>gone</html>")
    emb = embed(ds, "pixels")
    assert dict(emb.failed).keys() == broken.keys()
    for i, reason in emb.failed:
        assert broken[i] in reason, (i, reason)
    assert not emb.valid[list(broken)].any() and emb.valid.sum() == len(ds) - 3
    X, _ = emb.split(None)
    assert len(X) == len(ds) - 3
    r = train(TrainConfig(dataset="t", backbone="pixels", head="logistic"), dataset=ds,
              ledger=Ledger(tmp_path / "runs.db"))
    predicted = np.concatenate([idx for idx, _, _ in r.predictions.values()])
    assert not set(predicted) & set(broken) and len(predicted) == len(ds) - 3


def test_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "px", n_classes=2, per_class=4, size=40)  # 1,600 pixels
    big = F.make_huge_png(root / "class0", 7000, 7000)  # above the default 40 MP, below Pillow's
    F.make_1x1_png(root / "class1")
    ds = scan_folder(root)
    reason = dict(ds.skipped)[str(big)]
    assert "7000x7000" in reason and "limit is 40,000,000" in reason and "TLVIZ_MAX_IMAGE_PIXELS" in reason
    monkeypatch.setenv("TLVIZ_MAX_IMAGE_PIXELS", "1000")
    ds = scan_folder(root)
    assert len(ds) == 1 and Path(ds.path(0)).name == "one.png"  # only the 1x1 fits
    assert sum("limit is 1,000" in r for _, r in ds.skipped) == 9  # 8 small ones + the big one


def test_exif_orientation_is_applied_for_training_too(tmp_path):
    root = tmp_path / "exif"
    for cls in ("a", "b"):
        for k in range(3):
            F.make_exif_rotated_jpeg(root / cls, size=(20 + k, 40)).rename(root / cls / f"{k}.jpg")
    ds = scan_folder(root)
    assert not ds.skipped
    assert all(ds.load(i).size == (40, 20 + int(Path(ds.path(i)).stem)) for i in range(len(ds)))
    assert all(ds.load(i, size=16).size[0] > ds.load(i, size=16).size[1] for i in range(len(ds)))


def test_the_same_corpus_inside_an_uploaded_zip(corpus_folder, tmp_path):
    import zipfile

    from tlviz.data import load_dataset

    root, names = corpus_folder
    z = tmp_path / "corpus.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f"upload/{f.relative_to(root).as_posix()}")
    folder, zipped = scan_folder(root), load_dataset(z)
    assert sorted(Path(zipped.path(i)).name for i in range(len(zipped))) == \
        sorted(Path(folder.path(i)).name for i in range(len(folder)))
    assert {Path(p).name: r for p, r in zipped.skipped} == {Path(p).name: r for p, r in folder.skipped}
    assert zipped.fingerprint == folder.fingerprint
