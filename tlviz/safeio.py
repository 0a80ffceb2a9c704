"""Safe loading of untrusted images, zip archives and user-given names.

Everything here treats its input as hostile: uploads, webcam captures and downloaded
datasets. Failures raise :class:`BadImage` / :class:`BadArchive` whose ``str()`` is a short
reason fit to show to a user. No global state (Pillow settings, warning filters) is changed,
so every function is safe to call from several threads at once.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from tlviz.errors import BadInput

__all__ = [
    "BadArchive",
    "BadImage",
    "ExtractResult",
    "Limits",
    "default_limits",
    "image_problem",
    "open_image",
    "safe_extract_zip",
    "sanitize_name",
]

log = logging.getLogger(__name__)

MB = 1024 * 1024
ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
ZipSource = str | os.PathLike[str] | IO[bytes]


class BadImage(BadInput):
    """An image that cannot be used; ``str(err)`` is the reason, fit for a user."""


class BadArchive(BadInput):
    """An archive that is refused; ``str(err)`` is the reason, fit for a user."""


# --------------------------------------------------------------------------- limits


def _env_number(var: str, default: float, scale: int = 1) -> float:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw) * scale
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        log.warning("ignoring %s=%r (want a positive number)", var, raw)
        return default
    return value


@dataclass
class Limits:
    """Size limits for untrusted input. Each has an environment variable (see :meth:`from_env`).

    ``max_image_pixels`` is the decompression-bomb guard of :func:`open_image` (checked from
    the header, before Pillow decodes); ``max_upload_bytes`` caps the archive file itself;
    ``max_images`` is for dataset loaders (not used in this module); the ``max_zip_*``
    limits guard :func:`safe_extract_zip`.
    """

    max_image_pixels: int = 40_000_000
    max_upload_bytes: int = 200 * MB
    max_images: int = 20_000
    max_zip_total_bytes: int = 2048 * MB
    max_zip_ratio: float = 100.0
    max_zip_entries: int = 50_000

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults overridden by ``TLVIZ_MAX_IMAGE_PIXELS``, ``TLVIZ_MAX_UPLOAD_MB``,
        ``TLVIZ_MAX_IMAGES``, ``TLVIZ_MAX_ZIP_MB``, ``TLVIZ_MAX_ZIP_RATIO`` and
        ``TLVIZ_MAX_ZIP_ENTRIES``. A missing, non-numeric or non-positive value keeps the default.
        """
        d = cls()
        return cls(
            max_image_pixels=int(_env_number("TLVIZ_MAX_IMAGE_PIXELS", d.max_image_pixels)),
            max_upload_bytes=int(_env_number("TLVIZ_MAX_UPLOAD_MB", d.max_upload_bytes, MB)),
            max_images=int(_env_number("TLVIZ_MAX_IMAGES", d.max_images)),
            max_zip_total_bytes=int(_env_number("TLVIZ_MAX_ZIP_MB", d.max_zip_total_bytes, MB)),
            max_zip_ratio=_env_number("TLVIZ_MAX_ZIP_RATIO", d.max_zip_ratio),
            max_zip_entries=int(_env_number("TLVIZ_MAX_ZIP_ENTRIES", d.max_zip_entries)),
        )


def default_limits() -> Limits:
    """The limits in force now: :meth:`Limits.from_env` (read on every call, cheap)."""
    return Limits.from_env()


def _mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


# --------------------------------------------------------------------------- images

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_HIGH_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _too_big(pixels: int, limit: int, size: tuple[int, int] | None = None) -> BadImage:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return BadImage(
        f"image is too large ({dims}{pixels:,} pixels; the limit is {limit:,}); "
        "set TLVIZ_MAX_IMAGE_PIXELS to raise it"
    )


