"""tlviz.curves: the figures of the Train, Compare and Predict pages (pure plotly)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tlviz.curves import (
    cell_indices,
    confusion_figure,
    curves_figure,
    ladder_figure,
    off_diagonal_cells,
    proba_figure,
)
from tlviz.runs import Ledger
from tlviz.train import TrainConfig, train


def _traces(fig, **match):
    return [t for t in fig.data if all(getattr(t, k) == v for k, v in match.items())]


def test_curves_train_dashed_val_solid_one_colour_per_run():
    h1 = [{"epoch": e, "train_acc": 0.5 + e / 10, "val_acc": 0.4 + e / 10,
           "train_loss": 1 / e, "val_loss": 1.2 / e} for e in (1, 2, 3)]
    h2 = pd.DataFrame(h1).assign(val_acc=[0.3, 0.35, 0.4])
    fig = curves_figure({"run 1": h1, "run 2": h2})
    assert len(fig.data) == 8  # 2 runs x (acc, loss) x (train, val)
    for t in fig.data:
        assert t.line.dash == ("dash" if t.name.endswith("train") else "solid")
    colours = {t.name.split(" · ")[0]: set() for t in fig.data}
    for t in fig.data:
        colours[t.name.split(" · ")[0]].add(t.line.color)
    assert all(len(c) == 1 for c in colours.values())
    assert colours["run 1"] != colours["run 2"]
    val2 = [t for t in fig.data if t.name == "run 2 · val" and t.xaxis == "x"][0]
    assert list(val2.y) == [0.3, 0.35, 0.4]
    # loss panel is the second subplot
    assert {t.xaxis for t in fig.data if "loss" in t.hovertemplate} == {"x2"}


def test_curves_skip_missing_values_and_one_epoch_runs_are_markers():
    df = pd.DataFrame([{"epoch": 1, "train_acc": 1.0, "val_acc": 0.9,
                        "train_loss": np.nan, "val_loss": None}])
    fig = curves_figure({"knn": df})
    assert [t.name for t in fig.data] == ["knn · train", "knn · val"]
    assert all(t.mode == "markers" for t in fig.data)
    assert len(curves_figure({}).data) == 0


def test_curves_escape_user_text_in_hover():
    fig = curves_figure({"<b>x</b> %{y}": [{"epoch": 1, "val_acc": 0.5}]})
    assert "<b>" not in fig.data[0].hovertemplate
    assert "%{y}</extra>" not in fig.data[0].hovertemplate


def test_curves_of_a_real_mlp_run_from_the_ledger(tmp_path):
    led = Ledger(tmp_path / "runs.db")
    r = train(TrainConfig(dataset="digits", backbone="pixels", head="mlp",
                          head_params={"hidden": 16}, epochs=4), ledger=led)
    fig = curves_figure({f"#{r.run_id}": led.history(r.run_id)})
    acc_val = [t for t in fig.data if t.name.endswith("val") and t.xaxis == "x"][0]
    assert list(acc_val.x) == [1, 2, 3, 4]
    assert acc_val.y[-1] == pytest.approx(r.history[-1]["val_acc"])


def test_confusion_cells_carry_true_and_predicted_class():
    cm = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 3]])
    fig = confusion_figure(cm, ["a", "b", "c"])
    heat, cells = fig.data
    assert np.allclose(np.asarray(heat.z).sum(1), 1.0)  # row-normalised colours
    for (t, p), txt in zip(cells.customdata, cells.text):
        assert txt == (str(cm[t, p]) if cm[t, p] else "")
    k = [i for i, (t, p) in enumerate(cells.customdata) if (t, p) == (1, 0)][0]
    assert (cells.y[k], cells.x[k], cells.text[k]) == ("b", "a", "2")


def test_confusion_with_an_empty_row_has_no_nan():
    fig = confusion_figure([[0, 0], [1, 3]], ["x", "y"])
    assert np.isfinite(np.asarray(fig.data[0].z, dtype=float)).all()


def test_cell_indices_and_off_diagonal_cells_match_a_brute_force():
    rng = np.random.default_rng(0)
    idx = rng.permutation(100)[:40]
    yt, yp = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    for t in range(3):
        for p in range(3):
            want = [i for i, a, b in zip(idx, yt, yp) if a == t and b == p]
            assert list(cell_indices(idx, yt, yp, t, p)) == want
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (yt, yp), 1)
    cells = off_diagonal_cells(cm)
    assert sum(c for *_, c in cells) == len(yt) - np.trace(cm)
    assert all(t != p for t, p, _ in cells)
    assert [c for *_, c in cells] == sorted((c for *_, c in cells), reverse=True)


def test_proba_bars_sorted_and_top_highlighted():
    fig = proba_figure([0.1, 0.7, 0.2], ["cat", "dog", "bee"])
    bar = fig.data[0]
    assert list(bar.y) == ["dog", "bee", "cat"]
    assert list(bar.x) == pytest.approx([0.7, 0.2, 0.1])
    assert bar.marker.color[0] != bar.marker.color[1]
    assert len(proba_figure(np.full(20, 0.05), [str(i) for i in range(20)], top=5).data[0].y) == 5


def test_ladder_figure_labels_steps_and_shows_test():
    table = pd.DataFrame({"step": [1, 2], "mode": ["pixels-mlp", "feature-extraction"],
                          "augment": [False, True], "val_mean": [0.6, 0.9],
                          "val_std": [0.05, 0.01], "test_mean": [0.58, 0.88]})
    fig = ladder_figure(table)
    assert list(fig.data[0].x) == ["1. pixels-mlp", "2. feature-extraction + aug"]
    assert list(fig.data[0].error_y.array) == [0.05, 0.01]
    assert list(fig.data[1].y) == [0.58, 0.88]
    no_test = ladder_figure(table.drop(columns="test_mean"))
    assert len(no_test.data) == 1
    named = table.assign(step=["pixels-mlp", "scratch-cnn+aug"], augment=[False, True])
    assert list(ladder_figure(named).data[0].x) == ["pixels-mlp", "scratch-cnn+aug"]


def test_final_val_accuracy_carries_its_interval_as_an_error_bar():
    fig = curves_figure({"#1": [{"epoch": 1, "val_acc": 0.8}, {"epoch": 2, "val_acc": 0.9}]},
                        finals={"#1": (0.9, 0.85, 0.93)})
    bar = [t for t in fig.data if t.error_y and t.error_y.array is not None]
    assert len(bar) == 1 and bar[0].y[0] == 0.9
    assert bar[0].error_y.array[0] == pytest.approx(0.03) and bar[0].error_y.arrayminus[0] == pytest.approx(0.05)
    assert "95% CI 85.0%–93.0%" in bar[0].hovertemplate


def test_one_step_runs_are_lines_beside_curves_and_bars_alone():
    from tlviz.curves import curves_figure, final_bars_figure

    one = [{"epoch": 1, "train_acc": 0.99, "val_acc": 0.9, "train_loss": None, "val_loss": None}]
    many = [{"epoch": e, "train_acc": 0.5 + e / 20, "val_acc": 0.5 + e / 25, "train_loss": 1 / e,
             "val_loss": 1.2 / e} for e in range(1, 6)]
    fig = curves_figure({"#1 logistic": one, "#2 mlp": many})
    flat = [t for t in fig.data if "(one step)" in t.name]
    assert {t.name for t in flat} == {"#1 logistic · train (one step)", "#1 logistic · val (one step)"}
    assert all(list(t.x) == [0.5, 5.5] and t.y[0] == t.y[1] for t in flat)  # across all epochs
    bars = final_bars_figure({"#1 logistic": {"val": 0.9, "low": 0.85, "high": 0.94, "train": 0.99},
                              "#3 knn": {"val": 0.8, "low": None, "high": None, "train": None}})
    kinds = [(t.type, t.name) for t in bars.data]
    assert kinds == [("bar", "#1 logistic · val"), ("scatter", "#1 logistic · train"),
                     ("bar", "#3 knn · val")]
    assert bars.data[0].error_y.array[0] == pytest.approx(0.04)
    assert bars.data[2].error_y.array is None  # no interval known: no bar drawn
