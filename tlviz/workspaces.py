"""Private workspaces for a shared (classroom) server.

``TLVIZ_MODE=single`` (the default, a laptop): there is one user, and uploads, notes and
runs live directly under ``$TLVIZ_HOME`` as they always did. ``TLVIZ_MODE=classroom``: every
browser session works in its own workspace, a folder

    $TLVIZ_HOME/workspaces/<id>/  datasets/  notes/  runs.db  .last-used

with its own uploads and webcam datasets, notes and run ledger (one SQLite file per
workspace: no query can forget a ``WHERE workspace=...``, deleting a workspace is removing
a folder, and thirty writers do not queue on one database lock).

Tokens. A workspace is opened with its *token* (``secrets.token_urlsafe(24)``, 192 bits),
kept in the browser session only. From it derive, one way each:

    token --sha256--> share token --sha256--> workspace id (the folder name)

The share token goes into a link ("Share this view") and opens the same workspace
**read-only**; it cannot be turned back into the token, and the folder name (which an
administrator sees) gives neither. A malformed, truncated or unknown token opens nothing.

Built-in and data-directory datasets are shared by all and never written. The person who
started the server holds the *presenter token* (``$TLVIZ_HOME/presenter.token``, created
on first use, mode 600): with it a session may copy a dataset into the *published*
workspace, which every session lists read-only.

The active workspace of a thread of work is a context variable (:func:`active`): tlviz's
folder functions (:func:`tlviz.config.user_datasets_dir`, the default ledger path, the
notes folder) follow it. In classroom mode with no active workspace they refuse
(:class:`NoWorkspace`) rather than fall back to a folder everyone shares.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from tlviz.errors import BadInput, TlvizError, UnknownName

TOKEN_CHARS = 32  # token_urlsafe(24): 24 random bytes, 192 bits
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
_ID_RE = re.compile(r"[0-9a-f]{32}")
PUBLISHED = "published"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class NoWorkspace(TlvizError, RuntimeError):
    """Classroom mode, and no workspace is active for this piece of work."""


class ReadOnly(BadInput):
    """A write (upload, training, deletion) into a workspace opened read-only."""


class QuotaExceeded(BadInput):
    """A workspace limit (``TLVIZ_WORKSPACE_*``) would be exceeded; the message names it."""


def mode() -> str:
    """``single`` (default) or ``classroom`` (``$TLVIZ_MODE``); anything else is refused."""
    value = (os.environ.get("TLVIZ_MODE") or "single").strip().lower()
    if value not in ("single", "classroom"):
        raise BadInput(f"TLVIZ_MODE must be 'single' or 'classroom', not {value[:20]!r}")
    return value


def classroom() -> bool:
    return mode() == "classroom"


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def limits() -> dict[str, float]:
    """Per-workspace limits from the environment: MB on disk, images, jobs at once, idle days."""
    return {"mb": _env_float("TLVIZ_WORKSPACE_MB", 500.0),
            "images": int(_env_float("TLVIZ_WORKSPACE_IMAGES", 5000)),
            "jobs": int(_env_float("TLVIZ_WORKSPACE_JOBS", 2)),
            "days": _env_float("TLVIZ_WORKSPACE_DAYS", 7.0)}


# ----------------------------------------------------------------------------- tokens


def new_token() -> str:
    """A fresh workspace token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def is_token(value: object) -> bool:
    """True when ``value`` has a token's shape (32 URL-safe characters); nothing else is looked up."""
    return isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None


def _check(value: object) -> str:
    if not is_token(value):
        raise BadInput("not a workspace token (a token is 32 letters, digits, '-' or '_')")
    return str(value)