def _is_empty(source: Any) -> bool:
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            return len(source) == 0
        if isinstance(source, str | os.PathLike):
            return os.path.getsize(source) == 0
        pos = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(pos)
        return end == 0
    except (OSError, AttributeError, ValueError):
        return False


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float grayscale image to 8 bits (rescale, never clip)."""
    arr = np.asarray(im).astype(np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and hi <= 65535):
        out = arr / 257.0  # full 16-bit range -> full 8-bit range
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        out = arr * 255.0
    elif hi > lo:  # unknown range: stretch min..max
        out = (arr - lo) * (255.0 / (hi - lo))
    else:
        out = np.zeros_like(arr)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited onto white."""
    if im.mode in _HIGH_BIT_MODES:
        im = _to_8bit_gray(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        out = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out.alpha_composite(rgba)
        return out.convert("RGB")
    try:
        return im.convert("RGB")  # always a new image
    except ValueError as e:
        raise BadImage(f"unsupported colour mode {im.mode}") from e


def _decode(im: Image.Image, max_pixels: int, draft_size: int | None) -> Image.Image:
    w, h = im.size
    if w * h > max_pixels:
        raise _too_big(w * h, max_pixels, (w, h))
    if draft_size and draft_size > 0 and isinstance(im, JpegImagePlugin.JpegImageFile):
        im.draft("RGB", (draft_size, draft_size))
    im.load()  # first frame only for animated files
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception as e:  # noqa: BLE001 - broken EXIF must not lose the picture
        log.debug("ignoring unusable EXIF orientation: %s", e)
    return _to_rgb(im)


def open_image(
    source: ImageSource, max_pixels: int | None = None, draft_size: int | None = None
) -> Image.Image:
    """Open an untrusted image as a fully loaded, EXIF-rotated RGB image.

    ``source`` is a path, bytes or a binary file object (read from its start). Images above
    ``max_pixels`` (default: :func:`default_limits`) are refused from the header, before
    decoding. Alpha and palette transparency are composited onto white; 16-bit and float
    grayscale are rescaled to 8 bits; animated files give their first frame. With
    ``draft_size``, JPEGs are decoded at a reduced scale whose shorter side stays
    >= ``draft_size``. Raises :class:`BadImage` with a user-readable reason.
    """
    limit = max_pixels if max_pixels is not None else default_limits().max_image_pixels
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    try:
        with Image.open(source) as im:
            return _decode(im, limit, draft_size)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = _BOMB_PIXELS.search(str(e))
        pixels = int(m.group(1)) if m else 0
        if not pixels or pixels > limit:
            raise _too_big(pixels, limit) from e
        raise BadImage(f"image is too large ({pixels:,} pixels) for Pillow's safety limit") from e
    except UnidentifiedImageError as e:
        if _is_empty(source):
            raise BadImage("empty file (0 bytes)") from e
        raise BadImage("not an image, or an unsupported image format") from e
    except FileNotFoundError as e:
        raise BadImage("file not found") from e
    except IsADirectoryError as e:
        raise BadImage("is a folder, not an image") from e
    except PermissionError as e:
        raise BadImage("permission denied") from e
    except MemoryError as e:
        raise BadImage("not enough memory to decode this image") from e
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower():
            raise BadImage("image file is truncated (incomplete download or copy?)") from e
        raise BadImage(f"corrupt image ({msg or type(e).__name__})") from e
    except (SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError) as e:
        raise BadImage(f"corrupt image ({e or type(e).__name__})") from e


def image_problem(path: str | os.PathLike[str], max_pixels: int | None = None) -> str | None:
    """Why ``path`` cannot be used as an image, or None when it loads fine.

    Does a full (JPEG: reduced-scale) decode so truncated files are caught.
    """
    try:
        open_image(path, max_pixels=max_pixels, draft_size=16)
    except BadImage as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- names

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)
}
_EMOJI_JOINERS = {"\u200d"}  # zero-width joiner, used in emoji sequences


def _keep_char(ch: str) -> bool:
    if ch in " -_." or ch in _EMOJI_JOINERS:
        return True
    cat = unicodedata.category(ch)
    return cat[0] in "LNM" or cat in ("So", "Sk")  # letters, digits, marks, emoji/symbols


def sanitize_name(name: str, max_len: int = 80) -> str:
    """A safe single path component from a user-given name (class or dataset name).

    Keeps Unicode letters, digits, emoji, spaces and ``-_.``; path separators and other
    punctuation become ``_``; control and bidi characters are dropped; leading dots and
    surrounding spaces are stripped. Never empty (``"unnamed"``), never ``.``/``..``, at most
    ``max_len`` characters and 255 UTF-8 bytes.
    """
    text = unicodedata.normalize("NFC", str(name))
    out = []
    for ch in text:
        if _keep_char(ch):
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch)[0] == "C":
            continue  # control, format (bidi overrides), unassigned
        else:
            out.append("_")
    s = re.sub(r" {2,}", " ", "".join(out)).lstrip(" .").rstrip(" ")
    max_len = max(2, max_len)
    for _ in range(2):  # twice: the reserved-name prefix may need room
        s = s[:max_len]
        while len(s.encode("utf-8")) > 255:
            s = s[:-1]
        s = s.rstrip(" .\u200d")  # trailing dots/spaces misbehave on Windows
        if s.split(".")[0].upper() in _WINDOWS_RESERVED:
            s = "_" + s
    return "unnamed" if s in ("", ".", "..") else s


