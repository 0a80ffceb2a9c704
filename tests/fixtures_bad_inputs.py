"""Generators of awkward and hostile inputs (images, zips) for tests.

Every generator is a plain function ``make_<kind>(dir) -> Path`` that writes one file into
``dir`` and returns its path, so any test can reuse them with ``tmp_path``. All are fast
(well under a second each) and need only Pillow, numpy and the standard library.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- helpers


def _jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def _path(dir: Path, name: str) -> Path:
    p = Path(dir) / name
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _write(dir: Path, name: str, data: bytes) -> Path:
    p = _path(dir, name)
    p.write_bytes(data)
    return p


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _gradient(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    arr = np.stack(
        [np.tile(x, (h, 1)), np.tile(x[::-1], (h, 1)), np.full((h, w), 128, np.uint8)], -1
    )
    return Image.fromarray(arr)


def _zip(dir: Path, name: str, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    p = _path(dir, name)
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries:
            zf.writestr(entry, data)
    return p


# --------------------------------------------------------------------------- good images


def make_jpeg(dir: Path, size: tuple[int, int] = (64, 48), name: str = "ok.jpg") -> Path:
    """A valid RGB JPEG with a horizontal gradient."""
    return _write(dir, name, _jpeg_bytes(_gradient(*size)))


def make_png(dir: Path, size: tuple[int, int] = (64, 48), name: str = "ok.png") -> Path:
    """A valid RGB PNG."""
    buf = io.BytesIO()
    _gradient(*size).save(buf, "PNG")
    return _write(dir, name, buf.getvalue())


# --------------------------------------------------------------------------- broken images


def make_truncated_jpeg(dir: Path) -> Path:
    """A JPEG cut in the middle of its scan data (an interrupted download)."""
    data = _jpeg_bytes(_gradient(256, 256))
    return _write(dir, "truncated.jpg", data[: len(data) // 2])


def make_truncated_png(dir: Path) -> Path:
    """A PNG cut in the middle of its IDAT data."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, "PNG"
    )
    data = buf.getvalue()
    return _write(dir, "truncated.png", data[: len(data) // 2])


def make_corrupt_jpeg(dir: Path) -> Path:
    """A JPEG whose Huffman table (DHT segment) is overwritten with garbage."""
    data = _jpeg_bytes(_gradient(64, 64))
    i = data.find(b"\xff\xc4")
    return _write(dir, "corrupt.jpg", data[: i + 5] + b"\xff" * 20 + data[i + 25 :])


def make_garbage_jpeg(dir: Path) -> Path:
    """JPEG magic bytes followed by random garbage."""
    rng = np.random.default_rng(1)
    return _write(dir, "garbage.jpg", b"\xff\xd8\xff\xe0" + rng.bytes(2000))


def make_zero_byte(dir: Path) -> Path:
    """An empty file with an image extension."""
    return _write(dir, "empty.jpg", b"")


def make_text_as_jpg(dir: Path) -> Path:
    """A text file named like an image."""
    return _write(dir, "notes.jpg", b"this is not an image, just some text\n" * 20)


def make_html_as_png(dir: Path) -> Path:
    """An HTML error page saved under an image name (a failed download)."""
    return _write(dir, "page.png", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")


def make_huge_png(dir: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb header).

    The IDAT is a few bytes, so only code that decodes before checking the size is hurt.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )
    return _write(dir, f"huge_{width}x{height}.png", data)


# --------------------------------------------------------------------------- awkward modes


def make_gif(dir: Path) -> Path:
    """A single-frame GIF (palette image), solid red."""
    p = _path(dir, "still.gif")
    Image.new("RGB", (10, 8), (255, 0, 0)).save(p)
    return p


def make_animated_gif(dir: Path) -> Path:
    """A 3-frame animated GIF: red, green, blue frames (first frame is red)."""
    p = _path(dir, "anim.gif")
    frames = [Image.new("RGB", (12, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return p


def make_transparent_gif(dir: Path) -> Path:
    """A GIF whose left half is the transparent palette index, right half blue."""
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (5, 0, 10, 10))
    p = _path(dir, "transparent.gif")
    im.save(p, transparency=0)
    return p


def make_png_alpha(dir: Path) -> Path:
    """RGBA PNG: left half fully transparent black, right half opaque red."""
    im = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (5, 0, 10, 10))
    p = _path(dir, "alpha.png")
    im.save(p)
    return p


def make_png_half_alpha(dir: Path) -> Path:
    """RGBA PNG: black at 50% opacity everywhere (composited on white -> mid gray)."""
    p = _path(dir, "half_alpha.png")
    Image.new("RGBA", (6, 6), (0, 0, 0, 128)).save(p)
    return p


def make_palette_png_transparency(dir: Path) -> Path:
    """Palette PNG with per-entry alpha (tRNS): index 0 transparent, index 1 opaque green."""
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (0, 4, 8, 8))  # bottom half green
    p = _path(dir, "palette_trns.png")
    im.save(p, transparency=bytes([0, 255]))
    return p


def make_la_png(dir: Path) -> Path:
    """Gray+alpha PNG: gray 0 with alpha 0 (-> white)."""
    p = _path(dir, "la.png")
    Image.new("LA", (5, 5), (0, 0)).save(p)
    return p


def make_l_png(dir: Path) -> Path:
    """8-bit grayscale PNG, value 100."""
    p = _path(dir, "gray.png")
    Image.new("L", (5, 5), 100).save(p)
    return p


def make_l_png_transparency(dir: Path) -> Path:
    """Grayscale PNG where gray value 7 is declared transparent (tRNS)."""
    p = _path(dir, "gray_trns.png")
    Image.new("L", (5, 5), 7).save(p, transparency=7)
    return p


def make_1bit_png(dir: Path) -> Path:
    """1-bit PNG: left half black, right half white."""
    im = Image.new("1", (8, 4), 0)
    im.paste(1, (4, 0, 8, 4))
    p = _path(dir, "bilevel.png")
    im.save(p)
    return p


def make_16bit_png(dir: Path) -> Path:
    """16-bit grayscale PNG (mode I;16) with a horizontal gradient 0..65535."""
    row = np.linspace(0, 65535, 256).round().astype(np.uint16)
    arr = np.tile(row, (4, 1))
    p = _path(dir, "gray16.png")
    Image.fromarray(arr).save(p)
    return p


def make_32bit_tiff(dir: Path) -> Path:
    """32-bit integer grayscale TIFF (mode I) with values -1000..1000 (unknown range)."""
    row = np.linspace(-1000, 1000, 64).round().astype(np.int32)
    p = _path(dir, "gray32.tif")
    Image.fromarray(np.tile(row, (4, 1))).save(p)
    return p


def make_float_tiff(dir: Path) -> Path:
    """32-bit float TIFF (mode F) with values 0..1."""
    row = np.linspace(0, 1, 64, dtype=np.float32)
    p = _path(dir, "float.tif")
    Image.fromarray(np.tile(row, (4, 1))).save(p)
    return p


def make_cmyk_jpeg(dir: Path) -> Path:
    """CMYK JPEG, solid cyan (C=255)."""
    return _write(dir, "cmyk.jpg", _jpeg_bytes(Image.new("CMYK", (16, 16), (255, 0, 0, 0))))


def make_1x1_png(dir: Path) -> Path:
    """A 1x1 pixel PNG, orange."""
    p = _path(dir, "one.png")
    Image.new("RGB", (1, 1), (255, 128, 0)).save(p)
    return p


def make_exif_rotated_jpeg(dir: Path, size: tuple[int, int] = (2, 4)) -> Path:
    """JPEG stored ``size`` (w, h) with EXIF Orientation=6 (display rotated 90 degrees
    clockwise): it should come back as (h, w). Top half red, bottom half blue, so after
    rotation the right half is red."""
    w, h = size
    im = Image.new("RGB", (w, h), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, w, h // 2))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(dir, f"rotated_{w}x{h}.jpg", _jpeg_bytes(im, exif=exif.tobytes()))


def make_bad_exif_jpeg(dir: Path) -> Path:
    """A valid JPEG with an APP1 'Exif' segment full of garbage."""
    data = _jpeg_bytes(_gradient(16, 16))
    junk = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\xff\xff" + b"\x13" * 40
    app1 = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk
    return _write(dir, "bad_exif.jpg", data[:2] + app1 + data[2:])


# --------------------------------------------------------------------------- zips

EVIL_NAME = "tlviz_evil_marker.txt"


def make_imagefolder_zip(dir: Path) -> Path:
    """A good ImageFolder zip: mydata/{train,val}/{cats,dogs}/*.jpg plus macOS junk."""
    img = _jpeg_bytes(_gradient(16, 16))
    entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [
        (f"mydata/{split}/{cls}/{i}.jpg", img)
        for split in ("train", "val")
        for cls in ("cats", "dogs")
        for i in range(2)
    ]
    entries += [
        ("__MACOSX/mydata/train/cats/._0.jpg", b"junk"),
        ("mydata/.DS_Store", b"junk"),
        ("mydata/train/cats/._1.jpg", b"junk"),
    ]
    return _zip(dir, "imagefolder.zip", entries)


def make_flat_class_zip(dir: Path) -> Path:
    """Class folders at the top level: cats/*.jpg, dogs/*.jpg."""
    img = _jpeg_bytes(_gradient(16, 16))
    return _zip(
        dir, "flat.zip", [(f"{c}/{i}.jpg", img) for c in ("cats", "dogs") for i in range(2)]
    )


def make_zip_slip(dir: Path) -> Path:
    """Zip-slip: a normal entry then ``../../tlviz_evil_marker.txt``."""
    return _zip(dir, "slip.zip", [("ok/a.txt", b"fine"), (f"../../{EVIL_NAME}", b"pwned")])


def make_zip_backslash_slip(dir: Path) -> Path:
    """Zip-slip written Windows-style: ``..\\..\\tlviz_evil_marker.txt``."""
    return _zip(dir, "backslash.zip", [("ok/a.txt", b"fine"), (f"..\\..\\{EVIL_NAME}", b"pwned")])


def make_zip_absolute(dir: Path) -> Path:
    """An entry with an absolute path inside ``dir`` (``/<dir>/abs/tlviz_evil_marker.txt``)."""
    target = (Path(dir).resolve() / "abs" / EVIL_NAME).as_posix()
    return _zip(dir, "absolute.zip", [("ok/a.txt", b"fine"), (target, b"pwned")])


def make_zip_drive_letter(dir: Path) -> Path:
    """An entry with a Windows drive letter: ``C:/tlviz_evil_marker.txt``."""
    return _zip(dir, "drive.zip", [("ok/a.txt", b"fine"), (f"C:/{EVIL_NAME}", b"pwned")])


def make_zip_symlink(dir: Path) -> Path:
    """A symlink entry ``data/link -> /etc/passwd`` plus a normal file."""
    link = zipfile.ZipInfo("data/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip(dir, "symlink.zip", [(link, b"/etc/passwd"), ("data/a.txt", b"fine")])


def make_zip_bomb_ratio(dir: Path, mb: int = 20) -> Path:
    """``mb`` MB of zeros in one entry: compresses about 1000:1."""
    p = _path(dir, "bomb.zip")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.bin", "w", force_zip64=True) as f:
            chunk = b"\x00" * (1024 * 1024)
            for _ in range(mb):
                f.write(chunk)
    return p


def make_zip_many_entries(dir: Path, n: int = 100) -> Path:
    """``n`` tiny entries (an entry-count bomb when the limit is below ``n``)."""
    return _zip(dir, "many.zip", [(f"f/{i}.txt", b"x") for i in range(n)])


def make_zip_lying_header(dir: Path) -> Path:
    """One entry of 1 MiB of zeros whose headers claim an uncompressed size of 100 bytes.

    Size checks based on the declared sizes pass; the real content is larger.
    """
    p = _zip(dir, "lying.zip", [("a/ok.txt", b"fine"), ("a/zeros.bin", b"\x00" * (1024 * 1024))])
    data = bytearray(p.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            size = struct.unpack_from("<I", data, pos + off)[0]
            if size == 1024 * 1024:
                struct.pack_into("<I", data, pos + off, 100)
            pos += 4
    p.write_bytes(bytes(data))
    return p


def make_nested_zip(dir: Path) -> Path:
    """A zip holding another zip (and a tar.gz) next to a normal file."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("inner/a.txt", b"inside")
    return _zip(
        dir,
        "nested.zip",
        [("d/a.txt", b"fine"), ("d/inner.zip", inner.getvalue()), ("d/more.tar.gz", b"\x1f\x8b")],
    )


def make_not_zip(dir: Path) -> Path:
    """A text file with a .zip name."""
    return _write(dir, "fake.zip", b"definitely not a zip archive\n" * 10)


def make_truncated_zip(dir: Path) -> Path:
    """A real zip cut in half (the central directory is gone)."""
    p = make_imagefolder_zip(dir)
    data = p.read_bytes()
    return _write(dir, "truncated.zip", data[: len(data) // 2])


def make_zip_bad_crc(dir: Path) -> Path:
    """A stored (uncompressed) entry with one content byte flipped: CRC mismatch."""
    p = _path(dir, "badcrc.zip")
    payload = b"A" * 1000
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("d/a.txt", payload)
    data = bytearray(p.read_bytes())
    i = data.find(payload)
    data[i + 500] = ord("B")
    p.write_bytes(bytes(data))
    return p


def make_zip_duplicates(dir: Path) -> Path:
    """The same path twice (first 'first', then 'second') and a case-only variant."""
    p = _path(dir, "dups.zip")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("d/cats/a.txt", b"first")
            zf.writestr("d/cats/a.txt", b"second")
            zf.writestr("d/cats/A.TXT", b"case")
            zf.writestr("d/dogs/b.txt", b"dog")
    return p


def make_zip_encrypted_flag(dir: Path) -> Path:
    """An entry flagged as password-protected (flag bit 0) next to a normal one.

    zipfile cannot write encrypted entries, so the flag is patched into both headers.
    """
    p = _zip(dir, "encrypted.zip", [("d/secret.txt", b"????"), ("d/a.txt", b"fine")])
    data = bytearray(p.read_bytes())
    name = b"d/secret.txt"
    for sig, flag_off, name_off in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            if data[pos + name_off : pos + name_off + len(name)] == name:
                data[pos + flag_off] |= 0x1
            pos += 4
    p.write_bytes(bytes(data))
    return p


def make_zip_file_dir_clash(dir: Path) -> Path:
    """``d/x`` as a file, then ``d/x/y.txt`` needing ``d/x`` to be a folder."""
    return _zip(dir, "clash.zip", [("d/x", b"file"), ("d/x/y.txt", b"child")])


def make_zip_with_bad_images(dir: Path) -> Path:
    """An ImageFolder zip where some images are broken (truncated, empty, text)."""
    good = _jpeg_bytes(_gradient(32, 32))
    return _zip(
        dir,
        "bad_images.zip",
        [
            ("set/cats/good.jpg", good),
            ("set/cats/truncated.jpg", good[: len(good) // 2]),
            ("set/dogs/good.jpg", good),
            ("set/dogs/empty.jpg", b""),
            ("set/dogs/text.jpg", b"not an image"),
        ],
    )
