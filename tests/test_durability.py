"""Durability: kill -9 during training never damages the ledger; damaged caches are recomputed.

The fault test forks training processes from a zygote (tests/fault_worker.py) and kills
each with SIGKILL at a seeded random moment, measured in training progress (epochs
logged) plus a random jitter, so kills land before, inside and between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fault_worker as W
import numpy as np
import pytest
from conftest import make_image_folder

from tlviz import config
from tlviz.data import _file_digests, load_dataset, scan_folder
from tlviz.embed import embed
from tlviz.metrics import accuracy
from tlviz.project import project
from tlviz.runs import Ledger
from tlviz.train import load_predictor

EPOCHS = 8
KILLS = 12


class Zygote:
    """The forking training-process factory of fault_worker.py."""

    def __init__(self, ledger: Path, home: Path):
        env = {**os.environ, "TLVIZ_HOME": str(home), "OMP_NUM_THREADS": "1"}
        self.p = subprocess.Popen([sys.executable, str(Path(W.__file__)), str(ledger), str(EPOCHS)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._read() == "ready"

    def _read(self) -> str:
        line = self.p.stdout.readline().strip()
        assert line, f"zygote died (exit code {self.p.poll()})"
        return line

    def send(self, cmd: str) -> str:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(timeout=30)


def _raw(path: Path, sql: str, args=()) -> list:
    """Read the ledger with plain sqlite3 (no Ledger: that would mark runs interrupted)."""
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _snapshot(led: Ledger, rid: int) -> str:
    """A digest of everything stored for a completed run."""
    run = led.get_run(rid)
    hist = run.pop("history").to_json()
    w = led.weights(rid)
    wd = hashlib.sha256(b"".join(k.encode() + v.tobytes() for k, v in sorted(w.items()))).hexdigest()
    return hashlib.sha256(json.dumps([run, hist, wd], sort_keys=True, default=str).encode()).hexdigest()


def _check_completed(led: Ledger, rid: int, val_features: tuple[np.ndarray, np.ndarray]) -> None:
    """A completed run is whole: every epoch, metrics, confusion, weights that reproduce val acc."""
    run = led.get_run(rid)
    hist = run["history"]
    assert list(hist["epoch"]) == list(range(1, EPOCHS + 1)), f"run {rid}: epochs {list(hist['epoch'])}"
    assert hist[["train_loss", "train_acc", "val_loss", "val_acc"]].notna().all().all()
    for k in ("train_accuracy", "val_accuracy", "test_accuracy", "finished", "seconds"):
        assert run[k] is not None, f"run {rid}: {k} missing"
    assert np.asarray(run["confusion"]).sum() == len(val_features[1])
    head = load_predictor(led, rid).head  # weights come back through safetensors
    assert accuracy(val_features[1], head.predict(val_features[0])) == pytest.approx(run["val_accuracy"])


def test_ledger_survives_kill9_at_random_moments(tmp_path):
    ledger_path, home = tmp_path / "runs.db", tmp_path / "home"
    rng = random.Random(20261123)
    Ledger(ledger_path)  # the schema, so progress can be polled from the start
    zyg = Zygote(ledger_path, home)
    snapshots: dict[int, str] = {}
    interrupted_seen, moments = 0, []
    ds = W.tiny_dataset()
    emb = embed(ds, "pixels", cache=False)
    val = emb.split("val")
    try:
        for kill in range(KILLS):
            pid = int(zyg.send("fork").split()[1])
            # the moment: after `target` epochs of this process have been logged, plus jitter
            target = rng.choice([0, rng.randint(1, int(2.5 * EPOCHS))])  # 0: at start-up
            deadline = time.monotonic() + 60
            while target and time.monotonic() < deadline:
                n = _raw(ledger_path, "SELECT COUNT(*) FROM epochs JOIN runs ON runs.id = run_id "
                                      "WHERE pid = ?", (pid,))
                if n[0][0] >= target:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.2))
            os.kill(pid, signal.SIGKILL)
            assert zyg.send(f"reap {pid}").startswith(f"reaped {pid}")
            before = dict(_raw(ledger_path, "SELECT id, status FROM runs WHERE pid = ?", (pid,)))

            led = Ledger(ledger_path)  # reopening marks the dead process's run interrupted
            assert led.integrity_check() == "ok", f"kill {kill}"
            after = dict(_raw(ledger_path, "SELECT id, status FROM runs WHERE pid = ?", (pid,)))
            assert set(after) == set(before)
            for rid, status in after.items():
                assert status in ("completed", "interrupted"), f"kill {kill}: run {rid} is {status}"
                assert (status == "interrupted") == (before[rid] == "running")
            assert sum(s == "interrupted" for s in after.values()) <= 1
            interrupted_seen += sum(s == "interrupted" for s in after.values())
            moments.append(f"{target}:{'mid-run' if 'running' in before.values() else 'between'}")
            for rid in (r for r, s in after.items() if s == "completed"):
                _check_completed(led, rid, val)
                snapshots[rid] = _snapshot(led, rid)
            for rid, digest in snapshots.items():  # runs completed earlier are untouched
                assert _snapshot(led, rid) == digest, f"kill {kill}: run {rid} changed"
            assert not _raw(ledger_path, "SELECT id FROM runs WHERE status = 'running'")
    finally:
        zyg.close()
    print(f"\n{KILLS} kills (epochs logged before the kill: where it landed) {moments}: "
          f"{len(snapshots)} completed runs intact, {interrupted_seen} killed runs interrupted")
    assert snapshots and interrupted_seen, (len(snapshots), interrupted_seen)
    # the embedding cache the killed processes wrote is whole (or was recomputed)
    os.environ["TLVIZ_HOME"], old = str(home), os.environ["TLVIZ_HOME"]
    try:
        cached = embed(ds, "pixels")
        np.testing.assert_array_equal(np.asarray(cached.features), emb.features)
        assert not list(config.cache_dir("embeddings").glob(".*.tmp*"))
    finally:
        os.environ["TLVIZ_HOME"] = old


# --------------------------------------------------------------------------- the ledger


def test_dead_run_with_reused_pid_is_interrupted(tmp_path):
    """After a reboot a run's pid may belong to a new live process: still interrupted."""
    led = Ledger(tmp_path / "runs.db")
    old, live = led.start_run({"name": "before reboot"}), led.start_run({"name": "now"})
    db = sqlite3.connect(led.path)
    db.execute("UPDATE runs SET created = created - 86400 WHERE id = ?", (old,))  # same pid, a day ago
    db.commit()
    db.close()
    led = Ledger(led.path)
    assert led.get_run(old)["status"] == "interrupted"
    assert led.get_run(live)["status"] == "running"  # this very process: alive