# --------------------------------------------------------------------------- zip archives

_JUNK_DIRS = {"__MACOSX"}
_JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_ARCHIVE_SUFFIXES = tuple(".zip .tar .gz .tgz .bz2 .tbz2 .xz .txz .zst .7z .rar".split())
_SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "dev"}
_RATIO_MIN_BYTES = 1 * MB  # below this uncompressed size the ratio cannot hurt anyone
_DISK_MARGIN = 64 * MB
_CHUNK = 1 * MB
_CLASH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


@dataclass
class ExtractResult:
    """What :func:`safe_extract_zip` produced. ``os.fspath(result)`` is ``root``.

    ``root`` is the dataset folder: ``dest``, or the single top-level folder inside it
    when that folder holds sub-folders (e.g. ``mydata/train/cats/x.jpg`` -> ``dest/mydata``).
    ``skipped`` lists ``(entry name, reason)`` for entries not extracted (junk such as
    ``__MACOSX/`` is dropped silently).
    """

    root: Path
    files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)


def _entry_parts(name: str) -> list[str] | None:
    """Safe path components of a zip entry name; None for an empty name.

    Raises BadArchive for absolute paths, drive letters and ``..`` (path traversal).
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise BadArchive(f"entry {name!r} has an absolute path; the archive was refused")
    parts = [unicodedata.normalize("NFC", p) for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadArchive(f"entry {name!r} points outside the folder; the archive was refused")
    return parts or None


def _skip_reason(info: zipfile.ZipInfo, parts: list[str]) -> str | None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link (not extracted)"
    if info.flag_bits & 0x1:
        return "password-protected (not extracted)"
    if any(unicodedata.category(ch) == "Cc" for p in parts for ch in p):
        return "file name contains control characters"
    if any(len(p.encode("utf-8")) > 255 for p in parts):
        return "file name too long"
    if not info.is_dir() and parts[-1].lower().endswith(_ARCHIVE_SUFFIXES):
        return "archive inside the archive (not extracted)"
    return None


def _is_junk(parts: list[str]) -> bool:
    name = parts[-1]
    return name in _JUNK_FILES or name.startswith("._") or any(p in _JUNK_DIRS for p in parts)


def _archive_size(src: Any) -> int | None:
    try:
        if isinstance(src, str | os.PathLike):
            return os.path.getsize(src)
        pos = src.tell()
        end = src.seek(0, io.SEEK_END)
        src.seek(pos)
        return int(end)
    except (OSError, AttributeError, ValueError):
        return None


def _archive_name(src: Any) -> str:
    if isinstance(src, str | os.PathLike):
        return Path(src).name
    name = getattr(src, "name", None)
    return Path(name).name if isinstance(name, str) and name else "the upload"


def _dataset_root(top: Path) -> Path:
    """Descend through single wrapper folders that hold sub-folders (not into split folders)."""
    root = top
    for _ in range(8):
        children = [c for c in root.iterdir() if not c.name.startswith(".")]
        if len(children) != 1 or not children[0].is_dir():
            break
        only = children[0]
        if only.name.lower() in _SPLIT_NAMES or not any(c.is_dir() for c in only.iterdir()):
            break
        root = only
    return root


def _open_zip(src: Any, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(src)
    except zipfile.BadZipFile as e:
        raise BadArchive(f"{name} is not a zip archive") from e
    except (ValueError, EOFError, struct.error, NotImplementedError, IndexError, KeyError) as e:
        raise BadArchive(f"{name} is a damaged zip archive") from e


def _copy_entry(src: IO[bytes], dst: IO[bytes], declared: int, remaining: int) -> int:
    """Stream one entry, counting real bytes: declared sizes can lie."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > declared:
            raise BadArchive("an entry expands beyond its declared size (zip bomb?); refused")
        if written > remaining:
            raise BadArchive("the archive expands beyond the size limit (zip bomb?); refused")
        dst.write(chunk)
    return written


