"""Training modes: an explicit registry, and the types a mode is written against.

A mode is a function ``run(ctx: Context) -> ModeOutput`` plus a loader that rebuilds its
predictor from the ledger, ``load(run: dict, weights: dict) -> Predictor``. The built-in
modes are listed here by ``"module:function"`` and imported on first use (torch loads only
when a torch mode runs); :func:`register_mode` adds others, as callables or as names.
No module registers anything by being imported, and nothing outside this registry
branches on a mode's name.

>>> sorted(MODES)
['feature-extraction', 'fine-tune', 'pixels-mlp', 'scratch-cnn']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlviz.errors import BadInput, Cancelled, UnknownName
from tlviz.options import (
    FeatureExtractionOptions,
    FineTuneOptions,
    PixelsMLPOptions,
    ScratchCNNOptions,
)

if TYPE_CHECKING:
    import numpy as np

    from tlviz.data import ImageDataset
    from tlviz.runs import Ledger

Progress = Callable[[int, int, str], None]
EpochCallback = Callable[[dict], None]
StopCheck = Callable[[], bool]


@dataclass
class Context:
    """What a mode gets: the run's config, the resolved dataset and the callbacks."""

    cfg: Any  # tlviz.train.TrainConfig
    dataset: ImageDataset
    progress: Progress | None = None
    on_epoch: EpochCallback | None = None
    should_stop: StopCheck | None = None
    ledger: Ledger | None = None
    run_id: int | None = None

    def epoch_done(self, rec: dict) -> None:
        if self.ledger is not None and self.run_id is not None:
            self.ledger.log_epoch(self.run_id, rec["epoch"],
                                  **{k: v for k, v in rec.items() if k != "epoch"})
        if self.on_epoch:
            self.on_epoch(rec)
        self.check_stop()

    def check_stop(self) -> None:
        if self.should_stop and self.should_stop():
            raise Cancelled("cancelled")


@dataclass
class ModeOutput:
    """What a mode returns: predictions per split, history, weights, a predictor."""

    predictions: dict  # split -> (indices, y_pred)
    history: list[dict]
    weights: dict[str, np.ndarray] | None
    timings: dict
    model: object = None
    chosen: dict = field(default_factory=dict)  # hyper-parameters chosen inside the train split
    probabilities: dict = field(default_factory=dict)  # split -> (n, classes): for calibration


def _resolve(ref: str | Callable) -> Callable:
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Mode:
    """A registered training mode: how to run it and how to reload its predictor."""

    name: str
    run: str | Callable[[Context], ModeOutput]
    load: str | Callable[[dict, dict], Any]
    help: str = ""
    options: type = FeatureExtractionOptions  # its settings, read from TrainConfig.extra

    def runner(self) -> Callable[[Context], ModeOutput]:
        return _resolve(self.run)

    def loader(self) -> Callable[[dict, dict], Any]:
        return _resolve(self.load)


MODES: dict[str, Mode] = {}


def register_mode(mode: Mode) -> Mode:
    if mode.name in MODES:
        raise BadInput(f"mode {mode.name!r} is already registered")
    MODES[mode.name] = mode
    return mode


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise UnknownName(f"unknown mode {name!r}; use one of {', '.join(MODES)}") from None


for _mode in (
        Mode("feature-extraction", "tlviz.train:feature_extraction", "tlviz.train:load_feature_predictor",
             "frozen backbone -> cached features -> a head (kNN, logistic, MLP)"),
        Mode("pixels-mlp", "tlviz.finetune:train_pixels_mlp", "tlviz.finetune:load_predictor",
             "raw pixels -> a small MLP (the baseline)", PixelsMLPOptions),
        Mode("scratch-cnn", "tlviz.finetune:train_scratch_cnn", "tlviz.finetune:load_predictor",
             "a small CNN trained from scratch on the images", ScratchCNNOptions),
        Mode("fine-tune", "tlviz.finetune:fine_tune", "tlviz.finetune:load_predictor",
             "the backbone's last blocks and a head trained together", FineTuneOptions)):
    register_mode(_mode)


__all__ = ["MODES", "Context", "Mode", "ModeOutput", "get_mode", "register_mode"]
