"""Preprocessing as a value: what turns an image into a backbone's input tensor.

One :class:`Preprocess` per weights file (size, the resize before the centre crop, mean,
std, channels); backbones carry theirs, and everything that makes tensors — embedding,
fine-tuning, export, predict — uses it. numpy and PIL only (no torch).

>>> from PIL import Image
>>> p = Preprocess(size=32, grayscale=True, mean=(0.0,), std=(1.0,))
>>> p(Image.new("RGB", (50, 40))).shape
(1, 32, 32)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tlviz.errors import BadInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Shorter side to ``resize`` (default: ``size``), centre crop ``size``, scale to [0, 1],
    ``(x - mean) / std``; grey or RGB.

    ``resize`` > ``size`` is the weights' own border crop (torchvision's IMAGENET1K_V1:
    resize 256, crop 224), made for photos at ImageNet resolution. An image whose shorter
    side is below ``size`` (a thumbnail that must be upscaled anyway) keeps its whole frame:
    its object fills it, and the border crop would drop a quarter of an already tiny
    picture (measured on cifar10-small's 32-px images: 3–4 points lower with the crop).
    """

    size: int
    resize: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False

    def __post_init__(self) -> None:
        if self.size < 1 or (self.resize is not None and self.resize < self.size):
            raise BadInput(f"bad preprocessing sizes: resize {self.resize}, crop {self.size}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise BadInput(f"mean/std need {self.channels} value(s)")

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def load_size(self) -> int:
        """The smallest decode size that loses nothing (JPEGs may decode at reduced scale)."""
        return self.resize or self.size

    @property
    def key(self) -> str:
        """Part of every cache key: features change when any of this changes."""
        resize = f"-r{self.resize}-thumbs-whole" if self.resize else ""
        return f"{self.size}-{'L' if self.grayscale else 'RGB'}-{self.mean}-{self.std}-crop{resize}"

    def pixels(self, image: Image.Image) -> np.ndarray:
        """uint8 (size, size[, C]): shorter side to ``resize``, centre crop — resampling only
        the cropped box (the same pixels within one grey level as resize-then-crop, and
        twice as fast)."""
        im = image.convert("L" if self.grayscale else "RGB")
        w, h = im.size
        s = self.size
        r = self.resize if self.resize and min(w, h) >= s else s
        # torchvision's geometry: the longer side truncated, the crop offset rounded
        nw, nh = (r, int(r * h / w)) if w <= h else (int(r * w / h), r)
        left, top = int(round((nw - s) / 2.0)), int(round((nh - s) / 2.0))
        box = (left * w / nw, top * h / nh, (left + s) * w / nw, (top + s) * h / nh)
        im = im.resize((s, s), Image.BILINEAR, box=box,
                       reducing_gap=None if max(w, h) < 3 * r else 2.0)
        return np.asarray(im)

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, C) -> float32 (B, C, H, W), normalised."""
        std = np.asarray(self.std, np.float32)
        scale = (1.0 / (255.0 * std))[:, None, None]
        shift = (np.asarray(self.mean, np.float32) / std)[:, None, None]
        out = np.empty((raw.shape[0], raw.shape[3], raw.shape[1], raw.shape[2]), np.float32)
        np.multiply(raw.transpose(0, 3, 1, 2), scale, out=out)
        out -= shift
        return out

    def __call__(self, image: Image.Image) -> np.ndarray:
        """One image -> normalised float32 (C, H, W)."""
        s = self.size
        return self.normalise(self.pixels(image).reshape(1, s, s, self.channels))[0]

    def to_dict(self) -> dict:
        return {"size": self.size, "resize": self.resize, "mean": list(self.mean),
                "std": list(self.std), "grayscale": self.grayscale}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(int(d["size"]), d.get("resize"), tuple(d["mean"]), tuple(d["std"]),
                   bool(d.get("grayscale", False)))


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess"]
