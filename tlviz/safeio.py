"""Safe loading of untrusted images and archives (placeholder, being replaced)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps


class BadImage(ValueError):
    """An image that cannot be used; ``str(err)`` is the reason, fit for a user."""


class BadArchive(ValueError):
    """An archive that is refused; ``str(err)`` is the reason, fit for a user."""


def open_image(source, max_pixels: int | None = None) -> Image.Image:
    try:
        im = Image.open(source)
        im.load()
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise BadImage(f"unreadable image ({type(e).__name__}: {e})") from e


def safe_extract_zip(zip_path, dest) -> Path:
    import zipfile

    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise BadArchive("not a zip file") from e
    with zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest):
                raise BadArchive(f"entry {info.filename!r} would land outside the folder")
        zf.extractall(dest)
    return dest
