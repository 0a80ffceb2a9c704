"""A link is hostile input: every page, every query parameter, hostile values.

The web app opens only what it offers (datasets by their listed name, never a path), and
validates every query parameter against its allowed values. These tests open each page
with traversal strings, absolute paths, ``file:`` URLs, 10,000-character values, control
characters, markup, emoji, out-of-range numbers and repeated values, and check that no
exception is shown, that nothing of a private folder is opened or shown (an audit hook
watches every file-system event), and that the page falls back to its defaults with a notice.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import make_image_folder
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
# the entry (Home) and every page file, each opened through app.py
PAGES = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))]
SECRET_CLASSES = ("zqxsecretalpha", "zqxsecretbeta")


def query_names() -> list[str]:
    """Every query parameter a page or ``ui/`` reads through ``ui.state``, found in the
    source (so a parameter added later is fuzzed too), f-string names expanded, names
    given as a module constant (``IMAGE = "explore_image"``) looked up."""
    import tlviz.finetune  # noqa: F401 - registers its modes
    from tlviz.train import MODES

    pat = re.compile(r"state\.(?:widget|get|sync)\(\s*(f?)\"([^\"]+)\"")
    by_constant = re.compile(r"\bstate\.(?:widget|get|sync)\(\s*([A-Z][A-Z0-9_]*)\b")
    constant = re.compile(r"^([A-Z][A-Z0-9_]*) = \"([^\"]+)\"", re.M)
    names = {"dataset", "backbone", "presenter", "seed"}
    for f in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        source = f.read_text()
        for is_f, name in pat.findall(source):
            if is_f:
                names.update(name.replace("{mode}", m) for m in MODES)
            else:
                names.add(name)
        constants = dict(constant.findall(source))  # a name given as a module constant
        names.update(constants[c] for c in by_constant.findall(source) if c in constants)
    names |= {"aug_rotation", "aug_wshift", "aug_hshift", "aug_shear", "aug_zoom", "aug_bright",
              "aug_contrast", "aug_hflip", "aug_vflip"}  # read in a loop over a table
    return sorted(n for n in names if "{" not in n)


def hostile_values(private: Path) -> dict[str, str | list[str]]:
    rel = os.path.relpath(private, ROOT)
    return {
        "absolute": str(private),
        "traversal": rel,
        "dotdot": "../../../../../../etc/passwd",
        "file_url": f"file://{private}",
        "home": "~",
        "long": "a" * 2_000,  # 10x the limit (60 such values: a 120 kB query string)
        "nul": "digits\x00/etc/passwd",
        "control": "\r\n\x1b[31m\u202e",
        "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
        "emoji": "🐜🐝",
        "negative": "-1",
        "huge": "9" * 30,
        "float": "1e308",
        "nan": "nan",
        "list": ["0", "1", "2", "../x"],
    }


class FileWatch:
    """An audit hook (it cannot be removed, so it is switched on and off) that records every
    file-system event whose path lies in a watched folder or outside the allowed roots."""

    EVENTS = ("open", "os.listdir", "os.scandir", "os.chdir", "os.rename", "os.remove",
              "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.copyfile", "os.symlink")

    def __init__(self):
        self.active = False
        self.forbidden: list[str] = []
        self.allowed: list[str] = []
        self.hits: list[tuple[str, str]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event not in self.EVENTS or not args:
            return
        arg = args[0]
        if isinstance(arg, bytes):
            arg = arg.decode("utf-8", "replace")
        if not isinstance(arg, str | os.PathLike):
            return
        path = os.path.abspath(os.fspath(arg))
        if any(path.startswith(f) for f in self.forbidden) or \
                not any(path.startswith(a) for a in self.allowed):
            self.hits.append((event, path))


_WATCH: FileWatch | None = None


@pytest.fixture(scope="module")
def watch() -> FileWatch:
    global _WATCH
    if _WATCH is None:
        _WATCH = FileWatch()
    return _WATCH


@pytest.fixture(scope="module")
def env(tmp_path_factory, watch):
    """A home with a tiny user dataset as the default, and a private folder nobody offers."""
    base = tmp_path_factory.mktemp("urlsec")
    home = base / "home"
    make_image_folder(home / "datasets" / "tiny", n_classes=2, per_class=8, size=24)
    private = base / "private"
    for k, name in enumerate(SECRET_CLASSES):
        make_image_folder(private / "tmp", n_classes=1, per_class=6, size=24, seed=k)
        (private / "tmp" / "class0").rename(private / name)
    (private / "tmp").rmdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("TLVIZ_HOME", str(home))
    mp.setenv("TLVIZ_DEFAULT_DATASET", "tiny")
    mp.setenv("TLVIZ_DEFAULT_BACKBONE", "tiny_random")
    data_dir = os.environ.get("TLVIZ_DATA_DIR", "")
    from tlviz.runs import Ledger
    from tlviz.train import TrainConfig, train

    # one run, so that Compare's and Predict's run parameters are read and checked
    train(TrainConfig(dataset="tiny", backbone="tiny_random", head="knn"), ledger=Ledger())
    watch.forbidden = [str(private)]
    watch.allowed = [str(home), str(ROOT), sys.prefix, sys.base_prefix, "/usr", "/etc", "/proc",
                     "/sys", "/dev", os.path.expanduser("~/.cache"), *([data_dir] if data_dir else []),
                     tempfile.gettempdir()]  # torch's own scratch folders; private is forbidden
    yield {"home": home, "private": private}
    mp.undo()


def open_page(page: str, query: dict) -> AppTest:
    """The app opened with ``query``, then ``page``; ``at.notices`` holds the toasts of both
    runs (a notice is given once, on the first run that reads the bad value)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(query)
    at.run()
    notices = [str(t.value) for t in at.toast]
    if page != "app.py" and not at.exception:
        at.switch_page(page).run()
        notices += [str(t.value) for t in at.toast]
    at.notices = notices
    return at


