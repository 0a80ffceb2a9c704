"""Settings: where tlviz keeps its caches and ledger, where it looks for data, and limits.

Every setting has an environment variable so that tests, CI, benchmarks and the
dashboard can point the same code at different folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def home_dir() -> Path:
    """tlviz's own folder (caches, run ledger, user datasets): ``$TLVIZ_HOME`` or ``~/.tlviz``."""
    p = Path(os.environ.get("TLVIZ_HOME") or Path.home() / ".tlviz").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir(kind: str) -> Path:
    """A cache sub-folder of the home directory, e.g. ``cache_dir("embeddings")``."""
    p = home_dir() / "cache" / kind
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_dataset() -> str:
    """The dashboard's starting dataset (``$TLVIZ_DEFAULT_DATASET``, a listed name; ``digits``)."""
    return os.environ.get("TLVIZ_DEFAULT_DATASET") or "digits"


def default_backbone() -> str:
    """The dashboard's starting backbone (``$TLVIZ_DEFAULT_BACKBONE``; ``mobilenet_v2``)."""
    return os.environ.get("TLVIZ_DEFAULT_BACKBONE") or "mobilenet_v2"


def data_dir() -> Path | None:
    """Folder holding named datasets (``$TLVIZ_DATA_DIR``); None when unset or missing."""
    raw = os.environ.get("TLVIZ_DATA_DIR")
    if not raw:
        return None
    p = Path(raw).expanduser()
    return p if p.is_dir() else None


def user_datasets_dir() -> Path:
    """Where uploaded zips and webcam datasets are stored: ``$TLVIZ_HOME/datasets``, or the
    active workspace's own folder (classroom mode, :mod:`tlviz.workspaces`)."""
    from tlviz import workspaces

    ws = workspaces.current()
    p = ws.datasets_dir if ws is not None else home_dir() / "datasets"
    p.mkdir(parents=True, exist_ok=True)
    return p


def notes_dir() -> Path:
    """Where saved selections (notes) go: ``$TLVIZ_HOME/notes`` or the active workspace's."""
    from tlviz import workspaces

    ws = workspaces.current()
    return ws.notes_dir if ws is not None else home_dir() / "notes"


def downloads_dir() -> Path:
    """Where downloadable datasets land when online."""
    p = home_dir() / "downloads"
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process (and inter-thread) lock on ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
