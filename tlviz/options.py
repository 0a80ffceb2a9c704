"""Typed options: augmentation and each training mode's settings, validated (no torch).

:class:`AugmentConfig` is the augmentation (used by :mod:`tlviz.augment`, which applies
it, and by :class:`tlviz.train.TrainConfig`). Each training mode reads its settings from
``TrainConfig.extra`` through its own dataclass (``Mode.options`` in :mod:`tlviz.modes`),
so a wrong value is refused with a message naming the field, and each default is written once.

>>> FineTuneOptions.from_extra({"lr": "1e-4"}, epochs=3)
FineTuneOptions(epochs=3, lr=0.0001, optimizer='rmsprop', batch_size=32, weight_decay=0.0, patience=None, n_trainable_blocks=1, augment_views=3, head_epochs=30, head_lr=0.001, hidden=0, dropout=0.6, body_backend='auto')
>>> FineTuneOptions.from_extra({"learning_rate": 0.1})
Traceback (most recent call last):
...
tlviz.errors.UnknownName: unknown option(s) for fine-tune: learning_rate; known: epochs, lr, optimizer, batch_size, weight_decay, patience, n_trainable_blocks, augment_views, head_epochs, head_lr, hidden, dropout, body_backend
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from tlviz.errors import BadInput, UnknownName

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
BODY_BACKENDS = ("auto", "onnx", "torch")

# (field, lower bound, upper bound, upper bound inclusive?)
_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("rotation_range", 0.0, 180.0, True),
    ("width_shift_range", 0.0, 1.0, True),
    ("height_shift_range", 0.0, 1.0, True),
    ("shear_range", 0.0, 90.0, False),
    ("zoom_range", 0.0, 1.0, False),
    ("brightness_range", 0.0, 1.0, True),
    ("contrast_range", 0.0, 1.0, True),
    ("cval", 0.0, 1.0, True),
)



@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation settings, Keras ``ImageDataGenerator`` style.

    Attributes:
        rotation_range: rotation angle drawn from ``[-r, r]`` degrees.
        width_shift_range: horizontal shift drawn from ``[-w, w]`` times the width.
        height_shift_range: vertical shift drawn from ``[-h, h]`` times the height.
        shear_range: shear angle drawn from ``[-s, s]`` **degrees**. Recent Keras
            (keras-preprocessing >= 1.0.6, Keras 2.2.5+) also uses degrees; Keras 2.0/2.1,
            which the book was written against, used radians.
        zoom_range: zoom factors drawn independently for x and y from ``[1-z, 1+z]``;
            as in Keras a factor > 1 zooms *out* (content shrinks).
        horizontal_flip / vertical_flip: flip with probability 0.5.
        fill_mode: how points outside the image are filled: nearest, constant,
            reflect or wrap (Keras semantics, see the module docstring).
        cval: fill value for ``constant``, a fraction of full intensity in ``[0, 1]``.
        brightness_range: brightness factor drawn from ``[1-b, 1+b]`` (Keras takes a
            ``(lo, hi)`` pair; here it is symmetric).
        contrast_range: contrast factor drawn from ``[1-c, 1+c]`` (not in Keras;
            blends with the image's mean grey like PIL / torchvision).
    """

    rotation_range: float = 0.0
    width_shift_range: float = 0.0
    height_shift_range: float = 0.0
    shear_range: float = 0.0
    zoom_range: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"
    cval: float = 0.0
    brightness_range: float = 0.0
    contrast_range: float = 0.0

    def __post_init__(self) -> None:
        for name, lo, hi, hi_incl in _RANGES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadInput(f"{name} must be a finite number, got {v!r}")
            if v < lo or v > hi or (v == hi and not hi_incl):
                bound = f"{hi}]" if hi_incl else f"{hi})"
                hint = " (Keras uses 0..255: divide by 255)" if name == "cval" else ""
                raise BadInput(f"{name} must be in [{lo}, {bound}, got {v!r}{hint}")
            object.__setattr__(self, name, float(v))
        for name in ("horizontal_flip", "vertical_flip"):
            if not isinstance(getattr(self, name), bool):
                raise BadInput(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.fill_mode not in FILL_MODES:
            raise BadInput(f"fill_mode must be one of {FILL_MODES}, got {self.fill_mode!r}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls()

    @classmethod
    def book(cls) -> AugmentConfig:
        """The generator from *Deep Learning with Python*, cats vs dogs (section 5.2.5).

        The book passes ``shear_range=0.2``, which the Keras of its day read as radians;
        we keep that intent and map it to ``degrees(0.2) ~= 11.46`` degrees (read as
        degrees, 0.2 would be an invisible shear).
        """
        return cls(
            rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
            shear_range=round(math.degrees(0.2), 2), zoom_range=0.2, horizontal_flip=True,
            fill_mode="nearest",
        )

    @property
    def is_geometric(self) -> bool:
        """True when some affine (rotation/shift/shear/zoom) randomness is enabled."""
        return any((self.rotation_range, self.width_shift_range, self.height_shift_range,
                    self.shear_range, self.zoom_range))

    @property
    def is_identity(self) -> bool:
        """True when the config never changes an image."""
        return not (self.is_geometric or self.horizontal_flip or self.vertical_flip
                    or self.brightness_range or self.contrast_range)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones defaulted."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------- mode options


def _coerce(mode: str, name: str, value: Any, kind: Any) -> Any:
    """``value`` as the field's type (int, float, str, or X | None), else a BadInput naming it."""
    args = typing.get_args(kind) if isinstance(kind, types.UnionType) else ()
    if args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    where = f"{mode} option {name}"
    if kind is str:
        if not isinstance(value, str):
            raise BadInput(f"{where} must be text, got {value!r}")
        return value
    if isinstance(value, bool):
        raise BadInput(f"{where} must be a number, got {value!r}")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise BadInput(f"{where} must be {'an integer' if kind is int else 'a number'}, "
                       f"got {value!r}") from None
    if kind is int and isinstance(value, float) and value != out:
        raise BadInput(f"{where} must be a whole number, got {value!r}")
    if kind is float and not math.isfinite(out):
        raise BadInput(f"{where} must be finite, got {value!r}")
    return out


class _Options:
    """Parsing from ``TrainConfig.extra``, checks that name the field, a JSON-friendly dict."""

    mode: ClassVar[str] = ""

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any] | None = None, epochs: int | None = None):
        """The defaults overridden by ``extra`` (``TrainConfig.extra``) and ``epochs``."""
        extra = dict(extra or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(extra) - set(names))
        if unknown:
            raise UnknownName(f"unknown option(s) for {cls.mode}: {', '.join(unknown)}; "
                              f"known: {', '.join(names)}")
        if epochs and "epochs" in names:
            extra["epochs"] = epochs
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(cls.mode, k, v, hints[k]) for k, v in extra.items()})

    def _check(self, name: str, ok: bool, what: str) -> None:
        if not ok:
            raise BadInput(f"{self.mode} option {name} must be {what}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureExtractionOptions(_Options):
    """``feature-extraction``: the head's settings are ``TrainConfig.head_params``."""

    mode: ClassVar[str] = "feature-extraction"
    augment_views: int = 2  # augmented copies of each training image (when augmenting)

    def __post_init__(self) -> None:
        self._check("augment_views", 1 <= self.augment_views <= 20, "within 1..20")


@dataclass(frozen=True)
class ModeOptions(_Options):
    """Settings every torch-trained mode shares; subclasses add their own."""

    epochs: int = 30
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 32
    weight_decay: float = 0.0
    patience: int | None = None  # early stopping on val accuracy, with best-epoch restore

    def __post_init__(self) -> None:
        self._check("epochs", self.epochs >= 1, "at least 1")
        self._check("lr", self.lr > 0, "positive")
        self._check("batch_size", self.batch_size >= 1, "at least 1")
        self._check("weight_decay", self.weight_decay >= 0, "0 or more")
        self._check("patience", self.patience is None or self.patience >= 1, "at least 1 (or None)")
        self._check("optimizer", self.optimizer.lower() in OPTIMIZERS,
                    f"one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class PixelsMLPOptions(ModeOptions):
    """``pixels-mlp``: grey pixels at ``image_size`` into Dense(hidden) + Dropout."""

    mode: ClassVar[str] = "pixels-mlp"
    image_size: int = 32
    hidden: int = 256
    dropout: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("image_size", 4 <= self.image_size <= 256, "within 4..256")
        self._check("hidden", self.hidden >= 1, "at least 1")
        self._check("dropout", 0 <= self.dropout < 1, "in [0, 1)")


@dataclass(frozen=True)
class ScratchCNNOptions(ModeOptions):
    """``scratch-cnn``: four conv blocks of ``width``.. channels, Dense(dense) + Dropout."""

    mode: ClassVar[str] = "scratch-cnn"
    image_size: int = 64
    width: int = 16
    dense: int = 128
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("image_size", 16 <= self.image_size <= 512 and self.image_size % 16 == 0,
                    "a multiple of 16 (e.g. 64 or 96)")
        self._check("width", self.width >= 1, "at least 1")
        self._check("dense", self.dense >= 1, "at least 1")
        self._check("dropout", 0 <= self.dropout < 1, "in [0, 1)")


@dataclass(frozen=True)
class FineTuneOptions(ModeOptions):
    """``fine-tune``: the head on frozen features, then the last blocks and head together."""

    mode: ClassVar[str] = "fine-tune"
    epochs: int = 10
    lr: float = 1e-5
    optimizer: str = "rmsprop"
    n_trainable_blocks: int = 1
    augment_views: int = 3
    head_epochs: int = 30
    head_lr: float = 1e-3
    hidden: int = 0
    dropout: float = 0.6
    body_backend: str = "auto"  # how the frozen blocks run: ONNX Runtime or torch

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("n_trainable_blocks", self.n_trainable_blocks >= 1, "at least 1")
        self._check("augment_views", 1 <= self.augment_views <= 20, "within 1..20")
        self._check("head_epochs", self.head_epochs >= 1, "at least 1")
        self._check("head_lr", self.head_lr > 0, "positive")
        self._check("hidden", self.hidden >= 0, "0 (linear) or more")
        self._check("dropout", 0 <= self.dropout < 1, "in [0, 1)")
        self._check("body_backend", self.body_backend in BODY_BACKENDS,
                    f"one of {', '.join(BODY_BACKENDS)}")


__all__ = ["FILL_MODES", "OPTIMIZERS", "AugmentConfig", "FeatureExtractionOptions",
           "FineTuneOptions", "ModeOptions", "PixelsMLPOptions", "ScratchCNNOptions"]