def safe_extract_zip(
    zip_path_or_fileobj: ZipSource, dest: str | os.PathLike[str], limits: Limits | None = None
) -> ExtractResult:
    """Extract an untrusted zip into ``dest`` (created; must be absent or empty).

    Refuses the whole archive (:class:`BadArchive`, nothing left on disk) for: not a zip,
    path traversal (``..``, absolute paths, drive letters, backslash variants), too many
    entries, too large declared total, too high compression ratio, entries that expand
    beyond their declared size or the limit while streaming, CRC errors, too little disk
    space. Skips with a recorded reason: symlinks, nested archives, password-protected
    entries, duplicates (also by case), bad names and name clashes. Drops macOS/Windows
    junk silently. Extracts into a hidden temp folder next to ``dest`` and renames it.
    """
    limits = limits or default_limits()
    dest = Path(dest)
    name = _archive_name(zip_path_or_fileobj)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} already exists and is not empty")
    size = _archive_size(zip_path_or_fileobj)
    if size is not None and size > limits.max_upload_bytes:
        raise BadArchive(
            f"{name} is {_mb(size)}, above the limit of {_mb(limits.max_upload_bytes)}; "
            "set TLVIZ_MAX_UPLOAD_MB to raise it"
        )

    with _open_zip(zip_path_or_fileobj, name) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_entries:
            raise BadArchive(
                f"{name} has {len(infos):,} entries, above the limit of "
                f"{limits.max_zip_entries:,}; set TLVIZ_MAX_ZIP_ENTRIES to raise it"
            )
        total = sum(max(0, i.file_size) for i in infos)
        if total > limits.max_zip_total_bytes:
            raise BadArchive(
                f"{name} would expand to {_mb(total)}, above the limit of "
                f"{_mb(limits.max_zip_total_bytes)}; set TLVIZ_MAX_ZIP_MB to raise it"
            )
        if size and total > _RATIO_MIN_BYTES and total / size > limits.max_zip_ratio:
            raise BadArchive(
                f"{name} is compressed {total / size:,.0f}:1, above the limit of "
                f"{limits.max_zip_ratio:,.0f}:1 (zip bomb?); set TLVIZ_MAX_ZIP_RATIO to raise it"
            )

        # plan: validate every name before writing anything
        skipped: list[tuple[str, str]] = []
        plan: list[tuple[zipfile.ZipInfo, list[str]]] = []
        seen: dict[str, str] = {}  # casefolded path -> first path
        for info in infos:
            parts = _entry_parts(info.filename)
            if parts is None or _is_junk(parts):
                continue
            reason = _skip_reason(info, parts)
            path = "/".join(parts)
            if reason is None and not info.is_dir():
                first = seen.get(path.casefold())
                if first is None:
                    seen[path.casefold()] = path
                elif first == path:
                    reason = "duplicate name (kept the first)"
                else:
                    reason = f"same name as {first!r} apart from case (kept the first)"
            if reason:
                skipped.append((info.filename, reason))
            else:
                plan.append((info, parts))

        dest.parent.mkdir(parents=True, exist_ok=True)
        needed = sum(i.file_size for i, _ in plan)
        free = shutil.disk_usage(dest.parent).free
        if needed + _DISK_MARGIN > free:
            raise BadArchive(f"not enough disk space to extract {name} ({_mb(needed)} needed)")

        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
        try:
            files, remaining = 0, limits.max_zip_total_bytes
            tmp_real = tmp.resolve()
            for info, parts in plan:
                target = tmp.joinpath(*parts)
                if not target.resolve().is_relative_to(tmp_real):  # defence in depth
                    raise BadArchive(f"entry {info.filename!r} points outside the folder")
                try:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "xb") as dst:
                        remaining -= _copy_entry(src, dst, info.file_size, remaining)
                    files += 1
                except NotImplementedError:  # raised by zf.open, before anything is written
                    skipped.append((info.filename, "unsupported compression method"))
                except OSError as e:
                    if e.errno not in _CLASH_ERRNOS:
                        raise
                    why = "path too long" if e.errno == errno.ENAMETOOLONG else "name clashes"
                    skipped.append((info.filename, f"{why} (not extracted)"))
                except (zipfile.BadZipFile, EOFError, zlib.error) as e:
                    why = "bad checksum" if "CRC" in str(e) else "unreadable data"
                    raise BadArchive(
                        f"{name} is damaged ({info.filename!r}: {why}); the archive was refused"
                    ) from e
            if dest.exists():
                dest.rmdir()  # empty, checked above
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return ExtractResult(root=_dataset_root(dest), files=files, skipped=skipped)
