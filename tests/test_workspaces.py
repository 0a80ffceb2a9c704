"""Classroom mode at the tlviz level: workspaces, tokens, isolation, limits, clean-up, queue.

No streamlit here: the dashboard's side is in tests/test_pages_classroom.py.
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from tlviz import workspaces
from tlviz.data import DatasetError, extract_zip, list_datasets, load_named, save_user_dataset
from tlviz.errors import BadInput, Cancelled, UnknownName
from tlviz.jobqueue import JobQueue, Ticket
from tlviz.runs import Ledger
from tlviz.workspaces import NoWorkspace, QuotaExceeded, ReadOnly


@pytest.fixture(autouse=True)
def classroom(tmp_path, monkeypatch):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TLVIZ_MODE", "classroom")
    for var in ("TLVIZ_WORKSPACE_MB", "TLVIZ_WORKSPACE_IMAGES", "TLVIZ_WORKSPACE_DAYS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _photos(n: int = 3, names=("cats", "dogs")) -> dict[str, list[bytes]]:
    return {c: [_jpeg((40 * k, 80 * i, 100)) for k in range(n)] for i, c in enumerate(names)}


def _zip(path, classes=("zebra-q7x", "okapi-k2v"), n: int = 4):
    with zipfile.ZipFile(path, "w") as z:
        for i, c in enumerate(classes):
            for k in range(n):
                z.writestr(f"{c}/{k}.jpg", _jpeg((30 * k, 120 * i, 60)))
    return path


def _names() -> set[str]:
    return {i.name for i in list_datasets()}


# ----------------------------------------------------------------------------- tokens


def test_tokens_are_long_random_and_one_way():
    token, ws = workspaces.create()
    assert workspaces.is_token(token) and len(token) == 32  # 192 bits
    share = workspaces.share_token(token)
    assert share != token and workspaces.is_token(share)
    assert ws.id == workspaces.workspace_id(share) and token not in ws.id and share not in ws.id
    assert len({workspaces.new_token() for _ in range(200)}) == 200
    # the share token opens the same folder, read-only; the token itself opens it writable
    assert workspaces.open_shared(share) == workspaces.Workspace(ws.id, read_only=True)
    assert workspaces.open_token(token) == ws and not ws.read_only


@pytest.mark.parametrize("bad", ["", "short", "x" * 31, "x" * 33, "../" * 11 + "ab", "a/b" * 10 + "ab",
                                 "%2e%2e%2f" * 3 + "abcde", "\x00" * 32, "é" * 32, " " * 32, None, 12])
def test_malformed_tokens_open_nothing(bad):
    with pytest.raises(BadInput):
        workspaces.open_shared(bad)
    with pytest.raises(BadInput):
        workspaces.open_token(bad)
    assert not workspaces.is_token(bad)


def test_guessed_or_truncated_tokens_find_no_workspace():
    token, _ = workspaces.create()
    share = workspaces.share_token(token)
    for guess in (workspaces.new_token(), share[:-1] + ("A" if share[-1] != "A" else "B"),
                  token[:31] + "-" if token[-1] != "-" else token[:31] + "_"):
        with pytest.raises(UnknownName):
            workspaces.open_shared(guess)
    with pytest.raises(BadInput):
        workspaces.open_shared(share[:16])  # truncated: not even a token's shape
    # a share token is not a write token: used as one it finds nothing
    with pytest.raises(UnknownName):
        workspaces.open_token(share)


def test_presenter_token_file_is_private_and_checked():
    value = workspaces.presenter_token()
    assert workspaces.presenter_token() == value and workspaces.is_presenter(value)
    assert not workspaces.is_presenter(workspaces.new_token()) and not workspaces.is_presenter(None)
    path = workspaces.root_dir().parent / "presenter.token"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# ----------------------------------------------------------------------------- isolation


def test_no_workspace_no_user_folder_in_classroom_mode():
    with pytest.raises(NoWorkspace):
        save_user_dataset("x", _photos())
    assert "digits" in _names()  # shared datasets still listed


def test_datasets_notes_and_runs_do_not_cross(tmp_path):
    from tlviz import explore

    _, a = workspaces.create()
    _, b = workspaces.create()
    with workspaces.active(a):
        save_user_dataset("pets", _photos())
        ds = load_named("pets")
        explore.save_note(ds, [0, 1], "my secret note")
        rid = Ledger().start_run({"dataset": "pets", "backbone": "pixels", "head": "knn"})
        assert "pets" in _names() and len(explore.list_notes()) == 1
    with workspaces.active(b):
        assert "pets" not in _names()
        with pytest.raises(DatasetError):
            load_named("pets")
        assert explore.list_notes() == []
        led = Ledger()
        assert led.path != Ledger(a.ledger_path).path and led.list_runs().empty
        with pytest.raises(UnknownName):
            led.get_run(rid)
        assert led.delete([rid]) == 0
    assert Ledger(a.ledger_path).get_run(rid)["dataset"] == "pets"  # still there


@pytest.mark.parametrize("name", ["../../escape", "..", "a/b", "~root", "C:\\x", "nul\x00byte",
                                  "pets\u202e"])
def test_odd_dataset_names_open_nothing(name):
    _, a = workspaces.create()
    with workspaces.active(a):
        with pytest.raises(DatasetError):
            load_named(name)


def test_odd_names_are_stored_inside_the_workspace():
    _, a = workspaces.create()
    with workspaces.active(a):
        folder = save_user_dataset("../../../etc/évil ☃", _photos(names=("../up", "a\\b")))
    assert folder.resolve().is_relative_to(a.datasets_dir.resolve())
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in folder.rglob("*"))


def test_two_workspaces_upload_zips_of_the_same_name(tmp_path):
    _, a = workspaces.create()
    _, b = workspaces.create()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    za = _zip(tmp_path / "a" / "animals.zip")
    zb = _zip(tmp_path / "b" / "animals.zip", classes=("heron-5tz", "ibis-w8m"))
    with workspaces.active(a):
        ra = extract_zip(za)
    with workspaces.active(b):
        rb = extract_zip(zb)
    assert ra.resolve().is_relative_to(a.root.resolve()) and rb.resolve().is_relative_to(b.root.resolve())
    with workspaces.active(a):
        (name_a,) = [i.name for i in list_datasets() if i.kind == "user"]
        assert load_named(name_a).classes == ["okapi-k2v", "zebra-q7x"]
    with workspaces.active(b):
        (name_b,) = [i.name for i in list_datasets() if i.kind == "user"]
        assert load_named(name_b).classes == ["heron-5tz", "ibis-w8m"]
    # the same zip in two workspaces: two copies, each in its own folder
    with workspaces.active(b):
        assert extract_zip(za).resolve().is_relative_to(b.root.resolve())


def test_a_shared_view_is_read_only():
    token, a = workspaces.create()
    with workspaces.active(a):
        save_user_dataset("pets", _photos())
    view = workspaces.open_shared(workspaces.share_token(token))
    with workspaces.active(view):
        assert "pets" in _names()  # it sees the data...
        with pytest.raises(ReadOnly):
            save_user_dataset("more", _photos())
        with pytest.raises(ReadOnly):
            Ledger(view.ledger_path, read_only=True).start_run({"dataset": "pets"})
        with pytest.raises(ReadOnly):
            Ledger(view.ledger_path, read_only=True).delete([1])
    with pytest.raises(ReadOnly):
        workspaces.delete(view)
    assert a.exists()


def test_embedding_cache_keys_depend_on_content_only():
    from tlviz.backbones import get_backbone_spec
    from tlviz.embed import cache_key, embed

    _, a = workspaces.create()
    _, b = workspaces.create()
    keys = []
    for ws in (a, b):
        with workspaces.active(ws):
            save_user_dataset("same", _photos())
            ds = load_named("same")
            keys.append(cache_key(ds, get_backbone_spec("pixels")))
            embed(ds, "pixels")
    assert keys[0] == keys[1]  # computed once, shared, and found only by holding the same images
    meta = (workspaces.root_dir().parent / "cache" / "embeddings" / f"{keys[0]}.json").read_text()
    assert a.id not in meta and b.id not in meta and "same" not in meta


def test_published_datasets_are_listed_for_everyone_read_only():
    _, a = workspaces.create()
    _, b = workspaces.create()
    with workspaces.active(a):
        save_user_dataset("lesson", _photos())
    with pytest.raises(BadInput):
        workspaces.publish_dataset(a, "lesson", workspaces.new_token())
    with pytest.raises(UnknownName):
        workspaces.publish_dataset(a, "../lesson", workspaces.presenter_token())
    workspaces.publish_dataset(a, "lesson", workspaces.presenter_token())
    with workspaces.active(b):
        kinds = {i.name: i.kind for i in list_datasets()}
        assert kinds["lesson"] == "published" and load_named("lesson").num_classes == 2


# ----------------------------------------------------------------------------- limits, clean-up


def test_image_quota_names_its_setting_and_keeps_nothing(monkeypatch):
    monkeypatch.setenv("TLVIZ_WORKSPACE_IMAGES", "5")
    _, a = workspaces.create()
    with workspaces.active(a):
        save_user_dataset("small", _photos(2))
        with pytest.raises(QuotaExceeded, match="TLVIZ_WORKSPACE_IMAGES"):
            save_user_dataset("big", _photos(2))
        assert _names() >= {"small"} and "big" not in _names()


def test_disk_quota_names_its_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("TLVIZ_WORKSPACE_MB", "0.001")
    _, a = workspaces.create()
    with workspaces.active(a), pytest.raises(QuotaExceeded, match="TLVIZ_WORKSPACE_MB"):
        extract_zip(_zip(tmp_path / "z.zip"))
    assert not any(a.datasets_dir.iterdir())


def test_delete_removes_everything_and_says_what():
    from tlviz.embed import embed
    from tlviz.sprites import build_sprite_sheets

    _, a = workspaces.create()
    _, b = workspaces.create()
    with workspaces.active(a):
        save_user_dataset("pets", _photos())
        Ledger().start_run({"dataset": "pets"})
        ds = load_named("pets")
        embed(ds, "pixels")
        build_sprite_sheets(ds)
    cache = workspaces.root_dir().parent / "cache"
    assert list((cache / "sprites").glob(f"{ds.fingerprint}-*"))
    assert a.id in "".join(p.read_text() for p in (cache / "fingerprints").glob("*.json"))
    with workspaces.active(b):
        save_user_dataset("mine", _photos())
    summary = workspaces.delete(a)
    assert summary["datasets"] == ["pets"] and summary["runs"] == 1 and summary["bytes"] > 0
    assert not a.exists() and b.exists()
    # nothing of its images stays in the shared caches either
    assert summary["cached"] >= 2 and not list((cache / "sprites").glob(f"{ds.fingerprint}-*"))
    assert not list((cache / "embeddings").glob("*.npy"))
    assert a.id not in "".join(p.read_text() for p in (cache / "fingerprints").glob("*.json"))


def test_idle_workspaces_expire(monkeypatch):
    _, old = workspaces.create()
    _, fresh = workspaces.create()
    workspaces.published(writable=True)
    past = time.time() - 8 * 86400
    os.utime(old.root / ".last-used", (past, past))
    assert workspaces.sweep() == [old.id]
    assert not old.exists() and fresh.exists() and workspaces.published().exists()
    monkeypatch.setenv("TLVIZ_WORKSPACE_DAYS", "0.00001")
    time.sleep(1.0)
    assert workspaces.sweep() == [fresh.id]


# ----------------------------------------------------------------------------- queue


def test_queue_runs_at_most_its_slots_in_order_and_cancels_waiting_jobs():
    q = JobQueue(1)
    first, second, third = Ticket("a"), Ticket("b"), Ticket("a")
    release, order, stop_third = threading.Event(), [], threading.Event()
    places: list[int] = []

    def job(t, cancelled=lambda: False, on_wait=None):
        try:
            with q.slot(t, cancelled, on_wait):
                order.append(t.id)
                release.wait(10)
        except Cancelled:
            order.append(-t.id)

    threads = [threading.Thread(target=job, args=(first,))]
    threads[0].start()
    while q.position(first) != 0:
        time.sleep(0.01)
    threads.append(threading.Thread(target=job, args=(second, lambda: False, places.append)))
    threads[1].start()
    threads.append(threading.Thread(target=job, args=(third, stop_third.is_set)))
    threads[2].start()
    while q.counts() != (1, 2):
        time.sleep(0.01)
    assert q.position(second) == 1 and q.position(third) == 2 and q.owned("a") == 2
    stop_third.set()
    threads[2].join(5)
    assert order == [first.id, -third.id] and q.position(third) is None
    release.set()
    for t in threads:
        t.join(5)
    assert order == [first.id, -third.id, second.id] and places == [1] and q.counts() == (0, 0)


def test_queue_slots_from_the_environment(monkeypatch):
    from tlviz.jobqueue import default_slots

    monkeypatch.setenv("TLVIZ_MAX_JOBS", "3")
    assert default_slots() == 3 and JobQueue().slots == 3
    monkeypatch.setenv("TLVIZ_MAX_JOBS", "nonsense")
    assert default_slots() == (os.cpu_count() or 1)


def test_single_mode_is_unchanged(monkeypatch, classroom):
    monkeypatch.setenv("TLVIZ_MODE", "single")
    folder = save_user_dataset("pets", _photos())
    assert folder.parent == classroom / "datasets" and "pets" in _names()
    assert Ledger().path == classroom / "runs.db"
    assert np.all(load_named("pets").labels >= 0)
