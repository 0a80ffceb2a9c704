"""Nothing a user can supply is unpickled; imported models are validated.

A static scan of the product's code (tlviz/, ui/, pages/, app.py) rejects pickle-family
imports, ``torch.load`` without ``weights_only=True``, ``np.load(allow_pickle=True)`` and
other code-loading calls; the scanner checks itself on bad snippets so it cannot pass
vacuously. Then the runtime: hostile pickles where weights are expected run no code.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import make_image_folder

from tlviz.backbones import _load_state
from tlviz.data import scan_folder
from tlviz.runs import Ledger
from tlviz.train import TrainConfig, load_predictor, train

ROOT = Path(__file__).resolve().parents[1]
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal", "pickletools"}
BANNED_CALLS = {"read_pickle", "to_pickle"}  # pandas
BANNED_BUILTINS = {"eval", "exec"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every unsafe deserialisation or code-loading construct in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {m}" for m in mods if m.split(".")[0] in BANNED_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name == "torch.load" or name.endswith(".torch.load"):
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(f"{where}: torch.load without weights_only=True")
        if last == "load" and name.split(".")[0] in ("np", "numpy"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(f"{where}: np.load with allow_pickle")
        if name.endswith(("jit.load", "hub.load")) or name in ("yaml.load", "yaml.unsafe_load"):
            found.append(f"{where}: {name} loads code")
        if last in BANNED_CALLS or (isinstance(node.func, ast.Name) and name in BANNED_BUILTINS):
            found.append(f"{where}: {name}")
    return found


def _product_files() -> list[Path]:
    files = [p for d in ("tlviz", "ui", "pages") for p in sorted((ROOT / d).rglob("*.py"))]
    return files + [p for p in [ROOT / "app.py"] if p.exists()]


def test_scanner_catches_every_unsafe_pattern():
    bad = {
        "import pickle": "imports pickle",
        "from joblib import load": "imports joblib",
        "import dill as d": "imports dill",
        "torch.load(p)": "torch.load without weights_only=True",
        "torch.load(p, weights_only=False)": "torch.load without weights_only=True",
        "torch.load(p, weights_only=flag)": "torch.load without weights_only=True",
        "np.load(p, allow_pickle=True)": "np.load with allow_pickle",
        "numpy.load(p, allow_pickle=x)": "np.load with allow_pickle",
        "pd.read_pickle(p)": "read_pickle",
        "torch.jit.load(p)": "loads code",
        "yaml.load(s)": "loads code",
        "eval(s)": "eval",
        "exec(s)": "exec",
    }
    for src, words in bad.items():
        hits = unsafe_calls(src)
        assert len(hits) == 1 and words in hits[0], (src, hits)
    ok = ("torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, mmap_mode='r')\n"
          "np.load(p, allow_pickle=False)\nonnx.load(p)\nnet.eval()\nyaml.safe_load(s)")
    assert unsafe_calls(ok) == []


def test_product_code_never_unpickles():
    files = _product_files()
    assert len(files) > 10 and ROOT / "tlviz" / "backbones.py" in files
    found = [hit for f in files for hit in unsafe_calls(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- runtime


class _Evil:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_pickled_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "weights.pth").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(Exception, match="(?i)weights only|unpickl|unsupported"):
        _load_state(tmp_path / "weights.pth")
    assert not marker.exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A logistic-head run on 'pixels' features, and its export (made once per module)."""
    base = tmp_path_factory.mktemp("untrusted")
    led = Ledger(base / "runs.db")
    r = train(TrainConfig(dataset="tiny", backbone="pixels", head="logistic"),
              dataset=scan_folder(make_image_folder(base / "tiny")), ledger=led)
    return led, r.run_id


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    export = pytest.importorskip("tlviz.export", reason="tlviz/export.py not there yet")
    folder = tmp_path_factory.mktemp("export") / "model"
    export.export_run(*trained_run, folder, onnx=False)
    assert export.load_exported(folder, backend="torch").classes == ["class0", "class1"]
    return export, folder


def test_a_pickle_in_the_ledger_weights_runs_no_code(trained_run, tmp_path):
    src, rid = trained_run
    shutil.copy(src.path, tmp_path / "runs.db")
    led = Ledger(tmp_path / "runs.db")
    marker = tmp_path / "pwned"
    db = sqlite3.connect(led.path)
    db.execute("UPDATE weights SET data = ? WHERE run_id = ?", (pickle.dumps(_Evil(marker)), rid))
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="stored weights are damaged"):
        load_predictor(led, rid)
    assert not marker.exists()


def _tamper(folder: Path, what: str, marker: Path) -> None:
    info = json.loads((folder / "model.json").read_text())
    if what == "pickle weights":
        (folder / "model.safetensors").write_bytes(pickle.dumps(_Evil(marker)))
    elif what == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif what == "garbage onnx":
        (folder / "model.onnx").write_bytes(pickle.dumps(_Evil(marker)))
    elif what == "no classes":
        del info["classes"]
    elif what == "unknown head":
        info["model"]["head"] = "os.system"
    elif what == "wrong shapes":
        info["model"]["backbone"] = "tiny_random"
    (folder / "model.json").write_text(json.dumps(info))


TAMPERED = ["pickle weights", "truncated weights", "garbage onnx", "no classes", "unknown head",
            "wrong shapes"]


@pytest.mark.parametrize("what", TAMPERED)
def test_a_tampered_export_is_refused_with_a_clear_message(exported, tmp_path, what):
    export, original = exported
    folder = tmp_path / "model"
    shutil.copytree(original, folder)
    marker = tmp_path / "pwned"
    _tamper(folder, what, marker)
    with pytest.raises(ValueError, match=f"{folder}"):
        export.load_exported(folder)
    assert not marker.exists()
