"""Architecture rules: the library never touches streamlit; nothing is unpickled; caches in one place."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "tlviz").glob("*.py"))
DASHBOARD = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    """Top-level names of every module imported anywhere in the file (also inside functions)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module",
                                                                               "__import__")):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_scan_sees_imports():
    tree = ast.parse("def f():\n    import streamlit.components\n"
                     "from streamlit import x\nimportlib.import_module('streamlit')")
    assert _imported(tree) == {"streamlit"}
    assert "tlviz" in _imported(_tree(ROOT / "tlviz" / "cli.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_no_library_file_imports_streamlit(path):
    assert "streamlit" not in _imported(_tree(path))


def test_importing_every_library_module_leaves_streamlit_out():
    code = (
        "import importlib, json, pkgutil, sys, tlviz\n"
        "mods = [m.name for m in pkgutil.iter_modules(tlviz.__path__)]\n"
        "for m in mods: importlib.import_module('tlviz.' + m)\n"
        "print(json.dumps({'mods': mods, 'streamlit': sorted(k for k in sys.modules\n"
        "                  if k.split('.')[0] == 'streamlit')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {p.stem for p in LIBRARY} - {"__init__"} <= set(got["mods"])
    assert got["streamlit"] == []


def _calls(tree: ast.Module, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(name):
            yield node


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_nothing_is_unpickled(path):
    tree = _tree(path)
    assert not _imported(tree) & {"pickle", "dill", "joblib", "cloudpickle"}
    for call in _calls(tree, "torch.load"):
        kw = {k.arg: k.value for k in call.keywords}
        assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, (
            f"{path.name}:{call.lineno}: torch.load without weights_only=True")
    for call in _calls(tree, "load"):
        for k in call.keywords:
            assert not (k.arg == "allow_pickle" and getattr(k.value, "value", False)), (
                f"{path.name}:{call.lineno}: allow_pickle=True")


@pytest.mark.parametrize("path", [p for p in DASHBOARD if p.name != "cache.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_streamlit_caches_are_defined_only_in_ui_cache(path):
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    src = path.read_text()
    assert "cache_data" not in src and "cache_resource" not in src, (
        f"{path.relative_to(ROOT)}: st.cache_* belongs in ui/cache.py")
