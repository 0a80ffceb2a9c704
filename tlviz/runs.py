"""The run ledger: every training run in an embedded SQLite database (WAL).

A run is written when it starts (status ``running``), gets one row per epoch as it
trains, and is closed as ``completed``/``failed``/``cancelled`` in one transaction with
its metrics, confusion matrix and weights (safetensors bytes, never pickle). A run
whose process died shows as ``interrupted`` the next time the ledger is opened.

>>> import tempfile, os
>>> led = Ledger(os.path.join(tempfile.mkdtemp(), "runs.db"))
>>> rid = led.start_run({"dataset": "digits", "backbone": "pixels", "head": "knn"})
>>> led.finish_run(rid, val_accuracy=0.9)
>>> led.get_run(rid)["status"]
'completed'
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import numpy as np

from tlviz import config
from tlviz.errors import BadInput, UnknownName
from tlviz.metrics import accuracy_interval

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    name TEXT,
    dataset TEXT,
    dataset_fingerprint TEXT,
    backbone TEXT,
    head TEXT,
    mode TEXT,
    augment TEXT,
    seed INTEGER,
    epochs INTEGER,
    config TEXT NOT NULL,
    classes TEXT,
    train_accuracy REAL,
    val_accuracy REAL,
    test_accuracy REAL,
    confusion TEXT,
    timings TEXT,
    seconds REAL,
    error TEXT,
    pid INTEGER,
    host TEXT,
    n_train INTEGER,
    n_val INTEGER,
    n_test INTEGER,
    chosen TEXT,
    val_ece REAL,
    temperature REAL,
    reliability TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS weights (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    data BLOB NOT NULL
);
"""

# columns added after the first release: an older ledger gains them when opened
ADDED_COLUMNS = (("n_train", "INTEGER"), ("n_val", "INTEGER"), ("n_test", "INTEGER"),
                 ("chosen", "TEXT"), ("val_ece", "REAL"), ("temperature", "REAL"),
                 ("reliability", "TEXT"))
CONFIG_COLUMNS = ("name", "dataset", "dataset_fingerprint", "backbone", "head", "mode", "augment",
                  "seed", "epochs")
EPOCH_FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc")


