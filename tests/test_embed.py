"""tlviz.embed: ONNX against torch, the disk cache, progress, and bad images mid-dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_image_folder

from tlviz import config
from tlviz.backbones import create_backbone, get_backbone_spec
from tlviz.data import load_dataset, scan_folder
from tlviz.embed import embed, embed_images, export_onnx, torch_features


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def _onnx_vs_torch(name: str, tmp_path, n: int) -> float:
    """Export without the built-in check, then compare on other inputs and another batch size."""
    import onnxruntime as ort

    spec = get_backbone_spec(name)
    net = create_backbone(name)
    path = tmp_path / f"{name}.onnx"
    export_onnx(net, spec, path, check=False)
    x = torch.randn(n, spec.channels, spec.input_size, spec.input_size,
                    generator=torch.Generator().manual_seed(1)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _rel_err(sess.run(None, {"images": x})[0], torch_features(net, x))


def test_onnx_matches_torch_tiny(tmp_path):
    assert _onnx_vs_torch("tiny_random", tmp_path, n=5) < 1e-4


@pytest.mark.slow
def test_onnx_matches_torch_mobilenet_v2(tmp_path):
    assert _onnx_vs_torch("mobilenet_v2", tmp_path, n=3) < 1e-4


def test_onnx_and_torch_backends_agree_on_a_dataset(tiny_folder):
    ds = scan_folder(tiny_folder)
    a = embed(ds, "tiny_random", backend="onnx", cache=False).features
    b = embed(ds, "tiny_random", backend="torch", cache=False).features
    assert a.shape == (24, 16) and _rel_err(a, b) < 1e-4
    with pytest.raises(ValueError, match="unknown backend"):
        embed(ds, "tiny_random", backend="tpu", cache=False)


# --------------------------------------------------------------------------- cache


def test_second_call_comes_from_the_cache(tmp_path):
    folder = make_image_folder(tmp_path / "own", seed=5501)  # images no other test embeds
    ds = scan_folder(folder)
    first = embed(ds, "tiny_random")
    assert not first.from_cache
    second = embed(scan_folder(folder), "tiny_random")  # a new scan of the same files
    assert second.from_cache and second.key == first.key
    assert np.array_equal(np.asarray(second.features), np.asarray(first.features))
    assert (config.cache_dir("embeddings") / f"{first.key}.npy").is_file()


def test_a_changed_dataset_gets_a_new_key(tiny_folder):
    first = embed(scan_folder(tiny_folder), "tiny_random")
    make_image_folder(tiny_folder, n_classes=1, per_class=1, seed=9, fmt="jpg")  # one new image
    changed = embed(scan_folder(tiny_folder), "tiny_random")
    assert changed.key != first.key and not changed.from_cache
    assert changed.features.shape == (25, 16)
    other_backbone = embed(scan_folder(tiny_folder), "pixels")
    assert other_backbone.key != changed.key


def test_a_corrupted_cache_file_is_recomputed(tiny_folder):
    ds = scan_folder(tiny_folder)
    first = embed(ds, "tiny_random")
    npy = config.cache_dir("embeddings") / f"{first.key}.npy"
    ref = np.array(first.features)
    del first
    data = bytearray(npy.read_bytes())
    data[-8:] = b"\xff" * 8
    npy.write_bytes(bytes(data))
    again = embed(ds, "tiny_random")
    assert not again.from_cache and np.allclose(again.features, ref)


def test_progress_reaches_the_total(tiny_folder):
    ds = scan_folder(tiny_folder)
    calls = []
    embed(ds, "tiny_random", batch_size=5, progress=lambda d, t, m: calls.append((d, t)),
          cache=False)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (24, 24) and len(calls) >= 2  # along the way
    calls.clear()
    embed(ds, "tiny_random", progress=lambda d, t, m: calls.append((d, t)))
    embed(ds, "tiny_random", progress=lambda d, t, m: calls.append((d, t)))  # from the cache
    assert calls[-1] == (24, 24)


# --------------------------------------------------------------------------- bad images


def test_a_corrupt_image_mid_dataset_is_one_invalid_row(tiny_folder):
    ds = scan_folder(tiny_folder)
    clean = embed(ds, "tiny_random", batch_size=4, cache=False)
    bad = 10
    with open(ds.sources[bad], "wb") as f:  # the file breaks after the scan
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    ds = ds.subset(np.arange(len(ds)))  # the list made before the file broke (fresh fingerprint)
    assert ds.sources[bad] == scan_folder(tiny_folder).skipped[0][0]  # a new scan would skip it
    emb = embed(ds, "tiny_random", batch_size=4)
    assert [i for i, _ in emb.failed] == [bad] and emb.failed[0][1]
    assert not emb.valid[bad] and emb.valid.sum() == 23
    ok = np.flatnonzero(emb.valid)
    assert np.allclose(emb.features[ok], clean.features[ok], atol=1e-5)
    X, y = emb.split(None)
    assert len(X) == 23 and bad not in emb.indices(None)
    again = embed(ds, "tiny_random", batch_size=4)  # failures are remembered in the cache
    assert again.from_cache and again.failed == emb.failed


# --------------------------------------------------------------------------- small API


def test_pixels_on_digits_and_splits():
    ds = load_dataset("digits")
    emb = embed(ds, "pixels")
    assert emb.features.shape == (1797, 1024) and emb.valid.all()
    Xtr, ytr = emb.split("train")
    assert len(Xtr) == len(ds.indices("train")) and np.array_equal(ytr, ds.labels[ds.indices("train")])
    assert np.array_equal(emb.indices("val"), ds.indices("val"))


def test_embed_images_name_or_network(tiny_folder):
    ds = scan_folder(tiny_folder)
    images = [ds.load(i) for i in range(3)]
    spec = get_backbone_spec("tiny_random")
    by_name = embed_images(images, "tiny_random", backend="torch")
    by_net = embed_images(images, create_backbone("tiny_random"), spec=spec)
    assert by_name.shape == (3, 16) and np.allclose(by_name, by_net, atol=1e-6)
    cached = embed(ds, "tiny_random").features[:3]
    assert np.allclose(by_name, cached, atol=1e-4)