def share_token(token: str) -> str:
    """The read-only token of ``token``'s workspace (what a shared link carries)."""
    digest = hashlib.sha256(b"tlviz-share:" + _check(token).encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


def workspace_id(share: str) -> str:
    """The folder name of the workspace whose share token is ``share``."""
    return hashlib.sha256(b"tlviz-ws:" + _check(share).encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- workspaces


def root_dir() -> Path:
    from tlviz import config

    p = config.home_dir() / "workspaces"
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass(frozen=True)
class Workspace:
    """One workspace's folder, and whether this session may write into it."""

    id: str
    read_only: bool = False

    @property
    def root(self) -> Path:
        return root_dir() / self.id

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def notes_dir(self) -> Path:
        return self.root / "notes"

    @property
    def ledger_path(self) -> Path:
        return self.root / "runs.db"

    @property
    def published(self) -> bool:
        return self.id == PUBLISHED

    def exists(self) -> bool:
        return self.root.is_dir()

    def require_writable(self, what: str = "change this workspace") -> None:
        if self.read_only:
            raise ReadOnly(f"this is a shared, read-only view: it cannot {what}")

    def touch(self) -> None:
        """Mark the workspace used now (idle workspaces expire, :func:`sweep`)."""
        if not self.read_only and self.exists():
            (self.root / ".last-used").write_text(str(time.time()))

    def last_used(self) -> float:
        marker = self.root / ".last-used"
        try:
            return marker.stat().st_mtime
        except OSError:
            try:
                return self.root.stat().st_mtime
            except OSError:
                return 0.0


def _make(ws: Workspace) -> Workspace:
    for d in (ws.datasets_dir, ws.notes_dir):
        d.mkdir(parents=True, exist_ok=True)
    ws.touch()
    return ws


def create() -> tuple[str, Workspace]:
    """A new workspace: (its token, the workspace, writable)."""
    token = new_token()
    return token, _make(Workspace(workspace_id(share_token(token))))


def open_token(token: str, create_missing: bool = False) -> Workspace:
    """The workspace of ``token`` (writable). Unknown ones raise UnknownName unless
    ``create_missing`` (a session's own token whose folder expired or was deleted)."""
    ws = Workspace(workspace_id(share_token(token)))
    if ws.exists():
        return ws
    if create_missing:
        return _make(ws)
    raise UnknownName("no workspace has this token (it may have expired)")


def open_shared(share: str) -> Workspace:
    """The workspace of a share token, read-only; UnknownName when there is none."""
    ws = Workspace(workspace_id(share), read_only=True)
    if not ws.exists():
        raise UnknownName("this shared view no longer exists (it may have expired or been deleted)")
    return ws


def published(writable: bool = False) -> Workspace:
    """The published workspace every session lists (read-only unless ``writable``)."""
    ws = Workspace(PUBLISHED, read_only=not writable)
    return _make(ws) if writable else ws


def presenter_token() -> str:
    """The server's presenter token (created on first call, readable by its owner only)."""
    from tlviz import config

    path = config.home_dir() / "presenter.token"
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text().strip()
        if is_token(value):
            return value
    value = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def is_presenter(value: object) -> bool:
    """True for the presenter token (constant-time comparison)."""
    return is_token(value) and hmac.compare_digest(str(value), presenter_token())


# ----------------------------------------------------------------------------- the active one

_active: ContextVar[Workspace | None] = ContextVar("tlviz_workspace", default=None)


@contextlib.contextmanager
def active(ws: Workspace | None) -> Iterator[Workspace | None]:
    """Make ``ws`` the workspace tlviz's folder functions use inside the block."""
    token = _active.set(ws)
    try:
        yield ws
    finally:
        _active.reset(token)


def current() -> Workspace | None:
    """The active workspace; None in single mode. Classroom mode without one: NoWorkspace."""
    ws = _active.get()
    if ws is None and classroom():
        raise NoWorkspace("classroom mode: no workspace is active for this work")
    return ws


# ----------------------------------------------------------------------------- limits


def usage(ws: Workspace) -> dict[str, int]:
    """Bytes and image files the workspace holds on disk."""
    size = images = 0
    for dirpath, _dirs, files in os.walk(ws.root):
        for f in files:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, f)).st_size
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES:
                images += 1
    return {"bytes": size, "images": images}


def check_quota(ws: Workspace | None, add_bytes: int = 0, add_images: int = 0) -> None:
    """Raise QuotaExceeded when the workspace (plus what is being added) is over a limit."""
    if ws is None or ws.published:
        return
    lim, used = limits(), usage(ws)
    if used["bytes"] + add_bytes > lim["mb"] * 2**20:
        raise QuotaExceeded(
            f"this workspace would hold {(used['bytes'] + add_bytes) / 2**20:,.1f} MB, above its "
            f"limit of {lim['mb']:,.0f} MB (TLVIZ_WORKSPACE_MB); delete a dataset or some runs")
    if used["images"] + add_images > lim["images"]:
        raise QuotaExceeded(
            f"this workspace would hold {used['images'] + add_images:,} images, above its limit "
            f"of {lim['images']:,} (TLVIZ_WORKSPACE_IMAGES); delete a dataset first")


def delete(ws: Workspace) -> dict:
    """Remove everything of ``ws`` (datasets, notes, runs); returns what was removed."""
    ws.require_writable("be deleted")
    if ws.published or not _ID_RE.fullmatch(ws.id):
        raise BadInput("only a private workspace can be deleted")
    summary = {"datasets": [], "notes": 0, "runs": 0, "bytes": 0}
    if not ws.exists():
        return summary
    summary["bytes"] = usage(ws)["bytes"]
    if ws.datasets_dir.is_dir():
        summary["datasets"] = sorted(d.name for d in ws.datasets_dir.iterdir()
                                     if not d.name.startswith("."))
    if ws.notes_dir.is_dir():
        summary["notes"] = len(list(ws.notes_dir.glob("*.json")))
    if ws.ledger_path.exists():
        import sqlite3

        with contextlib.suppress(sqlite3.Error), contextlib.closing(
                sqlite3.connect(ws.ledger_path, timeout=30)) as db:
            summary["runs"] = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    summary["cached"] = _forget_cached(ws)
    shutil.rmtree(ws.root, ignore_errors=True)
    return summary