def test_damaged_ledger_file_is_moved_aside_not_crashing(tmp_path):
    path = tmp_path / "runs.db"
    led = Ledger(path)
    led.finish_run(led.start_run({"name": "a"}), val_accuracy=0.5)
    del led
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not an sqlite database" * 100)
    led = Ledger(path)
    assert led.warnings and "moved to" in led.warnings[0]
    assert led.list_runs().empty and led.integrity_check() == "ok"
    aside = list(tmp_path.glob("runs.damaged-*.db"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_damaged_weights_blob_is_a_clear_error(tmp_path):
    led = Ledger(tmp_path / "runs.db")
    rid = led.start_run({"name": "w"})
    led.finish_run(rid, weights={"w": np.ones(3, np.float32)})
    db = sqlite3.connect(led.path)
    db.execute("UPDATE weights SET data = ? WHERE run_id = ?", (b"\x00garbage", rid))
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=f"run {rid}: the stored weights are damaged"):
        led.weights(rid)


# --------------------------------------------------------------------------- caches


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":  # same size, one byte of the data changed: only a digest sees it
        b = bytearray(data)
        b[-7] ^= 0x55
        path.write_bytes(bytes(b))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    elif how == "other json":  # valid JSON of the wrong shape
        path.write_text('[{"rows": 1}]')
    else:  # garbage
        path.write_bytes(b"\x93NUMPY garbage" * 3)


@pytest.mark.parametrize("how", ["truncate", "flip", "empty", "garbage", "other json"])
@pytest.mark.parametrize("which", ["npy", "json"])
def test_damaged_embedding_cache_is_recomputed(tiny_folder, how, which):
    ds = scan_folder(tiny_folder)
    first = embed(ds, "tiny_random")
    truth = np.array(first.features)
    _damage(config.cache_dir("embeddings") / f"{first.key}.{which}", how)
    again = embed(ds, "tiny_random")
    assert not again.from_cache  # detected, recomputed ...
    np.testing.assert_allclose(np.asarray(again.features), truth, rtol=1e-5, atol=1e-6)
    assert embed(ds, "tiny_random").from_cache  # ... and cached again


@pytest.mark.parametrize("how", ["truncate", "flip", "empty", "garbage", "delete"])
@pytest.mark.parametrize("which", ["npy", "sum"])
def test_damaged_projection_cache_is_recomputed(how, which):
    X = np.random.default_rng(len(how) + len(which)).normal(size=(40, 6)).astype(np.float32)
    truth = project(X, "pca")
    files = sorted(config.cache_dir("projections").glob(f"*.{which}"), key=os.path.getmtime)
    _damage(files[-1], how)
    t0 = time.time()
    again = project(X, "pca")
    np.testing.assert_allclose(again, truth, rtol=1e-5, atol=1e-6)
    assert files[-1].exists() and files[-1].stat().st_mtime >= t0 - 1  # rewritten


def test_damaged_fingerprint_memo_is_recomputed(tiny_folder):
    paths = [str(p) for p in sorted(tiny_folder.rglob("*.png"))[:4]]
    truth = [hashlib.sha256(Path(p).read_bytes()).digest() for p in paths]
    memo = config.cache_dir("fingerprints") / "files.json"
    assert _file_digests(paths) == truth
    data = json.loads(memo.read_text())
    data.update({k: "not hex" for k in list(data)[:2]})  # valid JSON, damaged values
    memo.write_text(json.dumps(data))
    assert _file_digests(paths) == truth
    memo.write_text('{"truncated": ')
    assert _file_digests(paths) == truth


def test_upload_interrupted_mid_extraction_is_redone(tmp_path):
    """A crash while extracting leaves a hidden part-folder, or a folder without its marker."""
    src = make_image_folder(tmp_path / "src", n_classes=2, per_class=5)
    import zipfile

    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f.relative_to(src).as_posix())
    first = load_dataset(z)
    dest = next(d for d in config.user_datasets_dir().iterdir() if d.name.startswith("up-"))
    (dest / ".tlviz-root").unlink()  # as if the process died before marking it complete
    next(dest.rglob("*.png")).write_bytes(b"half")
    leftover = dest.with_name(f".{dest.name}.99999.1.part")
    leftover.mkdir()
    alive = dest.with_name(f".{dest.name}.{os.getpid()}.2.part")  # another upload, in progress
    alive.mkdir()
    again = load_dataset(z)
    assert len(again) == len(first) and not again.skipped
    assert again.fingerprint == first.fingerprint
    assert not leftover.exists() and alive.exists()  # the dead process's part-folder is gone
    alive.rmdir()


@pytest.mark.parametrize("how", ["truncate", "garbage", "empty"])
def test_damaged_onnx_model_cache_is_exported_again(tiny_folder, how):
    from tlviz import onnxrt

    ds = scan_folder(tiny_folder)
    truth = embed(ds, "tiny_random", cache=False, backend="onnx").features
    model = max((p for p in config.cache_dir("onnx").glob("tiny_random-*.onnx")
                 if "int8" not in p.name), key=os.path.getmtime)  # the FP32 export
    _damage(model, how)
    onnxrt.forget_sessions()  # as after a restart: the next session reads the file
    again = embed(ds, "tiny_random", cache=False, backend="onnx").features
    np.testing.assert_allclose(again, truth, rtol=1e-5, atol=1e-6)
    assert model.stat().st_size > 1000
