"""Many users at once: one embedding computed for all, no run lost, shared uploads.

A classroom's browser sessions are threads of one Streamlit process; CLI runs and a
second server are other processes. Both are tested. "Computed once" is observed in the
cache itself: exactly one caller reports a cache miss, one feature file exists, and its
metadata has a single creation time.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue
import sqlite3
import sys
import threading
import time
import types
import zipfile
from concurrent.futures import ThreadPoolExecutor

import fault_worker as W
import numpy as np
import pytest
from conftest import make_image_folder

from tlviz import config
from tlviz.data import load_dataset, scan_folder
from tlviz.embed import embed
from tlviz.runs import Ledger

SESSIONS = 8


def _cache_files(key: str) -> dict[str, list]:
    folder = config.cache_dir("embeddings")
    return {"npy": sorted(folder.glob(f"{key}*.npy")), "json": sorted(folder.glob(f"{key}*.json")),
            "tmp": sorted(p for p in folder.iterdir() if p.name.startswith("."))}


def _assert_computed_once(results: list[tuple[bool, str, bytes, list]]) -> None:
    keys = {key for _, key, _, _ in results}
    assert len(keys) == 1
    assert sum(not from_cache for from_cache, _, _, _ in results) == 1  # one miss, the rest hits
    assert len({feats for _, _, feats, _ in results}) == 1  # everyone got the same array
    files = _cache_files(keys.pop())
    assert len(files["npy"]) == 1 and len(files["json"]) == 1 and not files["tmp"], files
    meta = json.loads(files["json"][0].read_text())
    assert meta["rows"] > 0 and "created" in meta


@pytest.mark.parametrize("backbone", ["tiny_random", "pixels"])
def test_sessions_in_threads_compute_the_embedding_once(tmp_path, backbone):
    root = make_image_folder(tmp_path / f"class-{backbone}", n_classes=3, per_class=10, seed=7)
    barrier = threading.Barrier(SESSIONS)

    def session(_):
        ds = scan_folder(root)  # each session scans for itself, as the dashboard does
        barrier.wait()
        emb = embed(ds, backbone)
        return emb.from_cache, emb.key, np.asarray(emb.features).tobytes(), emb.failed

    with ThreadPoolExecutor(SESSIONS) as ex:
        results = list(ex.map(session, range(SESSIONS)))
    _assert_computed_once(results)


def _run_processes(target, args_of, n: int) -> list:
    """Start ``n`` spawned processes together (a barrier); their results, in completion order."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(k), barrier, results)) for k in range(n)]
    # An AppTest earlier in the session leaves app.py as __main__; spawn would re-run it in
    # every child (seconds of imports each). The children need nothing from __main__.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        for p in procs:
            p.start()
    finally:
        sys.modules["__main__"] = main
    out = []
    deadline = time.monotonic() + 300
    while len(out) < n:  # fail fast when a child dies instead of waiting out the timeout
        try:
            out.append(results.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                barrier.abort()
                raise AssertionError(f"worker processes failed (exit codes {dead}); "
                                     "see the captured stderr") from None
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_processes_compute_the_embedding_once(tmp_path):
    root = make_image_folder(tmp_path / "procs", n_classes=2, per_class=10, seed=3)
    results = _run_processes(W.embed_once, lambda k: (str(root), "pixels"), 2)  # each imports torch
    _assert_computed_once(results)


def test_eight_processes_writing_runs_lose_nothing(tmp_path):
    path, n_runs, epochs = tmp_path / "runs.db", 10, 4
    results = dict(_run_processes(W.write_runs, lambda k: (str(path), k, n_runs, epochs), SESSIONS))
    led = Ledger(path)
    assert led.integrity_check() == "ok"
    ids = [i for k in sorted(results) for i in results[k]]
    assert len(ids) == len(set(ids)) == SESSIONS * n_runs
    runs = led.list_runs()
    assert sorted(runs["id"]) == sorted(ids) and (runs["status"] == "completed").all()
    for writer, rids in results.items():
        for j, rid in enumerate(rids):
            run = led.get_run(rid)
            assert run["config"]["name"] == f"w{writer}-r{j}"
            assert run["val_accuracy"] == pytest.approx(writer / 100)
            assert list(run["history"]["epoch"]) == list(range(1, epochs + 1))
            np.testing.assert_allclose(run["history"]["val_acc"], writer / 100)
            np.testing.assert_array_equal(led.weights(rid)["w"], writer * 1000 + j)
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == SESSIONS * n_runs * epochs
    db.close()


def test_threads_writing_runs_lose_nothing(tmp_path):
    path = tmp_path / "runs.db"
    with ThreadPoolExecutor(SESSIONS) as ex:
        results = list(ex.map(lambda k: W.write_runs(str(path), k, 5, 3), range(SESSIONS)))
    led = Ledger(path)
    assert len(led.list_runs()) == SESSIONS * 5 == len({i for r in results for i in r})
    assert all(len(led.history(i)) == 3 for r in results for i in r)


def test_same_upload_from_many_sessions_extracts_once(tmp_path):
    src = make_image_folder(tmp_path / "src", n_classes=2, per_class=6, seed=5)
    z = tmp_path / "class-upload.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f"upload/{f.relative_to(src).as_posix()}")
    barrier = threading.Barrier(SESSIONS)

    def session(_):
        barrier.wait()
        ds = load_dataset(z)
        return str(ds.root), ds.fingerprint, len(ds)

    with ThreadPoolExecutor(SESSIONS) as ex:
        results = set(ex.map(session, range(SESSIONS)))
    assert len(results) == 1 and next(iter(results))[2] == 12
    user = config.user_datasets_dir()
    assert [d.name for d in user.iterdir() if d.name.startswith("class-upload")] != []
    assert len([d for d in user.iterdir() if d.name.startswith("class-upload")]) == 1
    assert not [d for d in user.iterdir() if d.name.startswith(".class-upload")]  # no part-folders
