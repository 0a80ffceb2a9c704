"""Data augmentation with Keras ``ImageDataGenerator`` semantics, on torch.

:class:`AugmentConfig` mirrors the generator used in Chollet's *Deep Learning with
Python* cats-vs-dogs chapter. The geometry (rotation, shift, shear, zoom) is one affine
map per image applied with :func:`torch.nn.functional.grid_sample`, which lets us honour
Keras' ``fill_mode`` exactly (torchvision's ``RandomAffine`` only fills with a constant):

* ``nearest``  -> ``aaaa|abcd|dddd`` (``padding_mode="border"``)
* ``reflect``  -> ``dcba|abcd|dcba`` (``padding_mode="reflection"``)
* ``wrap``     -> ``abcd|abcd|abcd`` (sample coordinates taken modulo the size)
* ``constant`` -> ``kkkk|abcd|kkkk`` with ``k = cval``

Images are float tensors in ``[0, 1]``; ``cval`` is in the same units. Everything is
seedable through a :class:`torch.Generator`. Interpolation is bilinear (Keras' default
``interpolation_order=1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from tlviz.errors import BadInput
from tlviz.options import FILL_MODES, AugmentConfig

PARAM_KEYS = (
    "theta", "tx", "ty", "shear", "zx", "zy", "flip_h", "flip_v", "brightness", "contrast",
)
_GRAY = (0.299, 0.587, 0.114)

# --------------------------------------------------------------------------- batched


def random_params(config: AugmentConfig, n: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Draw per-image transform parameters (each a float32 tensor of shape ``(n,)``).

    Keys (see :data:`PARAM_KEYS`): ``theta`` (degrees, counter-clockwise), ``tx``/``ty``
    (content shift as a fraction of width/height, positive = right/down), ``shear``
    (degrees), ``zx``/``zy`` (Keras zoom, > 1 = zoom out), ``flip_h``/``flip_v`` (0/1),
    ``brightness``/``contrast`` (multiplicative factors). A fixed block of uniforms is
    always drawn, so a seed yields the same "sample" whatever the config.
    """
    gen_device = generator.device if generator is not None else device
    u = torch.rand((n, len(PARAM_KEYS)), generator=generator, device=gen_device)
    u = u.to(device if device is not None else u.device)
    s = 2 * u - 1  # symmetric in [-1, 1)
    c = config
    return {
        "theta": s[:, 0] * c.rotation_range,
        "tx": s[:, 1] * c.width_shift_range,
        "ty": s[:, 2] * c.height_shift_range,
        "shear": s[:, 3] * c.shear_range,
        "zx": 1 + s[:, 4] * c.zoom_range,
        "zy": 1 + s[:, 5] * c.zoom_range,
        "flip_h": (u[:, 6] < 0.5).float() if c.horizontal_flip else torch.zeros_like(u[:, 6]),
        "flip_v": (u[:, 7] < 0.5).float() if c.vertical_flip else torch.zeros_like(u[:, 7]),
        "brightness": 1 + s[:, 8] * c.brightness_range,
        "contrast": 1 + s[:, 9] * c.contrast_range,
    }


def _affine_theta(p: Mapping[str, torch.Tensor], h: int, w: int) -> torch.Tensor:
    """``(N, 2, 3)`` output->input map in grid_sample's normalised coordinates."""
    th, sh = torch.deg2rad(p["theta"]), torch.deg2rad(p["shear"])
    cos, sin = torch.cos(th), torch.sin(th)
    one, zero = torch.ones_like(th), torch.zeros_like(th)
    # Pixel coordinates (x right, y down) centred on the image; lookup = R @ Sh @ Z.
    rot = torch.stack([cos, -sin, sin, cos], -1).view(-1, 2, 2)
    shear = torch.stack([torch.cos(sh), zero, -torch.sin(sh), one], -1).view(-1, 2, 2)
    zoom = torch.diag_embed(torch.stack([p["zx"], p["zy"]], -1))
    lin = rot @ shear @ zoom
    shift = torch.stack([p["tx"] * w, p["ty"] * h], -1)
    trans = -(lin @ shift.unsqueeze(-1)).squeeze(-1)  # content moves by +shift
    half = torch.tensor([w / 2, h / 2], dtype=lin.dtype, device=lin.device)
    lin_n = lin * half[None, None, :] / half[None, :, None]
    return torch.cat([lin_n, (trans / half).unsqueeze(-1)], -1)


