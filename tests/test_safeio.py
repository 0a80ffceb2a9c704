"""tlviz.safeio: hostile images, zips and names. Every input is generated in tmp_path."""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fixtures_bad_inputs as F
import numpy as np
import pytest
from PIL import Image, ImageFile

from tlviz import safeio
from tlviz.safeio import (
    BadArchive,
    BadImage,
    ExtractResult,
    Limits,
    default_limits,
    image_problem,
    open_image,
    safe_extract_zip,
    sanitize_name,
)

# --------------------------------------------------------------------------- limits


def test_limits_defaults():
    lim = Limits()
    assert lim.max_image_pixels == 40_000_000
    assert lim.max_upload_bytes == 200 * 1024 * 1024
    assert lim.max_images == 20_000
    assert lim.max_zip_total_bytes == 2 * 1024**3
    assert lim.max_zip_ratio == 100
    assert lim.max_zip_entries == 50_000


def test_limits_from_env(monkeypatch):
    env = {
        "TLVIZ_MAX_IMAGE_PIXELS": "1000",
        "TLVIZ_MAX_UPLOAD_MB": "1.5",
        "TLVIZ_MAX_IMAGES": "7",
        "TLVIZ_MAX_ZIP_MB": "3",
        "TLVIZ_MAX_ZIP_RATIO": "12.5",
        "TLVIZ_MAX_ZIP_ENTRIES": "9",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    lim = default_limits()
    assert lim == Limits(1000, int(1.5 * 1024 * 1024), 7, 3 * 1024 * 1024, 12.5, 9)


@pytest.mark.parametrize("bad", ["abc", "-5", "0", "", "nan", "inf", " "])
def test_limits_bad_env_values_fall_back(monkeypatch, bad):
    for var in ("TLVIZ_MAX_IMAGE_PIXELS", "TLVIZ_MAX_UPLOAD_MB", "TLVIZ_MAX_ZIP_RATIO"):
        monkeypatch.setenv(var, bad)
    assert Limits.from_env() == Limits()


# --------------------------------------------------------------------------- images: good


def _px(im: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return im.getpixel((x, y))


def _close(a, b, tol=8) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


def test_sources_path_str_bytes_fileobj(tmp_path):
    p = F.make_png(tmp_path)
    for src in (p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes())):
        im = open_image(src)
        assert (im.mode, im.size) == ("RGB", (64, 48))
        assert im.getpixel((0, 0)) == (0, 255, 128)
    with open(p, "rb") as f:  # a caller's file object is left open
        open_image(f)
        assert not f.closed


def test_exif_rotation(tmp_path):
    im = open_image(F.make_exif_rotated_jpeg(tmp_path))
    assert im.size == (4, 2)
    big = open_image(F.make_exif_rotated_jpeg(tmp_path, (20, 40)))
    assert big.size == (40, 20)
    assert _close(_px(big, 35, 10), (255, 0, 0), 40)  # top (red) went to the right
    assert _close(_px(big, 4, 10), (0, 0, 255), 40)


def test_broken_exif_keeps_the_picture(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = open_image(F.make_bad_exif_jpeg(tmp_path))
    assert im.size == (16, 16)


def test_png_alpha_on_white(tmp_path):
    im = open_image(F.make_png_alpha(tmp_path))
    assert _px(im, 0, 0) == (255, 255, 255)  # transparent -> white, not black
    assert _px(im, 9, 9) == (255, 0, 0)
    half = open_image(F.make_png_half_alpha(tmp_path))
    assert _close(_px(half, 0, 0), (127, 127, 127), 1)


def test_palette_and_gray_transparency(tmp_path):
    im = open_image(F.make_palette_png_transparency(tmp_path))
    assert _px(im, 0, 0) == (255, 255, 255) and _px(im, 0, 7) == (0, 255, 0)
    assert _px(open_image(F.make_l_png_transparency(tmp_path)), 2, 2) == (255, 255, 255)
    assert _px(open_image(F.make_la_png(tmp_path)), 0, 0) == (255, 255, 255)
    gif = open_image(F.make_transparent_gif(tmp_path))
    assert _px(gif, 0, 0) == (255, 255, 255) and _px(gif, 9, 0) == (0, 0, 255)


def test_pa_mode_composites_on_white():
    pa = Image.new("PA", (2, 1), (0, 0))
    pa.putpalette([10, 20, 30] * 256)
    pa.putpixel((1, 0), (0, 255))
    rgb = safeio._to_rgb(pa)
    assert (_px(rgb, 0, 0), _px(rgb, 1, 0)) == ((255, 255, 255), (10, 20, 30))


def test_gif_and_animated_gif_first_frame(tmp_path):
    assert _px(open_image(F.make_gif(tmp_path)), 0, 0) == (255, 0, 0)
    im = open_image(F.make_animated_gif(tmp_path))
    assert (im.mode, im.size, _px(im, 5, 5)) == ("RGB", (12, 10), (255, 0, 0))


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    p = F.make_16bit_png(tmp_path)
    with Image.open(p) as raw:
        assert raw.mode.startswith("I;16")
    arr = np.asarray(open_image(p))
    assert arr.dtype == np.uint8 and arr.min() == 0 and arr.max() == 255
    row = arr[0, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200  # a real gradient
    assert abs(row[128] - 128) <= 2


def test_32bit_and_float_gray(tmp_path):
    arr = np.asarray(open_image(F.make_32bit_tiff(tmp_path)))[0, :, 0]
    assert arr[0] == 0 and arr[-1] == 255 and np.all(np.diff(arr.astype(int)) >= 0)
    arr = np.asarray(open_image(F.make_float_tiff(tmp_path)))[0, :, 0]
    assert arr[0] == 0 and arr[-1] == 255


def test_cmyk_jpeg(tmp_path):
    im = open_image(F.make_cmyk_jpeg(tmp_path))
    assert im.mode == "RGB" and _close(_px(im, 8, 8), (0, 255, 255), 10)


def test_gray_bilevel_and_tiny(tmp_path):
    assert _px(open_image(F.make_l_png(tmp_path)), 0, 0) == (100, 100, 100)
    bl = open_image(F.make_1bit_png(tmp_path))
    assert (_px(bl, 0, 0), _px(bl, 7, 0)) == ((0, 0, 0), (255, 255, 255))
    one = open_image(F.make_1x1_png(tmp_path))
    assert (one.size, _px(one, 0, 0)) == ((1, 1), (255, 128, 0))


def test_draft_decodes_jpeg_at_reduced_size(tmp_path):
    p = F.make_jpeg(tmp_path, (800, 600))
    im = open_image(p, draft_size=100)
    assert im.size == (200, 150) and min(im.size) >= 100
    assert open_image(p, draft_size=300).size == (400, 300)  # scale 1/2 keeps >= 300
    assert open_image(p, draft_size=5000).size == (800, 600)  # never upscales
    assert open_image(F.make_png(tmp_path, (800, 600)), draft_size=100).size == (800, 600)
    rot = open_image(F.make_exif_rotated_jpeg(tmp_path, (400, 800)), draft_size=100)
    assert rot.size == (200, 100)  # drafted 100x200 then rotated


def test_result_is_independent_of_file(tmp_path):
    p = F.make_animated_gif(tmp_path)
    im = open_image(p)
    p.unlink()  # the returned image must not need the file any more
    assert im.copy().size == (12, 10)


def test_thread_safe_and_no_global_state(tmp_path):
    paths = [F.make_jpeg(tmp_path / str(i), (50 + i, 40)) for i in range(8)]
    paths.append(F.make_truncated_jpeg(tmp_path))
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)

    def work(p: Path) -> str:
        try:
            return str(open_image(p, max_pixels=100_000, draft_size=10).size)
        except BadImage as e:
            return str(e)

    serial = [work(p) for p in paths]
    assert serial[0] == "(13, 10)" and "truncated" in serial[-1]  # drafted 1/4; truncated
    with ThreadPoolExecutor(8) as ex:
        assert list(ex.map(work, paths * 4)) == serial * 4
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


# --------------------------------------------------------------------------- images: bad


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (F.make_truncated_jpeg, "truncated"),
        (F.make_truncated_png, "truncated"),
        (F.make_corrupt_jpeg, "corrupt"),
        (F.make_garbage_jpeg, "truncated|corrupt|not an image"),
        (F.make_zero_byte, "empty"),
        (F.make_text_as_jpg, "not an image"),
        (F.make_html_as_png, "not an image"),
    ],
)
def test_bad_images(tmp_path, maker, reason):
    p = maker(tmp_path)
    with pytest.raises(BadImage, match=reason):
        open_image(p)
    assert re.search(reason, image_problem(p))
    with pytest.raises(BadImage, match=reason):
        open_image(p.read_bytes())


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadImage, match="not found"):
        open_image(tmp_path / "nope.jpg")
    with pytest.raises(BadImage, match="folder"):
        open_image(tmp_path)


