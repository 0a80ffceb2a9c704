"""Hostile and awkward zip uploads through tlviz.data.load_dataset, end to end.

Each archive is refused with a clear DatasetError naming the upload, or loaded with the
odd entries listed in ``ds.skipped``. After every attempt nothing exists outside the
upload's own folder, and a refused upload leaves nothing at all.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import fixtures_bad_inputs as F
import pytest

from tlviz import config
from tlviz.data import DatasetError, extract_zip, load_dataset
from tlviz.safeio import BadArchive

IMG = F._jpeg_bytes(F._gradient(16, 16))
GOOD = [(f"set/{c}/{i}.jpg", IMG) for c in ("cats", "dogs") for i in range(4)]


def _zip(path: Path, entries) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _tree(*roots: Path) -> set[str]:
    return {str(p) for r in roots if r.exists() for p in r.rglob("*")}


@pytest.fixture
def watch(tmp_path):
    """A snapshot of every path under the tlviz home and tmp_path (diff two to see additions)."""
    return lambda: _tree(config.home_dir(), tmp_path)


def _only_inside_uploads(added: set[str]) -> None:
    inside = (config.user_datasets_dir(), config.home_dir() / "cache")
    outside = [p for p in added if not any(Path(p) == d or Path(p).is_relative_to(d) for d in inside)]
    assert not outside, outside
    assert not [p for p in added if Path(p).name == F.EVIL_NAME]
    assert not [p for p in added if Path(p).is_symlink()]
    for up in config.user_datasets_dir().parents:  # where ../../ would have landed
        assert not (up / F.EVIL_NAME).exists()


REFUSED = {  # generator -> words of the message
    "zip_slip": "points outside the folder",
    "zip_backslash_slip": "points outside the folder",
    "zip_absolute": "absolute path",
    "zip_drive_letter": "absolute path",
    "zip_bomb_ratio": "zip bomb",
    "zip_lying_header": "beyond its declared size|bad checksum",
    "not_zip": "is not a zip archive",
    "truncated_zip": "zip",
    "zip_bad_crc": "bad checksum",
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_hostile_archive_is_refused_and_leaves_nothing(kind, tmp_path, watch):
    z = getattr(F, f"make_{kind}")(tmp_path / "up")
    if kind in ("zip_slip", "zip_backslash_slip", "zip_absolute", "zip_drive_letter"):
        with zipfile.ZipFile(z) as zf:  # the hostile entry next to a good dataset
            entries = [(i, zf.read(i)) for i in zf.infolist()]
        z = _zip(tmp_path / "up2" / z.name, [*GOOD, *entries])
    before = watch()
    with pytest.raises(DatasetError, match=REFUSED[kind]) as e:
        load_dataset(z)
    assert str(e.value).startswith(f"{z.name}: ")
    added = watch() - before
    user = config.user_datasets_dir()
    assert not [p for p in added if Path(p).is_relative_to(user) and Path(p) != user], added
    _only_inside_uploads(added)
    with pytest.raises(BadArchive):
        extract_zip(z)  # the public API refuses too


def test_symlinks_are_not_extracted(tmp_path, watch):
    z = _zip(tmp_path / "links.zip", [*GOOD, (_symlink("set/cats/passwd.jpg", "/etc/passwd"), b"/etc/passwd"),
                                      (_symlink("set/dogs", "/"), b"/")])
    before = watch()
    ds = load_dataset(z)
    assert len(ds) == 8 and ds.classes == ["cats", "dogs"]
    reasons = dict(ds.skipped)
    assert reasons["set/cats/passwd.jpg"] == "symbolic link (not extracted)"
    _only_inside_uploads(watch() - before)


def test_nested_archives_are_listed_not_opened(tmp_path, watch):
    inner = _zip(tmp_path / "inner.zip", GOOD)
    z = _zip(tmp_path / "outer.zip", [*GOOD, ("set/cats/more.zip", inner.read_bytes()),
                                      ("set/dogs/more.tar.gz", b"\x1f\x8b\x08")])
    before = watch()
    ds = load_dataset(z)
    assert len(ds) == 8
    reasons = dict(ds.skipped)
    assert reasons["set/cats/more.zip"] == reasons["set/dogs/more.tar.gz"] == \
        "archive inside the archive (not extracted)"
    _only_inside_uploads(watch() - before)


def test_duplicate_names_keep_the_first(tmp_path):
    import warnings

    other = F._jpeg_bytes(F._gradient(16, 16).rotate(90))
    z = tmp_path / "dups.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _zip(z, [*GOOD, ("set/cats/0.jpg", other), ("set/cats/0.JPG", other)])
    ds = load_dataset(z)
    assert len(ds) == 8
    reasons = dict(ds.skipped)
    assert reasons["set/cats/0.JPG"].startswith("same name as") and "apart from case" in reasons[
        "set/cats/0.JPG"]
    assert any(r == "duplicate name (kept the first)" for r in reasons.values())
    first = next(i for i in range(len(ds)) if ds.path(i).endswith("cats/0.jpg"))
    assert Path(ds.path(first)).read_bytes() == IMG


def test_bad_images_inside_a_zip_are_skipped_with_reasons(tmp_path):
    ds = load_dataset(F.make_zip_with_bad_images(tmp_path))
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert "not an image" in reasons["text.jpg"]
    assert len(ds) == 2 and ds.classes == ["cats", "dogs"]


def test_junk_and_wrapper_folders(tmp_path):
    ds = load_dataset(F.make_imagefolder_zip(tmp_path))
    assert ds.classes == ["cats", "dogs"] and ds.split_names == ["train", "val"]
    assert len(ds) == 8 and not ds.skipped  # __MACOSX, .DS_Store, ._ files silently dropped


def test_password_protected_entries_are_skipped(tmp_path):
    z = _zip(tmp_path / "enc.zip", [*GOOD, ("set/cats/secret.jpg", IMG)])
    data = bytearray(z.read_bytes())
    name = b"set/cats/secret.jpg"
    for sig, flag_off, name_off in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:  # set the "encrypted" flag bit in both headers
            if data[pos + name_off: pos + name_off + len(name)] == name:
                data[pos + flag_off] |= 0x1
            pos += 4
    z.write_bytes(bytes(data))
    ds = load_dataset(z)
    assert len(ds) == 8
    assert dict(ds.skipped)["set/cats/secret.jpg"] == "password-protected (not extracted)"


@pytest.mark.parametrize("var,value,words", [
    ("TLVIZ_MAX_UPLOAD_MB", "0.001", "above the limit of 0.0 MB; set TLVIZ_MAX_UPLOAD_MB"),
    ("TLVIZ_MAX_ZIP_ENTRIES", "5", "has 8 entries, above the limit of 5; set TLVIZ_MAX_ZIP_ENTRIES"),
    ("TLVIZ_MAX_IMAGES", "5", "has 8 images, above the limit of 5"),
])
def test_upload_limits_are_settings_with_clear_messages(tmp_path, monkeypatch, var, value, words):
    z = _zip(tmp_path / f"limits-{var}.zip", GOOD)  # its own upload folder per setting
    monkeypatch.setenv(var, value)
    with pytest.raises(DatasetError, match=words):
        load_dataset(z)
    monkeypatch.delenv(var)
    assert len(load_dataset(z)) == 8


def test_zip_total_size_limit(tmp_path, monkeypatch):
    z = F.make_zip_bomb_ratio(tmp_path, mb=6)
    monkeypatch.setenv("TLVIZ_MAX_ZIP_RATIO", "100000")
    monkeypatch.setenv("TLVIZ_MAX_ZIP_MB", "5")
    with pytest.raises(DatasetError, match=r"would expand to 6\.0 MB, above the limit of 5\.0 MB"):
        load_dataset(z)


def test_unicode_emoji_and_html_class_folders_survive(tmp_path):
    names = ["café", "🐱 cats", "<img src=x onerror=alert(1)>", "日本 & <b>"]
    z = _zip(tmp_path / "names.zip", [(f"d/{n}/{i}.jpg", IMG) for n in names for i in range(3)])
    ds = load_dataset(z)
    assert sorted(ds.classes) == sorted(names)  # kept as text, exactly
    assert len(ds) == 12 and sorted(ds.counts().index) == sorted(names)


def test_a_folder_of_only_junk_is_a_clear_error(tmp_path):
    z = _zip(tmp_path / "junk.zip", [("a.txt", b"x"), ("b/readme.md", b"y")])
    with pytest.raises(DatasetError, match=r"^junk.zip: no readable images found in the archive: "
                                           r"expected class folders"):
        load_dataset(z)
    assert not list(config.user_datasets_dir().glob("junk*"))  # not kept as a broken dataset
