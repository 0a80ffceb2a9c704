"""Shared fixtures: an isolated tlviz home, tiny generated image folders, the real-data tier.

Every test session gets its own ``TLVIZ_HOME`` (caches, ledger) unless one is set, and
``TLVIZ_DATA_DIR`` defaults to ``../shared/datasets`` when that folder exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # fixtures_bad_inputs and friends

os.environ.setdefault("OMP_NUM_THREADS", "2")
if "TLVIZ_HOME" not in os.environ:
    import tempfile

    os.environ["TLVIZ_HOME"] = tempfile.mkdtemp(prefix="tlviz-test-home-")
_shared = ROOT.parent / "shared" / "datasets"
if not os.environ.get("TLVIZ_DATA_DIR") and _shared.is_dir():
    os.environ["TLVIZ_DATA_DIR"] = str(_shared)

import torch  # noqa: E402

torch.set_num_threads(2)

COLORS = [(220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 30)]


def make_image_folder(root: Path, n_classes: int = 2, per_class: int = 12, size: int = 40,
                      splits: tuple[str, ...] | None = None, seed: int = 0, fmt: str = "png") -> Path:
    """Tiny, separable images: class k is a noisy square of colour k at a random place."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in splits or (None,):
        for k in range(n_classes):
            d = root / split / f"class{k}" if split else root / f"class{k}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
                x, y = rng.integers(0, size // 2, 2)
                a[y:y + size // 2, x:x + size // 2] = COLORS[k % len(COLORS)]
                Image.fromarray(a).save(d / f"img{i:03d}.{fmt}")
    return root


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """Two classes x 12 images, no split folders (a seeded split is made)."""
    return make_image_folder(tmp_path / "tiny")


@pytest.fixture
def tiny_split_folder(tmp_path) -> Path:
    """Three classes with train/ and val/ folders."""
    return make_image_folder(tmp_path / "tinysplit", n_classes=3, per_class=8, splits=("train", "val"))


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in the data directory, or a visible skip saying why not."""
    base = os.environ.get("TLVIZ_DATA_DIR")
    if not base or not (Path(base) / name).is_dir():
        pytest.skip(f"real-data tier: {name} not found (set TLVIZ_DATA_DIR to ../shared/datasets)")
    return Path(base) / name


def open_page(page: str, **query):
    """A new dashboard session (AppTest on app.py) on digits + pixels (``query`` adds or
    overrides URL parameters), switched to ``page``, with no exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"dataset": "digits", "backbone": "pixels", **query})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches():
    """The dashboard's in-process caches are keyed by dataset *name*, and names resolve
    under TLVIZ_HOME, which tests change: each test starts with empty caches."""
    yield
    st = sys.modules.get("streamlit")
    if st is not None:
        st.cache_data.clear()
        st.cache_resource.clear()