def test_huge_image_refused_before_decoding(tmp_path):
    p = F.make_huge_png(tmp_path, 8000, 6000)  # 48 M pixels, header only
    with pytest.raises(BadImage) as ei:
        open_image(p)
    msg = str(ei.value)
    assert "48,000,000" in msg and "40,000,000" in msg and "TLVIZ_MAX_IMAGE_PIXELS" in msg
    with pytest.raises(BadImage, match="1,000"):
        open_image(F.make_png(tmp_path, (100, 100)), max_pixels=1000)
    assert "too large" in image_problem(p)


def test_huge_image_above_pillow_limit(tmp_path):
    p = F.make_huge_png(tmp_path, 20_000, 20_000)  # Pillow itself raises on open
    with pytest.raises(BadImage, match="400,000,000.*TLVIZ_MAX_IMAGE_PIXELS"):
        open_image(p)


def test_env_limit_applies(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(BadImage, match="too large"):
        open_image(F.make_png(tmp_path))
    assert open_image(F.make_png(tmp_path), max_pixels=10_000).size == (64, 48)


def test_decompression_bomb_warning_as_error(tmp_path):
    p = F.make_huge_png(tmp_path, 10_000, 9_000)  # above Pillow's warning threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(BadImage, match="too large"):
            open_image(p, max_pixels=200_000_000)


def test_image_problem_ok(tmp_path):
    assert image_problem(F.make_jpeg(tmp_path)) is None
    assert image_problem(F.make_16bit_png(tmp_path)) is None


# --------------------------------------------------------------------------- zips


def _snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def zenv(tmp_path):
    """(input folder, dest, callable asserting a refusal left nothing behind)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    dest = out / "ds"

    def assert_clean(before: set[Path]) -> None:
        assert _snapshot(tmp_path) == before, "a refused archive left files behind"
        assert not dest.exists() or not any(dest.iterdir())
        assert not list(out.iterdir())  # no temp folder either
        hits = [p for p in tmp_path.rglob(F.EVIL_NAME)] + list(Path("/").glob(F.EVIL_NAME))
        assert not hits

    return src, dest, assert_clean


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (F.make_zip_slip, "outside the folder"),
        (F.make_zip_backslash_slip, "outside the folder"),
        (F.make_zip_absolute, "absolute path"),
        (F.make_zip_drive_letter, "absolute path"),
        (F.make_not_zip, "fake.zip is not a zip archive"),
        (F.make_truncated_zip, "not a zip archive"),
        (F.make_zip_bad_crc, "damaged"),
        (F.make_zip_lying_header, "damaged"),
    ],
)
def test_zip_refused(zenv, maker, reason):
    src, dest, assert_clean = zenv
    z = maker(src)
    before = _snapshot(src.parent)
    with pytest.raises(BadArchive, match=reason):
        safe_extract_zip(z, dest)
    assert_clean(before)


def test_zip_bombs(zenv):
    src, dest, assert_clean = zenv
    bomb = F.make_zip_bomb_ratio(src, mb=20)
    many = F.make_zip_many_entries(src, n=30)
    before = _snapshot(src.parent)
    with pytest.raises(BadArchive, match=r"compressed .*:1.*TLVIZ_MAX_ZIP_RATIO"):
        safe_extract_zip(bomb, dest)  # default limits
    with pytest.raises(BadArchive, match="TLVIZ_MAX_ZIP_MB"):
        safe_extract_zip(bomb, dest, Limits(max_zip_ratio=1e9, max_zip_total_bytes=10 << 20))
    with pytest.raises(BadArchive, match="30 entries.*TLVIZ_MAX_ZIP_ENTRIES"):
        safe_extract_zip(many, dest, Limits(max_zip_entries=20))
    with pytest.raises(BadArchive, match="TLVIZ_MAX_UPLOAD_MB"):
        safe_extract_zip(bomb, dest, Limits(max_upload_bytes=1000))
    with pytest.raises(BadArchive, match="compressed"):
        safe_extract_zip(io.BytesIO(bomb.read_bytes()), dest)  # file object works too
    assert_clean(before)


def test_zip_streaming_limit_catches_lies(zenv, monkeypatch):
    """Even if the reader returned more than the declared size, extraction stops."""
    src, dest, assert_clean = zenv
    z = F.make_flat_class_zip(src)
    before = _snapshot(src.parent)
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, info, *a, **k: io.BytesIO(b"x" * 5000)
    )
    with pytest.raises(BadArchive, match="declared size"):
        safe_extract_zip(z, dest)
    assert_clean(before)


def test_zip_symlink_nested_encrypted_skipped(zenv, tmp_path):
    src, dest, _ = zenv
    r = safe_extract_zip(F.make_zip_symlink(src), dest)
    assert r.files == 1 and r.skipped == [("data/link", "symbolic link (not extracted)")]
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert not (dest / "data" / "link").exists()

    r = safe_extract_zip(F.make_nested_zip(src), tmp_path / "n")
    assert r.files == 1 and {n for n, _ in r.skipped} == {"d/inner.zip", "d/more.tar.gz"}
    assert all("archive inside" in why for _, why in r.skipped)
    assert not list((tmp_path / "n").rglob("*.zip")) and not (tmp_path / "n/d/inner").exists()

    r = safe_extract_zip(F.make_zip_encrypted_flag(src), tmp_path / "e")
    assert r.files == 1 and r.skipped == [("d/secret.txt", "password-protected (not extracted)")]


def test_zip_duplicates_keep_first(zenv):
    src, dest, _ = zenv
    r = safe_extract_zip(F.make_zip_duplicates(src), dest)
    assert r.root == dest / "d"  # single wrapper folder holding class folders
    assert (dest / "d/cats/a.txt").read_bytes() == b"first"
    assert sorted(p.name for p in (dest / "d/cats").iterdir()) == ["a.txt"]
    reasons = dict(r.skipped)
    assert reasons["d/cats/a.txt"].startswith("duplicate")
    assert "apart from case" in reasons["d/cats/A.TXT"]
    assert r.files == 2


def test_zip_file_folder_clash_skipped(zenv):
    src, dest, _ = zenv
    r = safe_extract_zip(F.make_zip_file_dir_clash(src), dest)
    assert r.files == 1 and r.skipped == [("d/x/y.txt", "name clashes (not extracted)")]


def test_zip_imagefolder_root_and_junk(zenv):
    src, dest, _ = zenv
    r = safe_extract_zip(F.make_imagefolder_zip(src), dest)
    assert isinstance(r, ExtractResult) and isinstance(r, os.PathLike)
    assert r.root == dest / "mydata" and Path(r) == r.root and os.fspath(r) == str(r.root)
    assert r.files == 8 and r.skipped == []  # junk dropped silently
    names = {p.name for p in dest.rglob("*")}
    assert not names & {"__MACOSX", ".DS_Store", "._0.jpg", "._1.jpg"}
    assert sorted(p.name for p in r.root.iterdir()) == ["train", "val"]
    assert len(list(r.root.glob("*/*/*.jpg"))) == 8
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_zip_root_flat_and_single_class(zenv, tmp_path):
    src, dest, _ = zenv
    assert safe_extract_zip(F.make_flat_class_zip(src), dest).root == dest
    single = F._zip(src, "single.zip", [("cats/a.txt", b"1"), ("cats/b.txt", b"2")])
    assert safe_extract_zip(single, tmp_path / "s").root == tmp_path / "s"  # cats is a class
    wrapped = F._zip(
        src, "w.zip", [("export/mydata/cats/a.txt", b"1"), ("export/mydata/dogs/b", b"")]
    )
    assert safe_extract_zip(wrapped, tmp_path / "w").root == tmp_path / "w/export/mydata"


def test_zip_backslash_names_become_folders(zenv):
    src, dest, _ = zenv
    z = F._zip(src, "win.zip", [("cats\\a.txt", b"1"), ("dogs\\b.txt", b"2")])
    r = safe_extract_zip(z, dest)
    assert (dest / "cats/a.txt").read_bytes() == b"1" and r.files == 2


def test_zip_dest_must_be_empty(zenv):
    src, dest, _ = zenv
    z = F.make_flat_class_zip(src)
    dest.mkdir()
    r = safe_extract_zip(z, dest)  # empty existing folder is fine
    assert r.files == 4
    with pytest.raises(FileExistsError):
        safe_extract_zip(z, dest)


def test_zip_with_bad_images_extracts_then_image_problem(zenv):
    src, dest, _ = zenv
    r = safe_extract_zip(F.make_zip_with_bad_images(src), dest)
    problems = {p.name: image_problem(p) for p in r.root.rglob("*.jpg")}
    assert problems["good.jpg"] is None
    assert "truncated" in problems["truncated.jpg"]
    assert "empty" in problems["empty.jpg"]
    assert "not an image" in problems["text.jpg"]


# --------------------------------------------------------------------------- names

NASTY = [
    "",
    ".",
    "..",
    "...",
    "../../etc/passwd",
    "/abs/path",
    "C:\\Windows\\system32",
    ". .hidden",
    "a\x00b\x1fc\x7f",
    "\u202eevil\u202c",
    "con",
    "LPT1.txt",
    "a" * 300,
    "🐱" * 200,
    "   ",
    "tab\tnew\nline",
    "trailing. . ",
    '<>:"|?*',
]


@pytest.mark.parametrize("name", NASTY)
def test_sanitize_name_invariants(name):
    s = sanitize_name(name)
    assert s and s not in (".", "..") and not s.startswith(".")
    assert "/" not in s and "\\" not in s and "\x00" not in s
    assert not any(ord(c) < 32 or c in "\u202e\u202c\x7f" for c in s)
    assert len(s) <= 80 and len(s.encode()) <= 255
    assert s == s.strip() and not s.endswith(".")
    assert sanitize_name(s) == s  # idempotent
    assert s.split(".")[0].upper() not in {"CON", "LPT1"}


def test_sanitize_name_keeps_what_users_type():
    assert sanitize_name("golden retriever") == "golden retriever"
    assert sanitize_name("cats-2_v1.0") == "cats-2_v1.0"
    assert sanitize_name("chats café 猫 кошка") == "chats café 猫 кошка"
    assert sanitize_name("cafe\u0301") == "café"  # NFC
    assert sanitize_name("🐱 cats 👩‍💻") == "🐱 cats 👩‍💻"
    assert sanitize_name("a/b\\c") == "a_b_c"
    assert sanitize_name("..") == sanitize_name("") == "unnamed"
    assert sanitize_name("x" * 100, max_len=10) == "x" * 10
    assert sanitize_name("con") == "_con"


def test_zip_bad_names_skipped(zenv):
    src, dest, _ = zenv
    deep = "d/" + "/".join(["x" * 200] * 30) + "/f.txt"  # longer than PATH_MAX
    z = F._zip(
        src,
        "names.zip",
        [
            ("d/ok.txt", b"1"),
            ("d/" + "a" * 300 + ".txt", b"2"),
            ("d/a\x01b.txt", b"3"),
            (deep, b"4"),
        ],
    )
    r = safe_extract_zip(z, dest)
    reasons = sorted(why for _, why in r.skipped)
    assert r.files == 1 and (dest / "d/ok.txt").exists()
    assert reasons == [
        "file name contains control characters",
        "file name too long",
        "path too long (not extracted)",
    ]