def _sample(x: torch.Tensor, theta: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    n, c, h, w = x.shape
    grid = F.affine_grid(theta.to(x.dtype), [n, c, h, w], align_corners=False)
    kw = dict(mode="bilinear", align_corners=False)
    if fill_mode == "nearest":
        return F.grid_sample(x, grid, padding_mode="border", **kw)
    if fill_mode == "reflect":
        return F.grid_sample(x, grid, padding_mode="reflection", **kw)
    if fill_mode == "wrap":
        size = torch.tensor([w, h], dtype=grid.dtype, device=grid.device)
        pix = torch.remainder((grid + 1) * size / 2 - 0.5, size)  # pixel index, periodic
        grid = (2 * (pix + 1) + 1) / (size + 2) - 1  # into the 1-pixel circular padding
        xp = F.pad(x, (1, 1, 1, 1), mode="circular")
        return F.grid_sample(xp, grid, padding_mode="border", **kw)
    # constant: sample with zeros outside plus a coverage mask, then blend in cval
    out = F.grid_sample(x, grid, padding_mode="zeros", **kw)
    if cval == 0:
        return out
    mask = F.grid_sample(torch.ones_like(x[:, :1]), grid, padding_mode="zeros", **kw)
    return out + (1 - mask) * cval


def apply_params(x: torch.Tensor, params: Mapping[str, torch.Tensor],
                 fill_mode: str = "nearest", cval: float = 0.0) -> torch.Tensor:
    """Apply explicit per-image parameters (see :func:`random_params`) to ``x``.

    Missing keys mean "no change". Order as in Keras: affine, flips, brightness, contrast.
    Photometric changes clamp to ``[0, 1]``.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise BadInput(f"expected a float (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    if fill_mode not in FILL_MODES:
        raise BadInput(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    n, c, h, w = x.shape
    ident = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
             "flip_h": 0.0, "flip_v": 0.0, "brightness": 1.0, "contrast": 1.0}
    p = {k: torch.as_tensor(params.get(k, v), dtype=torch.float32, device=x.device).expand(n)
         for k, v in ident.items()}
    if any(bool((p[k] != ident[k]).any()) for k in ("theta", "tx", "ty", "shear", "zx", "zy")):
        x = _sample(x, _affine_theta(p, h, w), fill_mode, cval)
    if bool(p["flip_h"].any()):
        x = torch.where(p["flip_h"].view(n, 1, 1, 1) > 0.5, x.flip(-1), x)
    if bool(p["flip_v"].any()):
        x = torch.where(p["flip_v"].view(n, 1, 1, 1) > 0.5, x.flip(-2), x)
    b, k = p["brightness"].to(x.dtype).view(n, 1, 1, 1), p["contrast"].to(x.dtype).view(n, 1, 1, 1)
    if bool((b != 1).any()) or bool((k != 1).any()):
        x = x * b
        if c == 3:
            gray = (x * torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1)
        else:
            gray = x.mean(1)
        mean = gray.mean((-2, -1)).view(n, 1, 1, 1)
        x = (k * x + (1 - k) * mean).clamp(0, 1)
    return x


def augment_batch(x: torch.Tensor, config: AugmentConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly augment a float ``(N, C, H, W)`` batch in ``[0, 1]``, fully vectorised.

    Returns ``x`` itself when ``config.is_identity``; otherwise a new tensor of the same
    shape, dtype and device. Use a generator for reproducible results.
    """
    if config.is_identity:
        return x
    params = random_params(config, x.shape[0], generator, x.device)
    return apply_params(x, params, config.fill_mode, config.cval)


# --------------------------------------------------------------------------- PIL


class Augmenter:
    """PIL RGB -> augmented PIL RGB; ``augmenter(img, generator=None)``."""

    def __init__(self, config: AugmentConfig, size: int | None = None) -> None:
        self.config, self.size = config, size
        steps: list[Callable[..., Any]] = [v2.Resize((size, size), antialias=True)] if size else []
        self._prep = v2.Compose(steps) if steps else None
        self._to_tensor = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        img = img.convert("RGB")
        if self._prep is not None:
            img = self._prep(img)
        if self.config.is_identity:
            return img
        x = augment_batch(self._to_tensor(img).unsqueeze(0), self.config, generator)
        return _to_pil(x[0])

    def __repr__(self) -> str:
        return f"Augmenter({self.config!r}, size={self.size!r})"


def _to_pil(x: torch.Tensor) -> Image.Image:
    return TF.to_pil_image((x * 255).round().clamp(0, 255).to(torch.uint8).cpu())


def build_transform(config: AugmentConfig, size: int | None = None) -> Augmenter:
    """A callable ``f(img, generator=None) -> img`` applying ``config`` to PIL images.

    With ``size`` the image is first resized to ``size x size`` (like Keras'
    ``target_size``). An identity config returns the (resized) RGB image untouched.
    """
    return Augmenter(config, size)


def preview(image: Image.Image, config: AugmentConfig, n: int = 8, seed: int = 0,
            size: int | None = None) -> list[Image.Image]:
    """``n`` augmented versions of ``image``, deterministic for a given ``seed``."""
    aug = Augmenter(config, size)
    img = image.convert("RGB")
    if aug._prep is not None:
        img = aug._prep(img)
    if config.is_identity:
        return [img.copy() for _ in range(n)]
    x = aug._to_tensor(img).unsqueeze(0).expand(n, -1, -1, -1)
    out = augment_batch(x, config, torch.Generator().manual_seed(seed))
    return [_to_pil(t) for t in out]


# --------------------------------------------------------------------------- code


def _num(v: float) -> str:
    return repr(round(v, 4))


def to_code(config: AugmentConfig, size: int | None = None) -> str:
    """Equivalent torchvision ``v2.Compose`` snippet (defines ``transform``).

    Keras zoom ``z`` becomes ``scale=(1/(1+z), 1/(1-z))`` with one factor for both axes;
    fill modes other than constant are approximated (v2 only fills with a constant).
    """
    c = config
    lines: list[str] = []
    if size:
        lines.append(f"v2.Resize(({size}, {size}), antialias=True),")
    if c.is_geometric:
        args = [f"degrees={_num(c.rotation_range)}"]
        if c.width_shift_range or c.height_shift_range:
            args.append(f"translate=({_num(c.width_shift_range)}, {_num(c.height_shift_range)})")
        if c.zoom_range:
            z = c.zoom_range
            args.append(f"scale=({_num(1 / (1 + z))}, {_num(1 / (1 - z))})")
        if c.shear_range:
            args.append(f"shear={_num(c.shear_range)}")
        args.append("interpolation=v2.InterpolationMode.BILINEAR")
        fill = round(c.cval * 255) if c.fill_mode == "constant" else 0
        args.append(f"fill={fill}")
        note = ("# fill = cval * 255 for PIL/uint8 input (use cval for float tensors)"
                if c.fill_mode == "constant" else
                f"# fill_mode={c.fill_mode!r} approximated: v2 only fills with a constant")
        lines.append(note)
        lines.append(f"v2.RandomAffine({', '.join(args)}),")
    if c.horizontal_flip:
        lines.append("v2.RandomHorizontalFlip(p=0.5),")
    if c.vertical_flip:
        lines.append("v2.RandomVerticalFlip(p=0.5),")
    if c.brightness_range or c.contrast_range:
        lines.append(f"v2.ColorJitter(brightness={_num(c.brightness_range)}, "
                     f"contrast={_num(c.contrast_range)}),")
    if not any(not ln.startswith("#") for ln in lines):
        lines.append("v2.Identity(),")
    body = "\n".join(f"    {ln}" for ln in lines)
    return f"from torchvision.transforms import v2\n\ntransform = v2.Compose([\n{body}\n])\n"
