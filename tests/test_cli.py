"""The ``tlviz`` command, in-process through ``tlviz.cli.main`` and once as the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fixtures_bad_inputs as F
import pandas as pd
import pytest

from tlviz.cli import main


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    """Each test gets its own tlviz home (ledger, caches)."""
    monkeypatch.setenv("TLVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


def test_datasets_and_backbones(capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    rows = {r["name"]: r for r in last_json(out)}
    assert code == 0 and rows["digits"]["available"] and "cifar10" in rows
    assert out.splitlines()[0].split()[:2] == ["name", "kind"]
    code, out, _ = run(capsys, "backbones", "--json")
    rows = {r["name"]: r for r in last_json(out)}
    assert code == 0 and rows["mobilenet_v2"]["feature_dim"] == 1280
    assert rows["pixels"]["offline"] and "tiny_random" not in rows


def test_embed_then_from_cache(capsys, tiny_folder):
    args = ("embed", "--dataset", tiny_folder, "--backbone", "tiny_random", "--json")
    code, out, _ = run(capsys, *args)
    first = last_json(out)
    assert code == 0 and first["images"] == 24 and first["dim"] == 16 and not first["from_cache"]
    assert first["failed"] == 0 and 0 <= first["knn5_loo_accuracy"] <= 1
    code, out, _ = run(capsys, *args)
    second = last_json(out)
    assert second["from_cache"] and second["silhouette"] == first["silhouette"]


def test_project_writes_a_csv(capsys, tiny_split_folder, tmp_path):
    out_csv = tmp_path / "layout.csv"
    code, out, _ = run(capsys, "project", "--dataset", tiny_split_folder, "--backbone", "pixels",
                       "--method", "pca", "--dim", "3", "--out", out_csv, "--json")
    assert code == 0 and last_json(out)["points"] == 48
    df = pd.read_csv(out_csv)
    assert list(df.columns) == ["x0", "x1", "x2", "label", "split", "path"] and len(df) == 48
    assert set(df["label"]) == {"class0", "class1", "class2"} and set(df["split"]) == {"train", "val"}
    assert all(Path(p).is_file() for p in df["path"])


def test_train_and_runs(capsys, tiny_folder, tmp_path):
    ids = []
    for head, params in (("logistic", '{"C": 0.5}'), ("knn", '{"n_neighbors": 1}')):
        code, out, _ = run(capsys, "train", "--dataset", tiny_folder, "--backbone", "tiny_random",
                           "--head", head, "--params", params, "--json")
        res = last_json(out)
        assert code == 0 and res.keys() >= {"run_id", "val_accuracy", "test_accuracy", "seconds"}
        assert 0 <= res["val_accuracy"] <= 1 and res["status"] == "completed"
        assert f"run {res['run_id']}: feature-extraction tiny_random + {head}" in out
        assert 0 <= res["val_ece"] <= 1 and "val ECE" in out and res["reliability"]
        assert (res["temperature"] is None) == (head == "knn")  # kNN vote shares are not scaled
        ids.append(res["run_id"])
    a, b = ids
    code, out, _ = run(capsys, "runs", "list", "--json")
    listed = last_json(out)
    assert code == 0 and [r["id"] for r in listed] == [b, a]
    assert listed[1]["temperature"] > 0 and listed[1]["val_ece"] >= 0
    assert listed[1]["val_low"] <= listed[1]["val_accuracy"] <= listed[1]["val_high"]
    assert "val_ece" in out.splitlines()[0] and "temperature" in out.splitlines()[0]
    code, out, _ = run(capsys, "runs", "show", a, "--json")
    shown = last_json(out)
    assert shown["id"] == a and shown["config"]["head_params"] == {"C": 0.5}
    assert len(shown["history"]) == 1
    code, out, _ = run(capsys, "runs", "compare", a, b, "--json")
    assert sorted(r["head"] for r in last_json(out)) == ["knn", "logistic"]
    code, out, _ = run(capsys, "runs", "export", "--out", tmp_path / "all.csv")
    assert code == 0 and sorted(pd.read_csv(tmp_path / "all.csv")["id"]) == [a, b]
    code, out, _ = run(capsys, "runs", "export", a, "--out", tmp_path / "one.json")
    assert [r["id"] for r in json.loads((tmp_path / "one.json").read_text())] == [a]
    code, out, _ = run(capsys, "runs", "delete", a, "--json")
    assert code == 0 and last_json(out) == {"deleted": 1}
    code, out, _ = run(capsys, "runs", "list", "--json")
    assert [r["id"] for r in last_json(out)] == [b]


def _bad_inputs(tmp_path: Path, folder: Path) -> dict[str, list]:
    train = ["train", "--backbone", "pixels", "--head", "knn", "--dataset"]
    return {
        "unknown dataset": ["embed", "--dataset", "no-such-set", "--backbone", "pixels"],
        "missing folder": ["embed", "--dataset", tmp_path / "missing" / "folder"],
        "not a zip": [*train, F.make_not_zip(tmp_path)],
        "zip slip": [*train, F.make_zip_slip(tmp_path)],
        "params not JSON": [*train, folder, "--params", '{"n_neighbors": '],
        "params not an object": [*train, folder, "--params", "[3]"],
        "unknown head parameter": [*train, folder, "--params", '{"neighbours": 3}'],
        "unknown head": [*train, folder, "--head", "svm"],
        "unknown backbone": ["embed", "--dataset", folder, "--backbone", "resnet9000"],
        "offline weights": ["embed", "--dataset", folder, "--backbone", "vgg16"],
        "offline download": ["train", "--dataset", "flowers102", "--backbone", "pixels"],
        "unknown run": ["runs", "show", "12345"],
        "export without --out": ["runs", "export"],
        "augment not JSON": [*train, folder, "--augment", "{flip"],
    }


BAD = list(_bad_inputs(Path("/x"), Path("/y")))


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_exit_code_2(case, capsys, tmp_path, tiny_folder, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no downloaded weights here
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # downloads fail at once
    argv = _bad_inputs(tmp_path, tiny_folder)[case]
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tlviz: ") and len(lines[0]) > 12, err
    assert "Traceback" not in err + out


def test_console_script_in_a_subprocess(tiny_folder, home):
    exe = Path(sys.executable).with_name("tlviz")
    if not exe.is_file():
        pytest.skip(f"console script not installed next to {sys.executable}")
    env = {**os.environ, "TLVIZ_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(exe), "train", "--dataset", str(tiny_folder), "--backbone",
                           "tiny_random", "--head", "mlp", "--epochs", "3", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["run_id"] == 1 and res.keys() >= {"val_accuracy", "test_accuracy", "seconds"}
    proc = subprocess.run([str(exe), "runs", "show", "7"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == "tlviz: no run 7"


def test_export_command_writes_an_onnx_model_that_onnxruntime_alone_reloads(capsys, tmp_path,
                                                                            tiny_folder):
    """tlviz export: the ONNX file gives the ledger predictor's probabilities within 1e-5,
    with onnxruntime and the exported preprocessing only (no tlviz model code)."""
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    from tlviz.preprocess import Preprocess
    from tlviz.runs import Ledger
    from tlviz.train import load_predictor

    code, out, _ = run(capsys, "train", "--dataset", tiny_folder, "--backbone", "tiny_random",
                       "--head", "logistic", "--json")
    rid = last_json(out)["run_id"]
    code, out, err = run(capsys, "export", rid, "--format", "onnx", "--out", tmp_path / "m", "--json")
    assert code == 0, err
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    prep = Preprocess(info["input_size"], info["resize"], tuple(info["mean"]), tuple(info["std"]),
                      info["grayscale"])
    images = [Image.open(p) for p in sorted(tiny_folder.rglob("*.png"))[:6]]
    sess = ort.InferenceSession(last_json(out)["onnx"], providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": np.stack([prep(im) for im in images])})[0]
    want = load_predictor(Ledger(), rid).predict_proba(images)
    np.testing.assert_allclose(got, want, atol=1e-5)
    code, out, err = run(capsys, "export", rid, "--format", "safetensors", "--out", tmp_path / "s")
    assert code == 0 and (tmp_path / "s" / "model.safetensors").exists()
    assert not (tmp_path / "s" / "model.onnx").exists()
    code, _, err = run(capsys, "export", 999, "--out", tmp_path / "x")
    assert code == 2 and err.strip() == "tlviz: no run 999"


def test_help_imports_nothing_heavy_and_names_the_ladder_steps():
    from tlviz.cli import LADDER_STEPS
    from tlviz.ladder import STEP_NAMES

    assert LADDER_STEPS == STEP_NAMES
    code = ("import sys\nfrom tlviz.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('torch', 'sklearn', 'numpy', 'pandas', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_label_issues_command(capsys, tiny_folder):
    code, out, err = run(capsys, "label-issues", "--dataset", tiny_folder, "--backbone",
                         "tiny_random", "--json")
    assert code == 0, err
    obj = last_json(out)
    assert obj["total"] == 24 and obj["flagged"] == len(obj["ranked"]) <= obj["total"]
    assert all({"index", "path", "label", "given_prob", "suggested"} <= set(r) for r in obj["ranked"])
