"""Datasets: one interface over built-in, folder, zip, data-directory and downloadable images.

An :class:`ImageDataset` is a list of image *sources* (file paths, or rows of an
in-memory array) with integer labels, class names and a split per image
(``train``/``val``/``test``). Unreadable files are skipped at scan time and listed
in ``dataset.skipped`` with a reason; nothing here raises on bad images.

>>> ds = load_dataset("digits")
>>> ds.classes[:3], len(ds) > 1000
(['0', '1', '2'], True)
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import threading
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from tlviz import config
from tlviz.errors import BadInput
from tlviz.safeio import (
    BadArchive,
    BadImage,
    default_limits,
    open_image,
    safe_extract_zip,
    sanitize_name,
)

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}

Progress = Callable[[int, int, str], None]


class DatasetError(BadInput):
    """A dataset that cannot be used as asked; the message says what to do."""


class DatasetUnavailable(DatasetError):
    """A dataset that is not on this machine (and cannot be downloaded now)."""


@dataclass
class ImageDataset:
    """Images with labels, class names and splits.

    ``sources[i]`` is a file path (str) or an index into ``arrays`` (uint8, HxW or HxWx3).
    """

    name: str
    classes: list[str]
    sources: list
    labels: np.ndarray
    splits: np.ndarray
    arrays: np.ndarray | None = None
    root: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=object)

    def __len__(self) -> int:
        return len(self.sources)

    def __repr__(self) -> str:
        counts = {s: int((self.splits == s).sum()) for s in self.split_names}
        return f"ImageDataset({self.name!r}, {len(self.classes)} classes, {counts})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_names(self) -> list[str]:
        return [s for s in SPLITS if (self.splits == s).any()]

    def indices(self, split: str | None) -> np.ndarray:
        """Positions of the images in ``split`` (all images for None)."""
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.splits == split)

    def path(self, i: int) -> str:
        """A human-readable name for image ``i`` (its file path, or ``name[i]``)."""
        src = self.sources[i]
        return src if isinstance(src, str) else f"{self.name}[{src}]"

    def load(self, i: int, size: int | None = None) -> Image.Image:
        """Image ``i`` as RGB. ``size`` lets JPEGs decode at reduced scale (>= size)."""
        src = self.sources[i]
        if isinstance(src, str):
            return open_image(src, max_pixels=default_limits().max_image_pixels, draft_size=size)
        arr = self.arrays[src]
        im = Image.fromarray(arr)
        return im.convert("RGB")

    def counts(self):
        """A DataFrame of image counts: one row per class, one column per split."""
        import pandas as pd

        df = pd.crosstab(pd.Categorical([self.classes[k] for k in self.labels], self.classes),
                         pd.Categorical(list(self.splits), list(SPLITS)), dropna=False)
        df = df[[s for s in SPLITS if df[s].sum() > 0]]
        df.index.name, df.columns.name = "class", None
        return df

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the images' bytes (in order), labels and class names.

        Splits are left out: features per image do not depend on them.
        """
        h = hashlib.sha256()
        h.update(json.dumps(self.classes).encode())
        h.update(self.labels.tobytes())
        if self.arrays is not None:
            h.update(np.ascontiguousarray(self.arrays).tobytes())
            h.update(np.asarray([s if isinstance(s, int) else -1 for s in self.sources]).tobytes())
        paths = [s for s in self.sources if isinstance(s, str)]
        for digest in _file_digests(paths):
            h.update(digest)
        return h.hexdigest()[:20]

    def with_splits(self, splits: np.ndarray, warnings: Sequence[str] = ()) -> ImageDataset:
        """The same images with other split assignments."""
        ds = self.subset(np.arange(len(self)))
        ds.splits = np.asarray(splits, dtype=object)
        ds.warnings += list(warnings)
        return ds

    def ensure_val(self, fraction: float = 0.2, seed: int = 0) -> ImageDataset:
        """Self when a val split exists; else a seeded stratified part of train becomes val."""
        if (self.splits == "val").any() or not (self.splits == "train").any():
            return self
        tr = self.indices("train")
        sub, w = stratified_split(self.labels[tr], (1 - fraction, fraction), seed, ("train", "val"),
                                  self.classes)
        splits = self.splits.copy()
        splits[tr] = sub
        return self.with_splits(splits, [f"no val split: {fraction:.0%} of train (seed {seed}) "
                                         "held out as val", *w])

    def leave_out(self, indices: Sequence[int]) -> ImageDataset:
        """The same dataset with the *training* images at ``indices`` out of every split (a
        what-if run: val and test stay the same, so runs compare on the same images)."""
        idx = np.asarray(sorted({int(i) for i in indices}), dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise DatasetError(f"image numbers to leave out must be within 0..{len(self) - 1}")
        train = idx[self.splits[idx] == "train"] if len(idx) else idx
        if not len(train):
            return self
        splits = self.splits.copy()
        splits[train] = "left-out"  # not a split: no mode trains or scores on these
        return self.with_splits(splits, [f"{len(train)} training image(s) left out (what-if run)"])

    def check_trainable(self) -> None:
        """Raise :class:`DatasetError` saying why no classifier can be trained on this dataset."""
        train = self.labels[self.splits == "train"]
        if not len(train):
            raise DatasetError(f"{self.name} has no training images (no train split)")
        present = np.unique(train)
        if len(present) < 2:
            only = f" ({self.classes[int(present[0])]!r})" if len(present) else ""
            raise DatasetError(f"{self.name} has training images of only one class{only}: "
                               "a classifier needs at least two classes")

    def subset(self, idx: Sequence[int] | np.ndarray, name: str | None = None) -> ImageDataset:
        """A dataset of the images at positions ``idx`` (same classes)."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageDataset(name or self.name, list(self.classes), [self.sources[i] for i in idx],
                            self.labels[idx], self.splits[idx], self.arrays, self.root,
                            list(self.skipped), list(self.warnings))


def _per_file_memo(kind: str, paths: list[str], compute: Callable[[list[str]], list[str]],
                   valid: Callable[[object], bool], missing: str) -> list[str]:
    """``compute`` of each file (a string), remembered per (path, size, mtime) in a JSON file,
    so that a re-scan of an unchanged folder reads no image; ``valid`` rejects damaged
    entries, ``missing`` stands for a file that cannot be stat'ed."""
    cache_file = config.cache_dir("fingerprints") / f"{kind}.json"
    try:
        memo = json.loads(cache_file.read_text())
        memo = memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        memo = {}
    keys: list[str | None] = []
    for p in paths:
        try:
            st = os.stat(p)
            keys.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            keys.append(None)
    todo = [(p, k) for p, k in zip(paths, keys) if k is not None and not valid(memo.get(k))]
    if todo:
        memo.update(zip((k for _, k in todo), compute([p for p, _ in todo])))
        with contextlib.suppress(OSError):  # only a memo: failing to save it costs time, not data
            _atomic_write_text(cache_file, json.dumps(memo))
    return [missing if k is None else memo[k] for k in keys]


def forget_memo_paths(prefix: str) -> None:
    """Drop the file-hash memo's entries of paths under ``prefix`` (a deleted workspace)."""
    for cache_file in config.cache_dir("fingerprints").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            memo = json.loads(cache_file.read_text())
            if isinstance(memo, dict):
                kept = {k: v for k, v in memo.items() if not str(k).startswith(prefix)}
                if len(kept) != len(memo):
                    _atomic_write_text(cache_file, json.dumps(kept))


_HEX = re.compile(r"[0-9a-f]{64}")


def _sha256_files(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(hashlib.sha256(f.read()).hexdigest())
    return out


def _file_digests(paths: list[str]) -> list[bytes]:
    """sha256 of each file, remembered per (path, size, mtime) so a re-scan is cheap."""
    digests = _per_file_memo("files", paths, _sha256_files,
                             lambda d: isinstance(d, str) and len(d) == 64 and bool(_HEX.fullmatch(d)),
                             missing="missing")
    return [b"missing" if d == "missing" else bytes.fromhex(d) for d in digests]


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file unique to this process and thread, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- splits


def cv_folds(y: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded k-fold (train, held-out) index pairs within the training rows;
    ``k`` is lowered to the smallest class's size (at least 2 folds, else none)."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.unique(y, return_counts=True)[1]
    k = int(min(k, counts.min())) if len(counts) > 1 else 0
    if k < 2:
        return []
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def stratified_split(labels: np.ndarray, fractions=(0.6, 0.2, 0.2), seed: int = 0,
                     names=SPLITS, class_names: Sequence[str] | None = None
                     ) -> tuple[np.ndarray, list[str]]:
    """Assign each label to a split, per class, seeded. Returns (splits, warnings).

    A class with too few images for every split keeps them in train and says so (by
    name when ``class_names`` is given; many such classes are summed up in one warning).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    splits = np.empty(len(labels), dtype=object)
    fr = np.asarray(fractions, dtype=float) / sum(fractions)
    order = np.argsort(labels, kind="stable")  # one pass: fast for thousands of classes
    keys, starts = np.unique(labels[order], return_index=True)
    small = []
    for k, idx in zip(keys, np.split(order, starts[1:])):
        idx = idx.copy()
        rng.shuffle(idx)
        n = len(idx)
        if n < len(fr):
            splits[idx] = names[0]
            small.append((k, n))
            continue
        # at least one image per split, the rest by fraction
        sizes = np.maximum(1, np.floor(fr[1:] * n).astype(int))
        start = n - sizes.sum()
        splits[idx[:start]] = names[0]
        for name, size in zip(names[1:], sizes):
            splits[idx[start:start + size]] = name
            start += size
    label = (lambda k: repr(class_names[int(k)])) if class_names is not None else (
        lambda k: str(int(k)))
    why = f"too few for a stratified {'/'.join(names)} split; all kept in {names[0]}"
    if len(small) > 5:
        eg = ", ".join(label(k) for k, _ in small[:3])
        return splits, [f"{len(small)} classes have fewer than {len(fr)} images (e.g. {eg}): {why}"]
    return splits, [f"class {label(k)} has {n} image(s): {why}" for k, n in small]


# ----------------------------------------------------------------------------- folders


def _is_image_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _check_image(path: str) -> str | None:
    """Reason the image is unusable, or None. Decodes at reduced scale: cheap."""
    try:
        open_image(path, max_pixels=default_limits().max_image_pixels, draft_size=16)
    except BadImage as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - a scan must never crash on a file
        return f"unreadable ({type(e).__name__})"
    return None


def _check_images(paths: list[str]) -> list[str]:
    """"" for a usable image, else the reason; in threads (Pillow releases the GIL)."""
    with ThreadPoolExecutor(max_workers=4) as ex:
        return [r or "" for r in ex.map(_check_image, paths)]


def _checked(paths: list[str]) -> dict[str, str | None]:
    """Path -> reason the image is unusable, or None; remembered per (path, size, mtime)
    under the limits in force (a changed limit checks again)."""
    lim = default_limits().max_image_pixels
    reasons = _per_file_memo(f"checks-{lim}", paths, _check_images,
                             lambda r: isinstance(r, str), missing="file not found")
    return {p: r or None for p, r in zip(paths, reasons)}


def scan_folder(root: str | os.PathLike, name: str | None = None, seed: int = 0,
                fractions=(0.6, 0.2, 0.2)) -> ImageDataset:
    """Read an ImageFolder layout: ``root/<split>/<class>/*`` or ``root/<class>/*``.

    Without split folders, a seeded stratified split is made (``fractions`` for
    train/val/test). Files that are not images are listed in ``skipped``; odd shapes
    (empty or single classes, classes missing from train, duplicates across splits) in
    ``warnings``. More than ``Limits.max_images`` image files is refused.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    name = name or root.name
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "__")))
    split_dirs = {SPLIT_ALIASES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_ALIASES}
    skipped: list[tuple[str, str]] = []
    entries: list[tuple[str, str, str | None]] = []  # (path, class, split)
    class_dirs: set[str] = set()

    def collect(folder: Path, split: str | None) -> None:
        for cdir in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
            cls = unicodedata.normalize("NFC", cdir.name)  # macOS writes names decomposed
            class_dirs.add(cls)
            for f in sorted(cdir.rglob("*")):
                if f.is_dir() or f.name.startswith("."):
                    continue
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    entries.append((str(f), cls, split))
                else:
                    skipped.append((str(f), f"not an image file ({f.suffix or 'no extension'})"))
        for f in sorted(folder.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                skipped.append((str(f), "not inside a class folder"))

    if split_dirs:
        for split, d in split_dirs.items():
            collect(d, split)
    else:
        collect(root, None)
    limit = default_limits().max_images
    if len(entries) > limit:
        raise DatasetError(f"{name} has {len(entries):,} images, above the limit of {limit:,}; "
                           "use a smaller subset or set TLVIZ_MAX_IMAGES to raise it")
    problems = _checked([e[0] for e in entries])
    good = []
    for path, cls, split in entries:
        if problems[path]:
            skipped.append((path, problems[path]))
        else:
            good.append((path, cls, split))
    classes = sorted({c for _, c, _ in good})
    empty = sorted(class_dirs - set(classes))
    warnings = [f"class {c!r} has no readable images and is left out" for c in empty[:5]]
    if len(empty) > 5:
        warnings.append(f"{len(empty) - 5} more classes have no readable images and are left out")
    if not good:
        raise DatasetError(f"no readable images found in {root}: expected class folders "
                           f"(root/<class>/<image>) or split folders (root/train/<class>/<image>)")
    if len(classes) < 2:
        warnings.append(f"only one class ({classes[0]!r}): a classifier needs at least two")
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[c] for _, c, _ in good])
    if split_dirs:
        splits = np.array([s for _, _, s in good], dtype=object)
        if "train" not in split_dirs:
            warnings.append("no train/ folder: nothing to train on")
        else:
            missing = sorted(set(classes) - {c for _, c, s in good if s == "train"})
            if missing:
                eg = ", ".join(repr(c) for c in missing[:3]) + (" ..." if len(missing) > 3 else "")
                warnings.append(f"{len(missing)} class(es) have no training images ({eg}): "
                                "the classifier cannot learn them")
    else:
        splits, w = stratified_split(labels, fractions, seed, class_names=classes)
        warnings += w
    ds = ImageDataset(name, classes, [p for p, _, _ in good], labels, splits, root=root,
                      skipped=skipped, warnings=warnings)
    _warn_leakage(ds)
    return ds


def _warn_leakage(ds: ImageDataset) -> None:
    """Warn when the same file content appears in two splits."""
    if len(ds) > 20000 or len(ds.split_names) < 2:
        return
    seen: dict[bytes, str] = {}
    dup = 0
    for path, split, digest in zip(ds.sources, ds.splits, _file_digests(ds.sources)):
        other = seen.setdefault(digest, split)
        if other != split:
            dup += 1
            if dup <= 3:
                ds.warnings.append(f"leakage: {Path(path).name} is in {split} and also in {other}")
    if dup > 3:
        ds.warnings.append(f"leakage: {dup} images appear in more than one split in all")


# ----------------------------------------------------------------------------- archives


MARKER = ".tlviz-root"


def _read_marker(folder: Path) -> tuple[Path, list[tuple[str, str]]] | None:
    """(dataset root, entries skipped at extraction) of an extracted upload, or None."""
    try:
        raw = (folder / MARKER).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        info = json.loads(raw)
        root = (folder / info["root"]).resolve()
        skipped = [(str(a), str(b)) for a, b in info.get("skipped", [])]
    except (ValueError, KeyError, TypeError):
        root, skipped = Path(raw.strip()), []  # older marker: the root path as plain text
    if not root.is_dir() or not root.is_relative_to(folder.resolve()):
        return None
    return root, skipped


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


def _extract_zip(zip_path: Path, name: str | None) -> tuple[Path, list[tuple[str, str]]]:
    limits = default_limits()
    size = zip_path.stat().st_size
    if size > limits.max_upload_bytes:  # before hashing gigabytes
        raise BadArchive(f"{zip_path.name} is {size / 2**20:,.1f} MB, above the limit of "
                         f"{limits.max_upload_bytes / 2**20:,.1f} MB; set TLVIZ_MAX_UPLOAD_MB "
                         "to raise it")
    h = hashlib.sha256()
    with open(zip_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    dest = config.user_datasets_dir() / f"{sanitize_name(name or zip_path.stem)}-{h.hexdigest()[:8]}"
    done = _read_marker(dest)
    if done:
        return done
    ws = _writable_workspace("take an upload", add_bytes=size)
    # Extract into a private folder, mark it complete, then rename it into place: a crash
    # leaves only a hidden folder, and concurrent uploads of the same zip all succeed.
    work = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    for old in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):  # left by a crash
        if not _pid_alive(old.name.split(".")[-3]):
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    try:
        result = safe_extract_zip(zip_path, work / "data", limits)
        root = Path(result.root)
        marker = {"root": root.relative_to(work).as_posix(), "skipped": result.skipped,
                  "source": zip_path.name}
        (work / MARKER).write_text(json.dumps(marker), encoding="utf-8")
        if dest.exists() and _read_marker(dest) is None:  # a damaged earlier attempt
            shutil.rmtree(dest, ignore_errors=True)
        with contextlib.suppress(OSError):  # lost a race: another upload put it in place
            os.rename(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = _read_marker(dest)
    if done is None:
        raise DatasetError(f"could not store the extracted {zip_path.name} in {dest.parent}")
    _within_quota(ws, dest)
    return done


def _writable_workspace(what: str, add_bytes: int = 0):
    """The active workspace (None in single mode), after checking it may ``what`` and has
    room for ``add_bytes`` more."""
    from tlviz import workspaces

    ws = workspaces.current()
    if ws is not None:
        ws.require_writable(what)
        workspaces.check_quota(ws, add_bytes=add_bytes)
    return ws


def _within_quota(ws, added: Path) -> None:
    """Remove ``added`` (just stored) again when the workspace is now over a limit."""
    from tlviz import workspaces

    try:
        workspaces.check_quota(ws)
    except workspaces.QuotaExceeded:
        shutil.rmtree(added, ignore_errors=True)
        raise


def extract_zip(zip_path: str | os.PathLike, name: str | None = None) -> Path:
    """Extract a zip of an ImageFolder layout into the user datasets folder, safely.

    Returns the dataset root. The same zip is extracted once (by content hash); a refused
    archive raises :class:`~tlviz.safeio.BadArchive` and leaves nothing behind.
    """
    return _extract_zip(Path(zip_path), name)[0]


def _load_extracted(folder: Path, name: str, seed: int) -> ImageDataset:
    root, zip_skipped = _read_marker(folder) or (folder, [])
    ds = scan_folder(root, name, seed)
    ds.skipped[:0] = zip_skipped
    return ds


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: where it comes from and whether it is here now."""

    name: str
    description: str
    kind: str  # builtin | datadir | download | user | published
    loader: Callable[..., ImageDataset]
    locate: Callable[[], str | None] = lambda: None  # None when available, else why not
    download: Callable[[Progress | None], None] | None = None

    def available(self) -> tuple[bool, str]:
        why = self.locate()
        return (why is None, why or "available offline")


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in _REGISTRY:
        raise BadInput(f"dataset {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def list_datasets() -> list[DatasetInfo]:
    """Registered datasets, features-only sets (:mod:`tlviz.synth`), then folders in the
    data directory and user datasets."""
    from tlviz import workspaces
    from tlviz.synth import list_feature_sets

    out = list(_REGISTRY.values())
    known = set(_REGISTRY)
    for info in list_feature_sets():
        if info.name not in known:
            out.append(info)
            known.add(info.name)
    bases: list[tuple[Path | None, str]] = [(config.data_dir(), "datadir")]
    if workspaces.classroom():  # shared published ones, then the active workspace's own
        pub = workspaces.published().datasets_dir
        bases.append((pub if pub.is_dir() else None, "published"))
        try:
            bases.append((config.user_datasets_dir(), "user"))
        except workspaces.NoWorkspace:
            pass
    else:
        bases.append((config.user_datasets_dir(), "user"))
    for base, kind in bases:
        if base is None:
            continue
        try:
            entries = sorted(base.iterdir())
        except OSError:  # an unreadable data folder hides its datasets, not everyone's
            continue
        for d in entries:
            # user datasets are folders the app made: a symlink there is never one of them
            if kind in ("user", "published") and d.is_symlink():
                continue
            if d.is_dir() and not d.name.startswith(".") and d.name not in known:
                about = ("image folders in the data directory" if kind == "datadir" else
                         "made here: an uploaded zip or webcam photos")  # no server path shown
                out.append(DatasetInfo(d.name, about, kind,
                                       lambda seed=0, _d=d, **_: _load_extracted(_d, _d.name, seed)))
                known.add(d.name)
    return out


def get_dataset_info(name: str) -> DatasetInfo:
    for info in list_datasets():
        if info.name == name:
            return info
    names = ", ".join(i.name for i in list_datasets())
    raise DatasetError(f"unknown dataset {name!r}; known: {names}; or give a folder or .zip path")


MAX_NAME_CHARS = 200


def is_dataset_name(ref: object) -> bool:
    """True when ``ref`` has the shape of a listed dataset's name: a short string that is a
    single path component (no separator, no ``.``/``..``, no ``~`` start, no control
    characters). It says nothing about whether such a dataset exists."""
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_NAME_CHARS:
        return False
    if ref in (".", "..") or ref.startswith("~") or "/" in ref or "\\" in ref or ":" in ref:
        return False
    return not any(unicodedata.category(ch)[0] == "C" for ch in ref)


def load_named(name: str, seed: int = 0, download: bool = False,
               progress: Progress | None = None) -> ImageDataset:
    """Open a dataset by the name :func:`list_datasets` gives it, and nothing else.

    This is what the web app uses: a folder or zip *path* is refused without touching the
    file system (paths are for the CLI and the Python API, :func:`load_dataset`).
    ``download=True`` lets a downloadable dataset fetch its files (online only).
    """
    if not is_dataset_name(name):
        raise DatasetError("not a dataset name (paths are not accepted here): "
                           f"{str(name)[:60]!r}")
    info = get_dataset_info(name)
    ok, why = info.available()
    if not ok:
        if download and info.download is not None:
            info.download(progress)
        else:
            raise DatasetUnavailable(f"{info.name}: {why}")
    return info.loader(seed=seed)


def load_dataset(ref: str | os.PathLike, seed: int = 0, download: bool = False,
                 progress: Progress | None = None) -> ImageDataset:
    """Load by registered name, folder path or zip path (the CLI's and the API's entry).

    ``download=True`` lets a downloadable dataset fetch its files (online only).
    """
    p = Path(ref).expanduser()
    if str(ref) not in _REGISTRY and p.suffix.lower() == ".zip" and p.is_file():
        try:
            root, zip_skipped = _extract_zip(p, None)
        except (BadArchive, DatasetError) as e:
            raise DatasetError(f"{p.name}: {e}") from e
        except OSError as e:
            raise DatasetError(f"{p.name}: could not extract ({e.strerror or e})") from e
        try:
            ds = scan_folder(root, p.stem, seed)
        except DatasetError as e:  # nothing usable inside: do not keep it as a dataset
            users = config.user_datasets_dir()
            shutil.rmtree(next(d for d in (root, *root.parents) if d.parent == users))
            raise DatasetError(f"{p.name}: {str(e).replace(str(root), 'the archive')}") from e
        ds.skipped[:0] = zip_skipped
        return ds
    if str(ref) not in _REGISTRY and p.is_dir():
        return scan_folder(p, seed=seed)
    if str(ref) not in _REGISTRY and ("/" in str(ref) or p.suffix.lower() == ".zip") \
            and not any(i.name == str(ref) for i in list_datasets()):
        what = "zip file" if p.suffix.lower() == ".zip" else "folder"
        raise DatasetError(f"{what} not found: {p}")
    return load_named(str(ref), seed, download, progress)


# ----------------------------------------------------------------------------- built-ins


def _load_digits(seed: int = 0, **_) -> ImageDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    arrays = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    splits, _ = stratified_split(d.target, seed=seed)
    return ImageDataset("digits", [str(k) for k in range(10)], list(range(len(arrays))),
                        d.target, splits, arrays=arrays)


register_dataset(DatasetInfo(
    "digits", "scikit-learn's handwritten digits: 1,797 8x8 images, 10 classes (always offline)",
    "builtin", _load_digits))


def _find_in_data_dirs(*names: str) -> Path | None:
    for base in (config.data_dir(), config.downloads_dir()):
        if base is None:
            continue
        for n in names:
            if (base / n).is_dir():
                return base / n
    return None


def _download(url: str, dest: Path, progress: Progress | None, what: str, place: str) -> Path:
    """Fetch ``url`` to ``dest`` with progress; offline, a message naming the file and place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=20) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            done = 0
            while chunk := r.read(1 << 20):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total, f"downloading {what}")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        raise DatasetUnavailable(f"could not download {what} ({e}). Offline: download {url} "
                                 f"on a connected machine and {place}") from e
    os.replace(tmp, dest)
    return dest


HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


def _hymenoptera_locate() -> str | None:
    if _find_in_data_dirs("hymenoptera", "hymenoptera_data"):
        return None
    return (f"not found. Put the extracted folder at $TLVIZ_DATA_DIR/hymenoptera "
            f"(with train/ and val/), or extract {HYMENOPTERA_URL} into "
            f"{config.downloads_dir()}/")


def _hymenoptera_download(progress: Progress | None) -> None:
    dest = config.downloads_dir()
    z = _download(HYMENOPTERA_URL, dest / "hymenoptera_data.zip", progress, "hymenoptera",
                  f"extract it into {dest}/")
    safe_extract_zip(z, dest / "hymenoptera_data")


def _hymenoptera_load(seed: int = 0, **_) -> ImageDataset:
    root = _find_in_data_dirs("hymenoptera", "hymenoptera_data")
    if root is None:
        raise DatasetUnavailable(_hymenoptera_locate())
    if not (root / "train").is_dir() and (root / "hymenoptera_data").is_dir():
        root = root / "hymenoptera_data"
    return scan_folder(root, "hymenoptera", seed)


register_dataset(DatasetInfo(
    "hymenoptera", "ants vs bees from the PyTorch transfer-learning tutorial: ~245 train, "
    "153 val photos", "download", _hymenoptera_load, _hymenoptera_locate, _hymenoptera_download))


def _cifar_small_locate() -> str | None:
    return None if _find_in_data_dirs("cifar10-small") else (
        "not found: put a folder cifar10-small/ (train/<class>/, test/<class>/ 32x32 JPEGs) "
        "in $TLVIZ_DATA_DIR")


register_dataset(DatasetInfo(
    "cifar10-small", "a fixed 3,000-image subset of CIFAR-10 (32x32 JPEGs, 10 classes)",
    "datadir", lambda seed=0, **_: scan_folder(_find_in_data_dirs("cifar10-small"),
                                               "cifar10-small", seed),
    _cifar_small_locate))


# torchvision's downloadable datasets: (name, class, files it needs, kwargs per split)
def _torchvision_dataset(name: str, cls_name: str, files: str, description: str, splits: dict,
                         extracted: tuple[str, ...]):
    """``extracted``: paths (below the root) that torchvision's extraction leaves; their presence
    is the availability check, so listing datasets never imports torchvision (seconds)."""
    root = lambda: config.downloads_dir() / name  # noqa: E731

    def _make(split_kwargs, download):
        import torchvision.datasets as tvd

        return getattr(tvd, cls_name)(str(root()), download=download, **split_kwargs)

    def locate() -> str | None:
        if all((root() / p).exists() for p in extracted):
            return None  # torchvision checks the files themselves when the dataset loads
        return (f"not downloaded. Online: press download (or `tlviz datasets --download "
                f"{name}`). Offline: place {files} in {root()}/")

    def download(progress: Progress | None) -> None:
        if progress:
            progress(0, 0, f"downloading {name} (see the console for progress)")
        try:
            for kw in splits.values():
                _make(kw, True)
        except Exception as e:  # noqa: BLE001 - torchvision and the network: any failure is one message
            raise DatasetUnavailable(f"could not download {name} ({type(e).__name__}: {e}). "
                                     f"Offline: place {files} in {root()}/") from e

    def load(seed: int = 0, **_) -> ImageDataset:
        sources, labels, split_of, arrays, classes = [], [], [], [], None
        for split, kw in splits.items():
            d = _make(kw, False)
            if hasattr(d, "data") and isinstance(d.data, np.ndarray):  # CIFAR
                off = sum(len(a) for a in arrays)
                arrays.append(d.data)
                sources += list(range(off, off + len(d.data)))
                labels += list(d.targets)
            else:  # file-based datasets
                files_ = getattr(d, "_images", None) or getattr(d, "_image_files", None)
                sources += [str(f) for f in files_]
                labels += list(getattr(d, "_labels", None) or d.targets)
            split_of += [split] * (len(sources) - len(split_of))
            classes = classes or [str(c) for c in getattr(d, "classes", [])]
        n_cls = int(max(labels)) + 1
        if not classes or len(classes) != n_cls:
            classes = [f"class {k}" for k in range(n_cls)]
        return ImageDataset(name, classes, sources, np.array(labels), np.array(split_of, dtype=object),
                            arrays=np.concatenate(arrays) if arrays else None, root=root())

    register_dataset(DatasetInfo(name, description, "download", load, locate, download))


_torchvision_dataset("cifar10", "CIFAR10", "cifar-10-python.tar.gz",
                     "CIFAR-10 through torchvision: 60,000 32x32 images, 10 classes (download)",
                     {"train": {"train": True}, "test": {"train": False}},
                     ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"))
_torchvision_dataset("oxford-pets", "OxfordIIITPet", "images.tar.gz and annotations.tar.gz",
                     "Oxford-IIIT Pets through torchvision: 37 breeds, ~7,400 photos (download)",
                     {"train": {"split": "trainval"}, "test": {"split": "test"}},
                     ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations"))
_torchvision_dataset("flowers102", "Flowers102", "102flowers.tgz, imagelabels.mat and setid.mat",
                     "Oxford Flowers-102 through torchvision: 102 classes, ~8,200 photos (download)",
                     {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}},
                     ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"))


# ----------------------------------------------------------------------------- user datasets


def save_user_dataset(name: str, images: dict[str, list[bytes]]) -> Path:
    """Save photos (e.g. webcam shots) per class as a reopenable ImageFolder dataset.

    ``images`` maps class name -> list of encoded image bytes. Returns the folder.
    """
    limit = default_limits().max_images
    if sum(len(b) for b in images.values()) > limit:
        raise DatasetError(f"too many images for one dataset (the limit is {limit:,}); "
                           "set TLVIZ_MAX_IMAGES to raise it")
    ws = _writable_workspace("save a dataset", sum(len(b) for v in images.values() for b in v))
    root = config.user_datasets_dir() / sanitize_name(name)
    tmp = root.with_name(f".{root.name}.tmp{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for cls, blobs in images.items():
            cdir = tmp / sanitize_name(cls)
            cdir.mkdir(parents=True, exist_ok=True)
            for k, blob in enumerate(blobs):
                try:
                    im = open_image(blob, max_pixels=default_limits().max_image_pixels)
                except BadImage as e:
                    raise DatasetError(f"image {k + 1} of class {cls!r}: {e}") from e
                im.save(cdir / f"{k:04d}.jpg", quality=92)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    _within_quota(ws, root)
    return root


__all__ = [
    "SPLITS", "DatasetError", "DatasetInfo", "DatasetUnavailable", "ImageDataset", "extract_zip",
    "get_dataset_info", "is_dataset_name", "list_datasets", "load_dataset", "load_named", "register_dataset", "save_user_dataset",
    "scan_folder", "stratified_split",
]
