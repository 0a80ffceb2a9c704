"""The ladder, repeated runs (mean ± std), the images-per-class curve and their CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image_folder

from tlviz import cli
from tlviz.data import load_dataset
from tlviz.ladder import (
    STEP_NAMES,
    images_per_class_curve,
    repeated_runs,
    resolve_steps,
    run_ladder,
    summarize,
)
from tlviz.metrics import wilson_interval
from tlviz.runs import Ledger
from tlviz.train import TrainConfig

FAST = {"pixels-mlp": {"epochs": 2}, "scratch-cnn": {"epochs": 2, "image_size": 32},
        "scratch-cnn+aug": {"epochs": 2, "image_size": 32}, "fine-tune": {"epochs": 1}}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("lad") / "tiny", n_classes=2, per_class=14,
                             size=32, seed=5)


def test_ladder_runs_every_step_over_seeds_into_the_ledger(tiny_root, tmp_path):
    led = Ledger(tmp_path / "runs.db")
    seen = []
    res = run_ladder(load_dataset(str(tiny_root)), backbone="tiny_random", seeds=(0, 1),
                     ledger=led, options=FAST, progress=lambda d, t, m: seen.append((d, t, m)))
    assert list(res.table["step"]) == list(STEP_NAMES)
    assert not res.cancelled and len(res.run_ids) == 2 * len(STEP_NAMES)
    assert (res.table["n_seeds"] == 2).all() and (res.table["val_std"] >= 0).all()
    for row in res.table.itertuples():
        vals = res.runs[res.runs["step"] == row.step]["val_accuracy"]
        assert row.val_mean == pytest.approx(vals.mean())
        assert row.val_std == pytest.approx(np.std(vals, ddof=1))
        # the 95% Wilson interval of the mean on the val images (every seed shares them)
        n_val = int(res.runs[res.runs["step"] == row.step]["n_val"].iloc[0])
        assert row.n_val == n_val > 0 and row.val_low <= row.val_mean <= row.val_high
        assert (row.val_low, row.val_high) == pytest.approx(
            wilson_interval(round(row.val_mean * n_val), n_val))
    runs = led.list_runs()
    assert set(res.run_ids) <= set(runs["id"]) and (runs["status"] == "completed").all()
    assert all(len(h) >= 1 for h in led.histories(res.run_ids).values())  # curves for Compare
    modes = dict(zip(runs["id"], runs["mode"]))
    assert {modes[i] for i in res.run_ids} == {"pixels-mlp", "scratch-cnn", "feature-extraction",
                                                 "fine-tune"}
    augs = {r.step: led.get_run(r.run_ids[0])["config"]["augment"] for r in res.table.itertuples()}
    assert augs["scratch-cnn+aug"] and not augs["scratch-cnn"] and augs["fine-tune"]
    assert seen[-1][0] == seen[-1][1]  # progress reaches the end
    assert "±" in res.to_text() and f"({100 * row.val_low:.1f}–" in res.to_text()
    assert {"val_low", "val_high", "n_val"} <= set(res.to_json()["steps"][0])


def test_ladder_cancellation_returns_finished_steps(tiny_root):
    steps_seen = []

    def progress(done, total, msg):
        steps_seen.append(msg.split(":")[0])

    res = run_ladder(load_dataset(str(tiny_root)), backbone="tiny_random", seeds=(0,),
                     modes=["pixels-mlp", "scratch-cnn"], ledger=None, options=FAST,
                     progress=progress, should_stop=lambda: "scratch-cnn" in steps_seen)
    assert res.cancelled
    assert list(res.table["step"]) == ["pixels-mlp"]


def test_resolve_steps_in_ladder_order():
    picked = resolve_steps(["fine-tune", "scratch-cnn+aug", "pixels-mlp"])
    assert [s.name for s in picked] == ["pixels-mlp", "scratch-cnn+aug", "fine-tune"]  # ladder order
    assert [s.name for s in resolve_steps(["scratch-cnn"])] == ["scratch-cnn"]
    with pytest.raises(ValueError, match="unknown ladder step"):
        resolve_steps(["warp-drive"])
    with pytest.raises(ValueError, match="unknown step"):
        run_ladder("digits", backbone="pixels", options={"nope": {}}, ledger=None)


def test_repeated_runs_vary_seed_and_split():
    cfg = TrainConfig(dataset="digits", backbone="pixels", head="mlp", epochs=3)
    df = repeated_runs(cfg, (0, 1, 2), ledger=None)
    assert list(df["seed"]) == [0, 1, 2] and df["val_accuracy"].between(0.5, 1).all()
    s = summarize(df)
    assert s["val_mean"] == pytest.approx(df["val_accuracy"].mean())
    assert s["val_std"] == pytest.approx(df["val_accuracy"].std(ddof=1))
    assert df["train_accuracy"].nunique() > 1 or s["val_std"] > 0  # seeds change the model
    knn = TrainConfig(dataset="digits", backbone="pixels", head="knn")
    same = repeated_runs(knn, (0, 1), ledger=None)
    assert summarize(same)["val_std"] == 0  # deterministic head, fixed split
    moved = repeated_runs(knn, (0, 1), vary="split", ledger=None)
    assert summarize(moved)["val_std"] > 0  # the split itself moves


def test_images_per_class_curve_rises_with_data():
    df = images_per_class_curve("digits", "pixels", "logistic", sizes=(2, 20, None), seeds=(0, 1, 2))
    assert list(df["label"]) == ["2", "20", "all"]
    assert list(df["n_train"][:2]) == [20, 200]
    assert df["val_mean"].iloc[0] < df["val_mean"].iloc[1] <= df["val_mean"].iloc[2] + 0.02
    assert df["val_std"].iloc[0] > 0 and df["seeds"].iloc[2] == 1
    assert ((df["val_low"] <= df["val_mean"]) & (df["val_mean"] <= df["val_high"])).all()


def test_cli_ladder_and_curve_print_a_table_and_json(tiny_root, capsys):
    code = cli.main(["ladder", "--dataset", str(tiny_root), "--backbone", "tiny_random",
                     "--seeds", "0,1", "--steps", "feature-extraction,pixels-mlp",
                     "--options", json.dumps({"pixels-mlp": {"epochs": 2}}), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[1].split()[:2] == ["step", "val"]
    obj = json.loads(out[-1])
    assert [s["step"] for s in obj["steps"]] == ["pixels-mlp", "feature-extraction"]
    assert len(obj["run_ids"]) == 4
    code = cli.main(["curve", "--dataset", "digits", "--backbone", "pixels", "--sizes", "5,all",
                     "--seeds", "0,1", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and [r["label"] for r in json.loads(out[-1])] == ["5", "all"]
    assert "%" in out[1] and "–" in out[1] and "val_low" in json.loads(out[-1])[0]


@pytest.mark.parametrize("argv,message", [
    (["ladder", "--dataset", "digits", "--steps", "warp"], "unknown ladder step"),
    (["ladder", "--dataset", "digits", "--seeds", "a,b"], "comma-separated"),
    (["ladder", "--dataset", "/no/such/folder"], ""),
    (["curve", "--dataset", "digits", "--backbone", "pixels", "--sizes", "0"], "at least 1"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tlviz: ") and message in err and "Traceback" not in err