def shown_text(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.warning, *at.error, *at.info, *at.subheader,
             *at.title, *at.toast]
    text = "\n".join(str(p.value) for p in parts)
    for sb in at.selectbox:
        text += "\n" + "\n".join(map(str, sb.options))
    return text


@pytest.mark.parametrize("page", PAGES)
def test_every_parameter_hostile_on_every_page(page, env, watch):
    names = query_names()
    assert {"dataset", "backbone", "method", "split", "runs", "run", "aug_rotation",
            "explore_image", "selection", "explore_k", "ft_blocks"} <= set(names)
    values = hostile_values(env["private"])
    for kind, value in values.items():
        watch.hits.clear()
        watch.active = True
        try:
            at = open_page(page, {n: value for n in names})
        finally:
            watch.active = False
        assert not at.exception, (page, kind, at.exception)
        assert not watch.hits, (page, kind, watch.hits[:5])
        text = shown_text(at)
        assert not any(c in text for c in SECRET_CLASSES), (page, kind)
        assert "<script>" not in "".join(str(m.value) for m in at.markdown if m.allow_html)
        # the shared choices fell back to the defaults, and the user was told
        assert at.session_state["s.dataset"] == "tiny", (page, kind)
        assert at.session_state["s.backbone"] == "tiny_random", (page, kind)
        assert any("link" in n for n in at.notices), (page, kind)


@pytest.mark.parametrize("how", ["absolute", "traversal", "file_url", "home"])
def test_a_folder_path_in_the_link_opens_nothing(how, env, watch):
    value = hostile_values(env["private"])[how]
    watch.hits.clear()
    watch.active = True
    try:
        at = open_page("pages/1_Data.py", {"dataset": value})
    finally:
        watch.active = False
    assert not at.exception, at.exception
    assert not watch.hits, watch.hits[:5]
    assert not any(c in shown_text(at) for c in SECRET_CLASSES)
    assert at.session_state["s.dataset"] == "tiny"
    assert "dataset" not in at.query_params or at.query_params["dataset"] != value
    assert at.notices == [
        "The link's value for 'dataset' is not one this app offers: using the default."]


def test_good_values_in_a_link_still_work(env):
    at = open_page("pages/3_Embedding_space.py", {"dataset": "tiny", "backbone": "tiny_random",
                                                  "method": "pca", "compare": "none"})
    assert not at.exception, at.exception
    assert not at.notices
    assert at.button_group(key="w.method").value == "pca"
    assert at.selectbox(key="w.compare").value == "none"


def test_library_name_loader_refuses_paths_without_touching_them(env, watch):
    from tlviz.data import DatasetError, is_dataset_name, load_named

    for value in hostile_values(env["private"]).values():
        if isinstance(value, list):
            continue
        watch.hits.clear()
        watch.active = True
        try:
            with pytest.raises(DatasetError):
                load_named(value)
        finally:
            watch.active = False
        assert not watch.hits, watch.hits[:5]
    assert is_dataset_name("tiny") and load_named("tiny").classes == ["class0", "class1"]


def test_user_dataset_symlink_is_not_offered(env, tmp_path):
    from tlviz.data import list_datasets

    link = env["home"] / "datasets" / "sneaky"
    link.symlink_to(env["private"], target_is_directory=True)
    try:
        assert "sneaky" not in {i.name for i in list_datasets()}
    finally:
        link.unlink()


def test_streamlit_protections_stay_on():
    """XSRF protection and CORS keep Streamlit's defaults (on): the README's deployment notes
    rely on them."""
    import tomllib

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text()).get("server", {})
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True
    assert server.get("maxUploadSize", 200) <= 200


def test_a_link_value_is_matched_to_its_option(env):
    """?knn_k=3 selects the option 3 of ["auto", 1, 3, ...], and ?C=10.0 the option 10.0."""
    at = open_page("pages/5_Train.py", {"head": "knn", "knn_k": "3"})
    assert not at.exception, at.exception
    assert at.select_slider(key="w.knn_k").value == 3 and not at.notices
    at = open_page("pages/5_Train.py", {"head": "logistic", "C": "10.0"})
    assert at.select_slider(key="w.C").value == 10.0 and not at.notices