def default_path() -> Path:
    """``$TLVIZ_HOME/runs.db``, or the active workspace's own ledger (classroom mode)."""
    from tlviz import workspaces

    ws = workspaces.current()
    return ws.ledger_path if ws is not None else config.home_dir() / "runs.db"


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (Unix time), from /proc; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int | None, since: float | None = None) -> bool:
    """Is the process that started a run at ``since`` still alive?

    A pid can be reused (after a reboot, soon): a live process that started after the
    run was created is another process, so the run's own process is dead.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if since is not None:
        started = _process_start(pid)
        if started is not None and started > since + 60.0:  # slack for clock adjustments
            return False
    return True


class Ledger:
    """The run store. Safe to share between threads and processes (one connection per call)."""

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False):
        self.path = Path(path) if path else default_path()
        self.read_only = read_only  # a shared view: runs are listed, never added or deleted
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.warnings: list[str] = []
        try:
            self._create()
        except sqlite3.DatabaseError as e:  # not a database (damaged or overwritten file)
            if isinstance(e, sqlite3.OperationalError):  # locked, read-only, disk full: not ours
                raise
            aside = self._move_aside()
            self.warnings.append(f"the run ledger {self.path} was unreadable ({e}); it was "
                                 f"moved to {aside.name} and a new ledger started")
            self._create()
        self.mark_interrupted()

    def _create(self, attempts: int = 60) -> None:
        """WAL mode and the schema. Switching the journal mode ignores SQLite's busy timeout, so
        several processes opening a new ledger at once retry here instead of failing."""
        for k in range(attempts):
            try:
                with self._connect() as db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(SCHEMA)
                    have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
                    for col, kind in ADDED_COLUMNS:  # a ledger from an older tlviz
                        if col not in have:
                            db.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or k == attempts - 1:
                    raise
                time.sleep(0.05 + 0.01 * k)

    def _move_aside(self) -> Path:
        """Rename a damaged ledger (and its WAL files) out of the way, keeping it for rescue."""
        aside = self.path.with_name(f"{self.path.stem}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
                                    f"{self.path.suffix}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        return aside

    def _writable(self) -> None:
        if self.read_only:
            from tlviz.workspaces import ReadOnly

            raise ReadOnly("this is a shared, read-only view: its runs cannot be changed")

    def integrity_check(self) -> str:
        """SQLite's own consistency check: ``"ok"`` or a description of the damage."""
        with self._connect() as db:
            return "; ".join(r[0] for r in db.execute("PRAGMA integrity_check").fetchall())

    @contextlib.contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:  # WAL is set once per file by _create (it persists)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _tx(self, durable: bool = False):
        """One write transaction; ``durable`` also syncs it to disk (survives power loss)."""
        with self._connect() as db:
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ writing

    def start_run(self, cfg: dict) -> int:
        """Open a run (status ``running``); ``cfg`` is stored whole as JSON."""
        self._writable()
        cols = {k: cfg.get(k) for k in CONFIG_COLUMNS}
        if isinstance(cols["augment"], dict):
            cols["augment"] = json.dumps(cols["augment"], sort_keys=True)
        with self._tx() as db:
            cur = db.execute(
                f"INSERT INTO runs (created, status, config, pid, host, {', '.join(cols)}) "
                f"VALUES (?, 'running', ?, ?, ?, {', '.join('?' * len(cols))})",
                (time.time(), json.dumps(cfg, default=str), os.getpid(), socket.gethostname(),
                 *cols.values()))
            return int(cur.lastrowid)

    def log_epoch(self, run_id: int, epoch: int, **metrics: float) -> None:
        self._writable()
        vals = [metrics.get(k) for k in EPOCH_FIELDS]
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, epoch, *[None if v is None else float(v) for v in vals]))

    def finish_run(self, run_id: int, *, status: str = "completed", train_accuracy=None,
                   val_accuracy=None, test_accuracy=None, confusion=None, classes=None,
                   timings: dict | None = None, seconds: float | None = None,
                   weights: dict[str, np.ndarray] | None = None, error: str | None = None,
                   counts: dict[str, int] | None = None, chosen: dict | None = None,
                   val_ece: float | None = None, temperature: float | None = None,
                   reliability: list | None = None) -> None:
        """Close a run with its results, all in one transaction. ``counts``: images per split
        behind each accuracy (for its interval); ``chosen``: hyper-parameters chosen inside
        the training split; ``val_ece``, ``reliability``: the val calibration error and the
        reliability-diagram bins (:mod:`tlviz.calibration`); ``temperature``: the one the
        probabilities are scaled by (None: not scaled)."""
        blob = None
        if weights is not None:
            from safetensors.numpy import save

            blob = save({k: np.ascontiguousarray(v) for k, v in weights.items()})
        with self._tx(durable=True) as db:  # a finished run must survive a dying battery too
            db.execute(
                "UPDATE runs SET status=?, finished=?, train_accuracy=?, val_accuracy=?, "
                "test_accuracy=?, confusion=?, classes=?, timings=?, seconds=?, error=?, "
                "n_train=?, n_val=?, n_test=?, chosen=?, val_ece=?, temperature=?, reliability=? "
                "WHERE id=?",
                (status, time.time(), _f(train_accuracy), _f(val_accuracy), _f(test_accuracy),
                 None if confusion is None else json.dumps(np.asarray(confusion).tolist()),
                 None if classes is None else json.dumps(list(classes)),
                 None if timings is None else json.dumps(timings), _f(seconds), error,
                 *((counts or {}).get(s) for s in ("train", "val", "test")),
                 None if chosen is None else json.dumps(chosen, default=str), _f(val_ece),
                 _f(temperature), None if reliability is None else json.dumps(reliability),
                 run_id))
            if blob is not None:
                db.execute("INSERT OR REPLACE INTO weights VALUES (?, 'safetensors', ?)",
                           (run_id, blob))

    def mark_interrupted(self) -> int:
        """Runs left ``running`` by a dead process on this host become ``interrupted``."""
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute("SELECT id, pid, host, created FROM runs WHERE status='running'"
                              ).fetchall()
        dead = [r["id"] for r in rows
                if r["host"] == host and not _pid_alive(r["pid"], r["created"])]
        if dead:
            with self._tx() as db:
                db.executemany("UPDATE runs SET status='interrupted' WHERE id=? AND status='running'",
                               [(i,) for i in dead])
        return len(dead)

    def copy_run(self, source: Ledger, run_id: int) -> int:
        """Copy a completed run of ``source`` (its row, epochs and weights) into this
        ledger under a new id; the new id. Publishing a run uses it."""
        self._writable()
        with source._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=? AND status='completed'",
                             (int(run_id),)).fetchone()
            if row is None:
                raise UnknownName(f"no completed run {run_id}")
            epochs = db.execute("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch",
                                (int(run_id),)).fetchall()
            weights = db.execute("SELECT format, data FROM weights WHERE run_id=?",
                                 (int(run_id),)).fetchone()
        cols = [k for k in row.keys() if k != "id"]  # both ledgers have the current schema
        with self._tx() as db:
            new = int(db.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES "
                                 f"({', '.join('?' * len(cols))})",
                                 [row[k] for k in cols]).lastrowid)
            db.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?)",
                           [(new, e["epoch"], *[e[k] for k in EPOCH_FIELDS]) for e in epochs])
            if weights is not None:
                db.execute("INSERT INTO weights VALUES (?, ?, ?)",
                           (new, weights["format"], weights["data"]))
        return new

    def delete(self, run_ids) -> int:
        self._writable()
        ids = [int(i) for i in np.atleast_1d(run_ids)]
        with self._tx() as db:
            db.executemany("DELETE FROM epochs WHERE run_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM weights WHERE run_id=?", [(i,) for i in ids])
            cur = db.executemany("DELETE FROM runs WHERE id=?", [(i,) for i in ids])
            return cur.rowcount

    # ------------------------------------------------------------------ reading

    def list_runs(self, status: str | None = None):
        """All runs as a DataFrame (newest first), without the weights."""
        import pandas as pd

        q = ("SELECT id, created, status, name, dataset, backbone, head, mode, augment, seed, epochs, "
             "train_accuracy, val_accuracy, test_accuracy, n_val, n_test, val_ece, temperature, seconds "
             "FROM runs")
        args: tuple = ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        with self._connect() as db:
            df = pd.read_sql_query(q + " ORDER BY id DESC", db, params=args)
        df["created"] = pd.to_datetime(df["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
        for split in ("val", "test"):  # 95% Wilson interval of each accuracy
            ci = [accuracy_interval(a, n) for a, n in zip(df[f"{split}_accuracy"], df[f"n_{split}"])]
            df[f"{split}_low"] = [c[0] for c in ci]
            df[f"{split}_high"] = [c[1] for c in ci]
        return df

    def get_run(self, run_id: int) -> dict:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (int(run_id),)).fetchone()
        if row is None:
            raise UnknownName(f"no run {run_id}")
        d = dict(row)
        for k in ("config", "confusion", "classes", "timings", "chosen", "reliability"):
            d[k] = json.loads(d[k]) if d[k] else None
        d["history"] = self.history(run_id)
        return d

    def history(self, run_id: int):
        import pandas as pd

        with self._connect() as db:
            return pd.read_sql_query("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", db,
                                     params=(int(run_id),))

    def histories(self, run_ids) -> dict:
        return {int(i): self.history(i) for i in run_ids}

    def weights(self, run_id: int) -> dict[str, np.ndarray] | None:
        from safetensors.numpy import load

        with self._connect() as db:
            row = db.execute("SELECT data FROM weights WHERE run_id=?", (int(run_id),)).fetchone()
        if row is None:
            return None
        try:
            return load(bytes(row["data"]))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise BadInput(f"run {run_id}: the stored weights are damaged ({e})") from e

    def compare(self, run_ids):
        """One row per run, the columns people compare on."""
        df = self.list_runs()
        df = df[df["id"].isin([int(i) for i in run_ids])]
        return df.reset_index(drop=True)

    def export(self, run_ids, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write runs (with per-epoch history) to CSV or JSON; format from the suffix."""
        path = Path(path)
        fmt = fmt or path.suffix.lstrip(".").lower()
        runs = [self.get_run(i) for i in run_ids]
        if fmt == "json":
            for r in runs:
                r["history"] = r["history"].to_dict(orient="records")
            path.write_text(json.dumps(runs, indent=2, default=str))
        elif fmt == "csv":
            self.compare(run_ids).to_csv(path, index=False)
        else:
            raise BadInput("export format must be csv or json")
        return path

    def export_text(self, run_ids, fmt: str) -> str:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            return self.export(run_ids, Path(d) / f"runs.{fmt}").read_text()


def _f(v):
    return None if v is None else float(v)


__all__ = ["Ledger", "default_path"]
