"""The torch side of backbones: :class:`FeatureNet` and the builders the registry names.

Imported on first use (building a network), never at ``import tlviz`` or for a cache hit.
Every backbone is a :class:`FeatureNet`: a list of *stages* (consecutive layers at one
spatial resolution, like VGG16's five blocks) followed by global average pooling, so
``net(x)`` gives the pooled penultimate features and ``net.split(n)`` separates the
frozen part from the last ``n`` stages for fine-tuning.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from tlviz.errors import BadInput, WeightsUnavailable


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
            raise BadInput("this backbone has no ImageNet classifier attached")
        return self.classifier(self(x))

    def split(self, n_trainable: int) -> tuple[nn.Module, nn.Module]:
        """(frozen body, trainable tail) with the last ``n_trainable`` stages in the tail."""
        n = len(self.stages)
        if not 0 <= n_trainable <= n:
            raise BadInput(f"n_trainable must be within 0..{n} for this backbone")
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


def load_state(path: Path) -> dict:
    """A weights file as a state dict: tensors only (``weights_only``), never code."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- builders


def pixels(pretrained: bool) -> FeatureNet:
    return FeatureNet([], 32 * 32, pool=False)


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


def tiny_random(pretrained: bool) -> FeatureNet:
    return tiny_cnn()


def mobilenet_v2(weights: Path | None) -> FeatureNet:
    from torchvision.models import mobilenet_v2 as make

    m = make()
    if weights is not None:
        m.load_state_dict(load_state(weights), strict=True)
    return FeatureNet(group_stages(list(m.features), 224), 1280, classifier=m.classifier)


def efficientnet_lite(k: int, size: int, weights: Path | None) -> FeatureNet:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise WeightsUnavailable("pip install efficientnet-lite-pytorch (the model code)") from e
    m = EfficientNet.from_name(f"efficientnet-lite{k}")
    if weights is not None:
        m.load_state_dict(load_state(weights), strict=True)
    stem = nn.Sequential(m._conv_stem, m._bn0, m._swish)
    head = nn.Sequential(m._conv_head, m._bn1, m._swish)
    stages = group_stages([stem, *m._blocks, head], size)
    classifier = nn.Sequential(m._dropout, m._fc)
    return FeatureNet(stages, m._fc.in_features, classifier=classifier)


def _resnet_layers(m):
    return [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3, m.layer4]


ZOO_PARTS = {  # name -> (layers, post, classifier) of a torchvision model
    "resnet18": (_resnet_layers, None, lambda m: m.fc),
    "resnet50": (_resnet_layers, None, lambda m: m.fc),
    "vgg16": (lambda m: list(m.features), None, None),
    "efficientnet_b0": (lambda m: list(m.features), None, lambda m: m.classifier),
    "mobilenet_v3_large": (lambda m: list(m.features), None, None),
    "convnext_tiny": (lambda m: list(m.features), lambda m: m.classifier[0], lambda m: m.classifier[2]),
}


def torchvision_zoo(name: str, dim: int, size: int, weights: Path | None) -> FeatureNet:
    from torchvision.models import get_model

    m = get_model(name, weights=None)
    if weights is not None:
        m.load_state_dict(load_state(weights), strict=True)
    layers_of, post_of, classifier_of = ZOO_PARTS[name]
    return FeatureNet(group_stages(layers_of(m), size), dim, post=post_of(m) if post_of else None,
                      classifier=classifier_of(m) if classifier_of else None)


def download(url: str, path: Path, what: str, help_text: str) -> Path:
    """Fetch a weights file (online only); offline, :class:`WeightsUnavailable` with help."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except Exception as e:  # noqa: BLE001 - any network failure means: place the file by hand
        raise WeightsUnavailable(f"{what}: could not download ({type(e).__name__}); {help_text}") from e
    return path


def torch_hub_dir() -> str:
    return os.fspath(torch.hub.get_dir())


__all__ = ["FeatureNet", "group_stages", "load_state", "tiny_cnn"]