def _forget_cached(ws: Workspace) -> int:
    """Remove what the shared caches hold of ``ws``'s datasets: thumbnail sheets and
    embeddings (keyed by image content: a workspace holding the same images recomputes
    them), and the file-hash memo's entries for its paths. Returns the entries removed."""
    from tlviz import config
    from tlviz.backbones import list_backbones
    from tlviz.data import _load_extracted, forget_memo_paths
    from tlviz.embed import cache_key

    removed = 0
    folders = sorted(ws.datasets_dir.iterdir()) if ws.datasets_dir.is_dir() else []
    for d in folders:
        if d.name.startswith(".") or d.is_symlink() or not d.is_dir():
            continue
        try:
            with active(ws):
                ds = _load_extracted(d, d.name, 0)
            for sheet in config.cache_dir("sprites").glob(f"{ds.fingerprint}-*"):
                shutil.rmtree(sheet, ignore_errors=True)
                removed += 1
            for spec in list_backbones(include_hidden=True):
                for variant in ("", "int8"):
                    key = cache_key(ds, spec, variant)
                    for f in config.cache_dir("embeddings").glob(f"{key}.*"):
                        f.unlink(missing_ok=True)
                        removed += f.suffix == ".npy"
        except Exception:  # noqa: BLE001 - an unreadable dataset is still deleted below
            continue
    forget_memo_paths(str(ws.root.resolve()) + os.sep)
    return removed


def sweep(days: float | None = None, now: float | None = None) -> list[str]:
    """Remove private workspaces idle for more than ``days`` (``TLVIZ_WORKSPACE_DAYS``)."""
    days = limits()["days"] if days is None else days
    now = time.time() if now is None else now
    removed = []
    for d in sorted(root_dir().iterdir()):
        if not (d.is_dir() and not d.is_symlink() and _ID_RE.fullmatch(d.name)):
            continue
        ws = Workspace(d.name)
        if now - ws.last_used() > days * 86400:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


def mark_interrupted() -> int:
    """Open every workspace's ledger once (at server start-up): runs a dead process left
    ``running`` become ``interrupted`` (opening a ledger does it); finished runs are
    untouched. Returns how many ledgers were checked."""
    from tlviz.runs import Ledger

    n = 0
    for d in sorted(root_dir().iterdir()):
        db = d / "runs.db"
        if _ID_RE.fullmatch(d.name) and not d.is_symlink() and db.is_file():
            with contextlib.suppress(Exception):  # a damaged ledger is handled when opened
                Ledger(db)
                n += 1
    return n


def publish_dataset(ws: Workspace, name: str, presenter: str) -> Path:
    """Copy dataset ``name`` of ``ws`` into the published workspace (presenter token only)."""
    from tlviz.data import is_dataset_name

    if not is_presenter(presenter):
        raise BadInput("publishing needs the presenter token printed when the server started")
    if not is_dataset_name(name) or not (ws.datasets_dir / name).is_dir() \
            or (ws.datasets_dir / name).is_symlink():
        raise UnknownName(f"no dataset {name[:60]!r} in this workspace")
    dest = published(writable=True).datasets_dir / name
    tmp = dest.with_name(f".{name}.{os.getpid()}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ws.datasets_dir / name, tmp, symlinks=False)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def publish_run(ws: Workspace, run_id: int, presenter: str) -> int:
    """Copy completed run ``run_id`` of ``ws``'s ledger into the published workspace's
    ledger (presenter token only), where every session can compare and predict with it;
    its id there."""
    from tlviz.runs import Ledger

    if not is_presenter(presenter):
        raise BadInput("publishing needs the presenter token printed when the server started")
    if ws.published or not ws.ledger_path.exists():
        raise UnknownName(f"no run {run_id} in this workspace")
    return Ledger(published(writable=True).ledger_path).copy_run(
        Ledger(ws.ledger_path, read_only=True), run_id)


__all__ = ["NoWorkspace", "QuotaExceeded", "ReadOnly", "Workspace", "active", "check_quota",
           "classroom", "create", "current", "delete", "is_presenter", "is_token", "limits", "mark_interrupted",
           "mode", "new_token", "open_shared", "open_token", "presenter_token", "publish_dataset", "publish_run",
           "published", "share_token", "sweep", "usage", "workspace_id"]
