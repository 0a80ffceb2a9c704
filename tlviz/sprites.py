"""Thumbnails for the map: JPEG sprite sheets for hover previews, small data URIs for
"images as points", and an even (class-stratified) sample when there are too many.

Sprite sheets hold the 96 px thumbnails of a dataset's images *in dataset order*: image
``i`` is tile ``i % per_sheet`` of sheet ``i // per_sheet``, row-major with ``cols``
tiles a row. They depend on the images only (not on a backbone, projection or split), so
one set serves every map of a dataset. Sizes measured on the shared datasets (96 px,
JPEG quality 70, 8 x 8 tiles): 1.2-1.9 KB a tile for photos (hymenoptera, flowers5,
cifar10-small), 0.5 KB for digits, i.e. ~25-40 MB for 20,000 images and 0.1-0.2 MB a
sheet. Built once and kept on disk (``cache_dir("sprites")``, keyed by the dataset's
content fingerprint).

>>> sheet_of(70), tile_box(70)
(1, (576, 0, 672, 96))
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

TILE = 96  # px: the hover preview's size
COLS = 8  # tiles a row
PER_SHEET = 64  # tiles a sheet (8 x 8: 768 x 768 px, ~80-120 KB for photos)
QUALITY = 70  # JPEG quality of the sheets
Progress = Callable[[int, int, str], None]


def sheet_of(index: int, per_sheet: int = PER_SHEET) -> int:
    """The sheet holding image ``index``."""
    return int(index) // per_sheet


def tile_box(index: int, tile: int = TILE, cols: int = COLS,
             per_sheet: int = PER_SHEET) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixels of image ``index``'s tile in its sheet."""
    k = int(index) % per_sheet
    x, y = (k % cols) * tile, (k // cols) * tile
    return x, y, x + tile, y + tile


def thumbnail(ds, index: int, size: int = TILE) -> Image.Image:
    """Image ``index`` of ``ds`` as a ``size`` x ``size`` RGB centre crop (grey when the
    file cannot be read: a map must not fail for one bad image)."""
    try:
        im = ds.load(int(index), size=size)
    except Exception:  # noqa: BLE001 - unreadable images are left out of the embedding too
        return Image.new("RGB", (size, size), (200, 200, 200))
    resample = Image.NEAREST if min(im.size) < size // 2 else Image.BILINEAR  # crisp tiny images
    return ImageOps.fit(im.convert("RGB"), (size, size), resample)


def _encode(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class SpriteSheets:
    """JPEG sheets of every image of a dataset, in dataset order (see the module doc)."""

    sheets: list[bytes]
    n: int
    tile: int = TILE
    cols: int = COLS
    per_sheet: int = PER_SHEET

    @property
    def nbytes(self) -> int:
        return sum(len(s) for s in self.sheets)

    def layout(self) -> dict:
        """What a browser needs besides the sheets' URLs to find a tile."""
        return {"n": self.n, "tile": self.tile, "cols": self.cols, "per_sheet": self.per_sheet}

    def tile_image(self, index: int) -> Image.Image:
        """Image ``index`` cut back out of its sheet (for tests and checks)."""
        return self.tile_images([index])[0]

    def tile_images(self, indices: Sequence[int], size: int | None = None) -> list[Image.Image]:
        """Images ``indices`` cut out of their sheets (each sheet decoded once), resized to
        ``size`` px when given."""
        out, open_sheets = [], {}
        for i in indices:
            s = sheet_of(i, self.per_sheet)
            if s not in open_sheets:
                with Image.open(io.BytesIO(self.sheets[s])) as im:
                    open_sheets[s] = im.convert("RGB")
            tile = open_sheets[s].crop(tile_box(i, self.tile, self.cols, self.per_sheet))
            out.append(tile if size is None or size == self.tile
                       else tile.resize((size, size), Image.BILINEAR))
        return out


def build_sprite_sheets(ds, tile: int = TILE, cols: int = COLS, per_sheet: int = PER_SHEET,
                        quality: int = QUALITY, progress: Progress | None = None,
                        cache: bool = True) -> SpriteSheets:
    """The sprite sheets of every image of ``ds`` (from the disk cache when there)."""
    from tlviz import config

    n = len(ds)
    n_sheets = (n + per_sheet - 1) // per_sheet
    folder = None
    if cache:
        folder = config.cache_dir("sprites") / f"{ds.fingerprint}-{tile}-{cols}-{per_sheet}-{quality}"
        meta = folder / "meta.json"
        try:
            if json.loads(meta.read_text()).get("n") == n:
                sheets = [(folder / f"{s:05d}.jpg").read_bytes() for s in range(n_sheets)]
                return SpriteSheets(sheets, n, tile, cols, per_sheet)
        except (OSError, ValueError):
            pass
    rows = (per_sheet + cols - 1) // cols
    sheets = []
    for s in range(n_sheets):
        start = s * per_sheet
        count = min(per_sheet, n - start)
        sheet = Image.new("RGB", (cols * tile, ((count + cols - 1) // cols if s == n_sheets - 1
                                                 else rows) * tile), (255, 255, 255))
        for k in range(count):
            sheet.paste(thumbnail(ds, start + k, tile), tile_box(k, tile, cols, per_sheet)[:2])
        sheets.append(_encode(sheet, quality))
        if progress is not None:
            progress(start + count, n, "thumbnails")
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for s, data in enumerate(sheets):
                tmp = folder / f"{s:05d}.jpg.tmp{os.getpid()}"
                tmp.write_bytes(data)
                os.replace(tmp, folder / f"{s:05d}.jpg")
            (folder / "meta.json").write_text(json.dumps({"n": n, "bytes": sum(map(len, sheets))}))
        except OSError:
            pass  # a read-only cache only costs time
    return SpriteSheets(sheets, n, tile, cols, per_sheet)


def stratified_sample(labels: Sequence[int], max_n: int, seed: int = 0) -> np.ndarray:
    """Row positions of at most ``max_n`` rows, spread evenly over the classes (each class
    keeps its share, at least one row when it has any), seeded, in ascending order."""
    labels = np.asarray(labels)
    n = len(labels)
    if n <= max_n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts * max_n / n)).astype(int)
    while quota.sum() > max_n:  # the "at least one" may overshoot: trim the largest
        quota[quota.argmax()] -= 1
    spare = max_n - quota.sum()
    if spare > 0:  # largest remainders first
        rem = counts * max_n / n - np.floor(counts * max_n / n)
        for c in np.argsort(-rem, kind="stable")[:spare]:
            quota[c] += quota[c] < counts[c]
    picked = [rng.choice(np.flatnonzero(labels == c), q, replace=False)
              for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def data_uri(im: Image.Image | np.ndarray, quality: int = 75) -> str:
    """A JPEG ``data:`` URI of an image (for images drawn inside a plotly figure)."""
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    return "data:image/jpeg;base64," + base64.b64encode(_encode(im.convert("RGB"), quality)).decode()


__all__ = ["COLS", "PER_SHEET", "QUALITY", "TILE", "SpriteSheets", "build_sprite_sheets",
           "data_uri", "sheet_of", "stratified_sample", "thumbnail", "tile_box"]
