"""Tests for tlviz.augment (tiny generated images, CPU only)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tlviz.augment import (
    AugmentConfig,
    apply_params,
    augment_batch,
    build_transform,
    preview,
    random_params,
    to_code,
)

S = 32


def _tensor() -> torch.Tensor:
    """(1, 3, S, S): R = horizontal ramp, G = vertical ramp, B = bright top-right square."""
    r = torch.linspace(0.1, 0.9, S)
    x = torch.zeros(1, 3, S, S)
    x[0, 0] = r.view(1, S).expand(S, S)
    x[0, 1] = r.view(S, 1).expand(S, S)
    x[0, 2, :8, -8:] = 1.0
    return x


def _pil() -> Image.Image:
    arr = (_tensor()[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def _shift_half(fill_mode: str, cval: float = 0.0) -> torch.Tensor:
    """Content shifted right by exactly half the width."""
    return apply_params(_tensor(), {"tx": torch.tensor([0.5])}, fill_mode, cval)


# ---------------------------------------------------------------- identity


def test_identity_is_exact() -> None:
    cfg = AugmentConfig.none()
    assert cfg.is_identity and not AugmentConfig.book().is_identity
    img = _pil()
    out = build_transform(cfg)(img, torch.Generator().manual_seed(1))
    assert out.mode == "RGB" and out.size == img.size
    assert np.array_equal(_arr(out), _arr(img))
    x = _tensor()
    assert torch.equal(augment_batch(x, cfg), x)
    assert all(np.array_equal(_arr(p), _arr(img)) for p in preview(img, cfg, n=3))


def test_fill_mode_alone_is_still_identity() -> None:
    assert AugmentConfig(fill_mode="wrap", cval=0.5).is_identity


def test_size_resizes() -> None:
    out = build_transform(AugmentConfig.book(), size=20)(_pil(), torch.Generator().manual_seed(0))
    assert out.size == (20, 20) and out.mode == "RGB"
    assert build_transform(AugmentConfig(), size=16)(_pil()).size == (16, 16)


# ---------------------------------------------------------------- geometry


def test_horizontal_flip_half_the_time() -> None:
    img = _pil()
    mirrored = _arr(img)[:, ::-1]
    t = build_transform(AugmentConfig(horizontal_flip=True))
    flipped = 0
    for seed in range(20):
        out = _arr(t(img, torch.Generator().manual_seed(seed)))
        is_flip = np.array_equal(out, mirrored)
        assert is_flip or np.array_equal(out, _arr(img))
        flipped += is_flip
    assert 0 < flipped < 20


def test_vertical_flip_param_is_exact() -> None:
    x = _tensor()
    assert torch.equal(apply_params(x, {"flip_v": torch.tensor([1.0])}), x.flip(-2))


def test_rotation_range_changes_pixels() -> None:
    img = _pil()
    t = build_transform(AugmentConfig(rotation_range=90))
    outs = [_arr(t(img, torch.Generator().manual_seed(s))) for s in range(3)]
    assert all(not np.array_equal(o, _arr(img)) for o in outs)


def test_rotation_90_is_counter_clockwise() -> None:
    x = _tensor()
    out = apply_params(x, {"theta": torch.tensor([90.0])}, "constant")
    assert torch.allclose(out, torch.rot90(x, 1, (-2, -1)), atol=1e-4)
    assert out[0, 2, :8, :8].min() > 0.99  # square went from top-right to top-left


def test_fill_constant_uses_cval() -> None:
    out = _shift_half("constant", cval=0.25)
    assert torch.allclose(out[0, :, :, :S // 2], torch.full((3, S, S // 2), 0.25), atol=1e-4)
    assert torch.allclose(out[0, :, :, S // 2:], _tensor()[0, :, :, : S // 2], atol=1e-4)


def test_fill_nearest_repeats_edge() -> None:
    out, x = _shift_half("nearest"), _tensor()
    left = out[0, :, :, : S // 2]
    assert torch.allclose(left, x[0, :, :, :1].expand_as(left), atol=1e-4)


def test_fill_reflect_mirrors() -> None:
    out, x = _shift_half("reflect"), _tensor()
    assert torch.allclose(out[0, :, :, : S // 2], x[0, :, :, : S // 2].flip(-1), atol=1e-4)


def test_fill_wrap_brings_opposite_side() -> None:
    out, x = _shift_half("wrap"), _tensor()
    assert torch.allclose(out[0], torch.roll(x[0], S // 2, dims=-1), atol=1e-4)
    assert out[0, 2, :8, 8:16].min() > 0.99  # square wrapped in from the right edge


def test_fill_modes_differ_with_config_shifts() -> None:
    img = _pil()
    corners = {}
    for mode in ("constant", "nearest", "wrap"):
        cfg = AugmentConfig(width_shift_range=0.5, height_shift_range=0.5, fill_mode=mode)
        corners[mode] = _arr(preview(img, cfg, n=4, seed=3)[0])[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert not np.array_equal(corners["constant"], corners["nearest"])
    assert not np.array_equal(corners["nearest"], corners["wrap"])


def test_zoom_out_shrinks_content_square() -> None:
    x = _tensor()
    out = apply_params(x, {"zx": torch.tensor([2.0]), "zy": torch.tensor([2.0])}, "constant")
    bright = (out[0, 2] > 0.5).sum().item()
    assert 0 < bright < (x[0, 2] > 0.5).sum().item()


# ---------------------------------------------------------------- randomness


def test_seed_determinism() -> None:
    cfg, img = AugmentConfig.book(), _pil()
    t = build_transform(cfg)
    a = _arr(t(img, torch.Generator().manual_seed(7)))
    b = _arr(t(img, torch.Generator().manual_seed(7)))
    c = _arr(t(img, torch.Generator().manual_seed(8)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    p1, p2, p3 = (preview(img, cfg, n=4, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(_arr(u), _arr(v)) for u, v in zip(p1, p2))
    assert not np.array_equal(_arr(p1[0]), _arr(p3[0]))
    assert len({_arr(p).tobytes() for p in p1}) == 4  # the n previews differ


def test_random_params_ranges() -> None:
    cfg = AugmentConfig(rotation_range=30, zoom_range=0.1, brightness_range=0.2)
    p = random_params(cfg, 500, torch.Generator().manual_seed(0))
    assert p["theta"].abs().max() <= 30 and p["theta"].abs().max() > 20
    assert ((p["zx"] >= 0.9) & (p["zx"] <= 1.1)).all() and not torch.equal(p["zx"], p["zy"])
    assert (p["tx"] == 0).all() and (p["flip_h"] == 0).all()


def test_augment_batch_shape_dtype_range() -> None:
    x = torch.rand(5, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    cfg = AugmentConfig(rotation_range=40, width_shift_range=0.2, shear_range=10,
                        zoom_range=0.2, horizontal_flip=True, vertical_flip=True,
                        fill_mode="reflect", brightness_range=0.5, contrast_range=0.5)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    x64 = x.double()
    assert augment_batch(x64, cfg, torch.Generator().manual_seed(0)).dtype == torch.float64
    with pytest.raises(ValueError):
        augment_batch((x * 255).to(torch.uint8), cfg)


def test_brightness_scales_pixels() -> None:
    x = torch.full((1, 3, 4, 4), 0.4)
    out = apply_params(x, {"brightness": torch.tensor([1.5])})
    assert torch.allclose(out, torch.full_like(x, 0.6))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("kwargs", [
    {"rotation_range": -1}, {"width_shift_range": -0.1}, {"zoom_range": 1.0},
    {"zoom_range": 1.5}, {"shear_range": 90}, {"fill_mode": "mirror"}, {"cval": 255},
    {"brightness_range": float("nan")}, {"horizontal_flip": "yes"}, {"rotation_range": "40"},
])
def test_validation_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AugmentConfig(**kwargs)


def test_book_preset() -> None:
    b = AugmentConfig.book()
    assert (b.rotation_range, b.width_shift_range, b.height_shift_range, b.zoom_range) == (
        40, 0.2, 0.2, 0.2)
    assert b.horizontal_flip and not b.vertical_flip and b.fill_mode == "nearest"
    assert math.isclose(b.shear_range, math.degrees(0.2), abs_tol=0.01)


def test_dict_round_trip() -> None:
    cfg = AugmentConfig(rotation_range=10, vertical_flip=True, fill_mode="wrap", cval=0.5)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert AugmentConfig.from_dict(d) == cfg
    assert AugmentConfig.from_dict({**d, "future_key": 1}) == cfg
    assert AugmentConfig.from_dict({"zoom_range": 0.3}) == AugmentConfig(zoom_range=0.3)


# ---------------------------------------------------------------- code


@pytest.mark.parametrize("cfg", [
    AugmentConfig.none(), AugmentConfig.book(),
    AugmentConfig(width_shift_range=0.1, fill_mode="constant", cval=1.0, vertical_flip=True,
                  brightness_range=0.2, contrast_range=0.3),
])
def test_to_code_execs(cfg: AugmentConfig) -> None:
    code = to_code(cfg, size=16)
    ns: dict = {}
    exec(code, ns)  # noqa: S102 - the point of the test
    out = ns["transform"](_pil())
    assert isinstance(out, Image.Image) and out.size == (16, 16)
    if cfg.fill_mode == "constant":
        assert "fill=255" in code
    elif not cfg.is_identity:
        assert "approximated" in code and "RandomHorizontalFlip" in code
