"""The Ray engine: the same features as the local engine, one cache format for both.

Runs on a local 2-CPU Ray cluster started once per session (``ray_cluster``); skipped,
with the reason shown, when Ray is not installed (``pip install -r requirements-scale.txt``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image_folder

from tlviz import cli
from tlviz.data import scan_folder
from tlviz.embed import cache_paths, embed, is_cached, read_shards

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-scale.txt)")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for every test that needs one (starting one takes ~10 s)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_features_equal_local_and_serve_every_reader(ray_cluster, tmp_path):
    root = make_image_folder(tmp_path / "raytiny", n_classes=3, per_class=15, seed=3)
    ds = scan_folder(root)
    assert ds.fingerprint  # then one image goes missing: a failure on both engines
    (root / "class1" / "img004.png").unlink()
    emb_r = embed(ds, "tiny_random", engine="ray", batch_size=8)
    assert not emb_r.from_cache
    npy, _, shards = cache_paths(emb_r.key)
    assert not npy.exists() and is_cached(ds, "tiny_random")

    import pyarrow.parquet as pq

    schema = pq.read_schema(next(shards.glob("*.parquet")))
    assert schema.names == ["id", "path", "label", "split", "embedding", "error"]
    assert schema.field("embedding").type.extension_name == "arrow.fixed_shape_tensor"
    assert len(list(shards.glob("*.parquet"))) >= 1

    emb_l = embed(ds, "tiny_random", cache=False)  # the local engine, computed afresh
    assert emb_r.features.shape == emb_l.features.shape == (len(ds), 16)
    np.testing.assert_allclose(emb_r.features, emb_l.features, atol=1e-4)
    assert emb_r.failed == emb_l.failed and (emb_r.valid == emb_l.valid).all()

    hit = embed(ds, "tiny_random")  # the dashboard's and the API's call: a cache hit
    assert hit.from_cache
    np.testing.assert_array_equal(np.asarray(hit.features), emb_r.features)
    feats, meta = read_shards(shards, len(ds))
    assert meta["engine"] == "ray" and len(meta["failed"]) == 1


def test_local_cache_serves_the_ray_engine_and_the_cli_runs_ray(ray_cluster, tmp_path, capsys):
    ds = scan_folder(make_image_folder(tmp_path / "localfirst", per_class=6, seed=5))
    local = embed(ds, "tiny_random")
    again = embed(ds, "tiny_random", engine="ray")
    assert again.from_cache and not cache_paths(local.key)[2].exists()
    np.testing.assert_array_equal(np.asarray(again.features), np.asarray(local.features))

    other = make_image_folder(tmp_path / "clitiny", per_class=5, seed=9)
    assert cli.main(["embed", "--dataset", str(other), "--backbone", "tiny_random",
                     "--engine", "ray", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["from_cache"] is False and out["engine"] == "ray" and out["images"] == 10
    assert is_cached(scan_folder(other), "tiny_random")
    assert cli.main(["embed", "--dataset", str(other), "--backbone", "tiny_random", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["from_cache"] is True and out["engine"] == "local"  # the local CLI reads Ray's shards
