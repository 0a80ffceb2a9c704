"""tlviz.runs: the SQLite run ledger."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from tlviz.runs import Ledger


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "runs.db")


def _run(led: Ledger, head="knn", val=0.5, epochs=2, **finish) -> int:
    rid = led.start_run({"dataset": "digits", "backbone": "pixels", "head": head,
                         "augment": {"horizontal_flip": True}, "seed": 3, "head_params": {"k": 1}})
    for e in range(1, epochs + 1):
        led.log_epoch(rid, e, train_loss=1.0 / e, train_acc=0.5 + 0.1 * e, val_loss=None, val_acc=val)
    led.finish_run(rid, val_accuracy=val, train_accuracy=0.9, confusion=np.eye(2, dtype=int),
                   classes=["a", "b"], timings={"fit": 0.1}, seconds=1.5, **finish)
    return rid


def test_start_log_finish(ledger):
    rid = ledger.start_run({"dataset": "digits", "backbone": "pixels", "head": "knn"})
    assert ledger.get_run(rid)["status"] == "running"
    ledger.log_epoch(rid, 1, train_loss=0.7, train_acc=0.6, val_loss=0.8, val_acc=0.55)
    ledger.log_epoch(rid, 1, train_loss=0.5, train_acc=0.7, val_loss=0.6, val_acc=0.65)  # replaces
    ledger.log_epoch(rid, 2, train_acc=0.8)
    ledger.finish_run(rid, val_accuracy=0.9, test_accuracy=0.85, confusion=[[3, 1], [0, 4]],
                      classes=["ant", "bee"], timings={"embed": 1.0}, seconds=2.0)
    run = ledger.get_run(rid)
    assert run["status"] == "completed" and run["finished"] >= run["created"]
    assert run["val_accuracy"] == 0.9 and run["test_accuracy"] == 0.85
    assert run["train_accuracy"] is None
    assert run["confusion"] == [[3, 1], [0, 4]] and run["classes"] == ["ant", "bee"]
    assert run["config"] == {"dataset": "digits", "backbone": "pixels", "head": "knn"}
    hist = run["history"]
    assert hist["epoch"].tolist() == [1, 2] and hist["train_loss"].iloc[0] == 0.5
    assert pd.isna(hist["val_acc"].iloc[1])
    with pytest.raises(KeyError, match="no run 999"):
        ledger.get_run(999)


def test_list_show_compare_delete(ledger):
    a, b, c = _run(ledger, "knn", 0.5), _run(ledger, "mlp", 0.7), _run(ledger, "logistic", 0.9)
    df = ledger.list_runs()
    assert df["id"].tolist() == [c, b, a]  # newest first
    assert df["head"].tolist() == ["logistic", "mlp", "knn"]
    assert json.loads(df["augment"].iloc[0]) == {"horizontal_flip": True}
    cmp = ledger.compare([a, c])
    assert sorted(cmp["id"]) == [a, c] and sorted(cmp["val_accuracy"]) == [0.5, 0.9]
    hs = ledger.histories([a, b])
    assert set(hs) == {a, b} and len(hs[a]) == 2
    assert ledger.delete([b]) == 1
    assert ledger.list_runs()["id"].tolist() == [c, a]
    assert ledger.history(b).empty and ledger.weights(b) is None
    assert ledger.list_runs(status="completed")["id"].tolist() == [c, a]


def test_export_csv_and_json(ledger, tmp_path):
    a, b = _run(ledger, "knn", 0.5), _run(ledger, "mlp", 0.75, epochs=3)
    csv = pd.read_csv(ledger.export([a, b], tmp_path / "runs.csv"))
    assert sorted(csv["id"]) == [a, b] and sorted(csv["val_accuracy"]) == [0.5, 0.75]
    runs = json.loads(ledger.export([a, b], tmp_path / "runs.json").read_text())
    assert [r["id"] for r in runs] == [a, b]
    assert [h["epoch"] for h in runs[1]["history"]] == [1, 2, 3]
    assert runs[0]["config"]["head_params"] == {"k": 1} and runs[0]["confusion"] == [[1, 0], [0, 1]]
    text = ledger.export_text([b], "json")
    assert json.loads(text)[0]["head"] == "mlp"
    assert ledger.export_text([a], "csv").splitlines()[0].startswith("id,")
    with pytest.raises(ValueError, match="csv or json"):
        ledger.export([a], tmp_path / "runs.xlsx")


def test_weights_round_trip(ledger):
    w = {"head.coef_": np.arange(6, dtype=np.float32).reshape(2, 3),
         "head.classes_": np.array([0, 1]), "head.mean_": np.zeros(3, np.float64)}
    rid = _run(ledger, weights=w)
    back = ledger.weights(rid)
    assert set(back) == set(w)
    for k in w:
        assert back[k].dtype == w[k].dtype and np.array_equal(back[k], w[k])
    assert ledger.weights(_run(ledger)) is None


def test_runs_survive_reopening(tmp_path):
    path = tmp_path / "runs.db"
    first = Ledger(path)
    rid = _run(first, weights={"w": np.ones(3, np.float32)})
    again = Ledger(path)  # a new object, e.g. after a restart
    run = again.get_run(rid)
    assert run["status"] == "completed" and len(run["history"]) == 2
    assert np.array_equal(again.weights(rid)["w"], np.ones(3))
    assert again.list_runs()["id"].tolist() == [rid]


def _dead_pid() -> int:
    pid = 2**22 - 7  # above the default pid_max (32768); where it is higher, find a free one
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_running_run_of_a_dead_process_becomes_interrupted(tmp_path):
    import sqlite3

    path = tmp_path / "runs.db"
    led = Ledger(path)
    dead, alive = led.start_run({"head": "mlp"}), led.start_run({"head": "knn"})
    with sqlite3.connect(path) as db:  # as if another process had started it and died
        db.execute("UPDATE runs SET pid=? WHERE id=?", (_dead_pid(), dead))
    assert led.get_run(dead)["status"] == "running"
    reopened = Ledger(path)
    assert reopened.get_run(dead)["status"] == "interrupted"
    assert reopened.get_run(alive)["status"] == "running"  # ours: this process is alive
    reopened.finish_run(alive, val_accuracy=1.0)
    assert Ledger(path).get_run(alive)["status"] == "completed"


def test_default_ledger_lives_in_the_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    led = Ledger()
    assert led.path == tmp_path / "home" / "runs.db" and led.path.is_file()


def test_an_old_ledger_gains_the_new_columns(tmp_path):
    """A ledger written before counts, chosen hyper-parameters and calibration were stored."""
    import sqlite3

    from tlviz.runs import ADDED_COLUMNS, SCHEMA

    old_schema = SCHEMA
    for col, kind in ADDED_COLUMNS:
        old_schema = old_schema.replace(f",\n    {col} {kind}", "")
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(old_schema)
    assert not {c for c, _ in ADDED_COLUMNS} & {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    db.execute("INSERT INTO runs (created, status, config, val_accuracy, head) "
               "VALUES (1.0, 'completed', '{\"head\": \"knn\"}', 0.8, 'knn')")
    db.commit()
    db.close()
    led = Ledger(path)
    old = led.get_run(1)
    assert old["val_ece"] is None and old["temperature"] is None and old["reliability"] is None
    df = led.list_runs()
    assert {"val_ece", "temperature"} <= set(df.columns) and df["val_ece"].isna().all()
    bins = [{"lo": 0.8, "hi": 0.9, "count": 3, "confidence": 0.85, "accuracy": 2 / 3}]
    rid = _run(led, head="logistic", val_ece=0.18, temperature=1.7, reliability=bins)
    new = led.get_run(rid)
    assert new["val_ece"] == pytest.approx(0.18) and new["temperature"] == pytest.approx(1.7)
    assert new["reliability"] == bins
    assert led.list_runs().set_index("id").loc[rid, "temperature"] == pytest.approx(1.7)
