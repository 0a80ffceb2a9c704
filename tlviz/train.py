"""Training runs: one config in, one ledger entry out.

``train(TrainConfig(...))`` resolves the dataset, runs the chosen *mode* and records
the run (config, per-epoch history, metrics, confusion matrix, timings, weights) in the
ledger. Modes are registered in :mod:`tlviz.modes`; ``feature-extraction`` (frozen
backbone + head on cached features) lives here.

>>> r = train(TrainConfig(dataset="digits", backbone="pixels", head="knn"), ledger=None)
>>> r.val_accuracy > 0.9
True
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tlviz.backbones import get_backbone_spec
from tlviz.calibration import ece_from_bins, reliability
from tlviz.data import ImageDataset, load_dataset
from tlviz.embed import embed, embed_images
from tlviz.errors import BadInput, Cancelled
from tlviz.heads import create_head, head_from_state
from tlviz.metrics import accuracy, confusion_matrix, wilson_interval
from tlviz.modes import (
    MODES,
    Context,
    EpochCallback,
    ModeOutput,
    Progress,
    StopCheck,
    get_mode,
    register_mode,
)
from tlviz.options import AugmentConfig
from tlviz.predictors import Predictor
from tlviz.runs import Ledger


@dataclass
class TrainConfig:
    """Everything that defines a run. Stored whole in the ledger."""

    dataset: str = "digits"
    backbone: str = "mobilenet_v2"
    head: str = "logistic"
    head_params: dict = field(default_factory=dict)
    mode: str = "feature-extraction"
    augment: AugmentConfig | None = None  # None: the mode's default; AugmentConfig(): off
    epochs: int | None = None
    seed: int = 0
    name: str | None = None
    extra: dict = field(default_factory=dict)  # the mode's options (tlviz.options.MODE_OPTIONS)
    exclude: list = field(default_factory=list)  # training images left out: a what-if run

    def __post_init__(self) -> None:
        try:
            self.exclude = sorted({int(i) for i in self.exclude or ()})
        except (TypeError, ValueError):
            raise BadInput("exclude must be a list of image numbers") from None
        if isinstance(self.augment, Mapping):  # a stored config, JSON, a page's settings
            self.augment = AugmentConfig.from_dict(self.augment)
        elif self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise BadInput(f"augment must be an AugmentConfig, a dict or None, "
                           f"got {type(self.augment).__name__}")

    def options(self):
        """The mode's typed options (defaults overridden by ``extra`` and ``epochs``)."""
        return get_mode(self.mode).options.from_extra(self.extra, self.epochs)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    run_id: int | None
    val_accuracy: float | None
    test_accuracy: float | None
    train_accuracy: float | None
    seconds: float
    history: list[dict]
    classes: list[str]
    confusion: list | None = None
    confusion_split: str = "val"
    predictions: dict = field(default_factory=dict)  # split -> (indices, y_true, y_pred)
    timings: dict = field(default_factory=dict)
    status: str = "completed"
    model: object = None
    chosen: dict = field(default_factory=dict)  # hyper-parameters chosen inside the train split
    val_ece: float | None = None  # expected calibration error on val (15 bins)
    reliability: list = field(default_factory=list)  # val reliability bins (tlviz.calibration)
    temperature: float | None = None  # logits / T; None: not temperature-scaled (kNN, torch modes)

    def counts(self) -> dict[str, int]:
        """Images behind each split's accuracy."""
        return {s: len(p[0]) for s, p in self.predictions.items()}

    def to_json(self) -> dict:
        out = {"run_id": self.run_id, "seconds": round(self.seconds, 3), "status": self.status,
               "chosen": self.chosen, "val_ece": self.val_ece, "temperature": self.temperature,
               "reliability": self.reliability}
        n = self.counts()
        for split in ("train", "val", "test"):
            acc = getattr(self, f"{split}_accuracy")
            out[f"{split}_accuracy"] = acc
            out[f"n_{split}"] = n.get(split, 0)
            out[f"{split}_interval"] = (None if acc is None else
                                        wilson_interval(round(acc * n[split]), n[split]))
        return out


def feature_extraction(ctx: Context) -> ModeOutput:
    """The frozen backbone's cached features and a head fitted on them."""
    cfg, ds = ctx.cfg, ctx.dataset
    t0 = time.perf_counter()
    emb = embed(ds, cfg.backbone, progress=ctx.progress)
    t_embed = time.perf_counter() - t0
    ctx.check_stop()
    Xtr, ytr = emb.split("train")
    Xv, yv = emb.split("val")
    params = dict(cfg.head_params)
    if cfg.head == "mlp":
        params.setdefault("seed", cfg.seed)
        if cfg.epochs:
            params["epochs"] = cfg.epochs
    head = create_head(cfg.head, **params)
    t1 = time.perf_counter()
    opts = cfg.options()
    if cfg.augment is not None and not cfg.augment.is_identity:
        Xtr, ytr = _augmented_features(ctx, emb, Xtr, ytr, opts.augment_views)
    kw = {"X_val": Xv, "y_val": yv} if cfg.head == "mlp" else {}
    if cfg.head == "mlp":
        kw["on_epoch"] = lambda rec: ctx.epoch_done(rec)
    head.fit(Xtr, ytr, **kw)
    history = list(getattr(head, "history_", []))
    if not history:  # one-shot heads: a single "epoch" so every run has a curve
        rec = {"epoch": 1, "train_loss": None, "train_acc": float(head.score(Xtr, ytr)),
               "val_loss": None, "val_acc": float(head.score(Xv, yv)) if len(yv) else None}
        ctx.epoch_done(rec)
        history = [rec]
    t_fit = time.perf_counter() - t1
    preds, proba = {}, {}
    model = FeaturePredictor(cfg.backbone, cfg.head, params, head, list(ds.classes))
    for split in ds.split_names:
        idx = emb.indices(split)
        preds[split] = (idx, head.predict(np.asarray(emb.features[idx])) if len(idx) else idx)
    if len(va := emb.indices("val")):
        proba["val"] = model.head_proba(np.asarray(emb.features[va]))
    state = {f"head.{k}": v for k, v in head.get_state().items()}
    return ModeOutput(preds, history, state, {"embed": t_embed, "fit": t_fit}, model,
                      chosen=dict(getattr(head, "chosen_", {})), probabilities=proba)


def _augmented_features(ctx: Context, emb, Xtr, ytr, views: int):
    """Frozen features of ``views`` augmented copies of the training images.

    Images are decoded once at the backbone's input size, augmented in batches and run
    through the frozen backbone (ONNX Runtime); see :func:`tlviz.finetune.augmented_features`.
    """
    from tlviz.finetune import augmented_features

    idx = emb.indices("train")
    feats = augmented_features(ctx, idx, views)
    return np.concatenate([Xtr, feats]), np.concatenate([ytr] * (views + 1))


@dataclass
class FeaturePredictor(Predictor):
    """Frozen backbone + fitted head: images in, class probabilities out.

    ``net``: the backbone with its weights when rebuilt from an export (no pretrained
    weights needed); None uses the registered backbone (and its cached ONNX session).
    """

    backbone: str
    head_name: str
    head_params: dict
    head: object
    classes: list[str]
    net: object = None  # tlviz.nets.FeatureNet

    kind = "feature-extraction"

    @property
    def prep(self):
        return get_backbone_spec(self.backbone).preprocess

    def votes(self) -> int | None:
        """k for a kNN head (its probabilities are shares of k neighbours' votes), else None."""
        k = getattr(self.head, "k_", None)
        return None if k is None else int(np.ravel(k)[0])

    def head_proba(self, X: np.ndarray) -> np.ndarray:
        """Features -> probabilities over all the run's classes (0 for classes absent from train)."""
        proba = np.zeros((len(X), len(self.classes)))
        if len(X):
            proba[:, np.asarray(self.head.classes_).astype(int)] = self.head.predict_proba(X)
        return proba

    def predict_proba(self, images: list) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.classes)))
        return self.head_proba(embed_images(images, self.backbone) if self.net is None else
                               embed_images(images, self.net, get_backbone_spec(self.backbone)))

    def _net(self):
        if self.net is None:
            from tlviz.backbones import create_backbone

            self.net = create_backbone(self.backbone)
        return self.net

    def describe(self) -> dict:
        return {"kind": self.kind, "backbone": self.backbone, "head": self.head_name,
                "head_params": self.head_params, "backbone_weights": "included"}

    def state(self) -> dict[str, np.ndarray]:
        out = {f"net.{k}": v.detach().numpy() for k, v in self._net().state_dict().items()}
        out.update({f"head.{k}": np.asarray(v) for k, v in self.head.get_state().items()})
        return out

    def probabilities_module(self):
        from tlviz.headnets import Probabilities, head_module

        return Probabilities(self._net(), head_module(self.head_name, self.head, len(self.classes)))

    @classmethod
    def from_state(cls, description: dict, state: dict, classes: list[str],
                   folder=None) -> FeaturePredictor:
        """From ``describe()`` and ``state()`` (the backbone's ``net.*`` weights included, so no
        pretrained file is needed), or from a ledger run (head only: the registered backbone)."""
        import torch

        from tlviz.backbones import create_backbone

        d = description
        head = head_from_state(d["head"], dict(d.get("head_params") or {}),
                               {k[5:]: v for k, v in state.items() if k.startswith("head.")})
        net = None
        if d.get("backbone_weights") == "included":
            net = create_backbone(d["backbone"], pretrained=False)
            net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items()
                                 if k.startswith("net.")})
            net.eval()
        return cls(d["backbone"], d["head"], dict(d.get("head_params") or {}), head,
                   list(classes), net)


def train(cfg: TrainConfig, *, dataset: ImageDataset | None = None,
          ledger: Ledger | None | bool = True, progress: Progress | None = None,
          on_epoch: EpochCallback | None = None, should_stop: StopCheck | None = None) -> RunResult:
    """Run one training config; record it in ``ledger`` (True = the default ledger, None = none)."""
    run_mode = get_mode(cfg.mode).runner()
    t0 = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset(cfg.dataset, seed=cfg.seed)
    ds = ds.ensure_val(seed=cfg.seed)
    if cfg.exclude:
        ds = ds.leave_out(cfg.exclude)
    ds.check_trainable()  # a clear DatasetError for one class or no train split
    led = Ledger() if ledger is True else (ledger or None)
    run_cfg = {**cfg.to_dict(), "dataset": cfg.dataset if dataset is None else (cfg.dataset or ds.name),
               "dataset_fingerprint": ds.fingerprint}
    run_id = led.start_run(run_cfg) if led else None
    ctx = Context(cfg, ds, progress, on_epoch, should_stop, led, run_id)
    try:
        out = run_mode(ctx)
    except BaseException as e:
        if led:
            status = "cancelled" if isinstance(e, Cancelled | KeyboardInterrupt) else "failed"
            led.finish_run(run_id, status=status, error=f"{type(e).__name__}: {e}",
                           seconds=time.perf_counter() - t0)
        raise
    acc = {}
    conf, conf_split = None, "val"
    for split, (idx, y_pred) in out.predictions.items():
        acc[split] = accuracy(ds.labels[idx], y_pred) if len(idx) else None
    conf_split = "val" if "val" in out.predictions else next(iter(out.predictions), "val")
    if conf_split in out.predictions and len(out.predictions[conf_split][0]):
        idx, y_pred = out.predictions[conf_split]
        conf = confusion_matrix(ds.labels[idx], y_pred, ds.num_classes).tolist()
    bins, ece = [], None
    if "val" in out.probabilities and "val" in out.predictions:
        bins = reliability(out.probabilities["val"], ds.labels[out.predictions["val"][0]])
        ece = ece_from_bins(bins)
    temperature = out.chosen.get("temperature")
    seconds = time.perf_counter() - t0
    result = RunResult(run_id, acc.get("val"), acc.get("test"), acc.get("train"), seconds,
                       out.history, list(ds.classes), conf, conf_split,
                       {s: (idx, ds.labels[idx], p) for s, (idx, p) in out.predictions.items()},
                       out.timings, model=out.model, chosen=out.chosen, val_ece=ece,
                       reliability=bins, temperature=temperature)
    if led:
        led.finish_run(run_id, train_accuracy=result.train_accuracy, val_accuracy=result.val_accuracy,
                       test_accuracy=result.test_accuracy, confusion=conf, classes=ds.classes,
                       timings=out.timings, seconds=seconds, weights=out.weights,
                       counts=result.counts(), chosen=out.chosen, val_ece=ece,
                       temperature=temperature, reliability=bins)
    return result


def load_predictor(ledger: Ledger, run_id: int):
    """Rebuild a run's model from the ledger (config + safetensors weights)."""
    run = ledger.get_run(run_id)
    cfg = run["config"]
    weights = ledger.weights(run_id)
    if weights is None:
        raise BadInput(f"run {run_id} has no stored weights (status: {run['status']})")
    return get_mode(cfg.get("mode", "feature-extraction")).loader()(run, weights)


def run_feature_proba(ledger: Ledger, run_id: int, X: np.ndarray) -> np.ndarray:
    """A ``feature-extraction`` run's probabilities (over all its classes) for features ``X``
    of its backbone: the head alone, no images read (for colouring a map by a run)."""
    pred = load_predictor(ledger, run_id)
    if not isinstance(pred, FeaturePredictor):
        raise BadInput(f"run {run_id} is not a frozen-backbone run: it needs its images")
    return pred.head_proba(np.asarray(X, np.float32))


def load_feature_predictor(run: dict, weights: dict[str, np.ndarray]) -> FeaturePredictor:
    """A feature-extraction run's predictor: its backbone and the head's stored state."""
    cfg = run["config"]
    params = dict(cfg.get("head_params") or {})
    if cfg["head"] == "mlp":
        params.setdefault("seed", cfg.get("seed", 0))
    return FeaturePredictor.from_state({"backbone": cfg["backbone"], "head": cfg["head"],
                                        "head_params": params}, weights, run["classes"])


__all__ = ["run_feature_proba", "MODES", "Cancelled", "Context", "FeaturePredictor", "ModeOutput", "RunResult",
           "TrainConfig", "feature_extraction", "load_feature_predictor", "load_predictor",
           "register_mode", "train"]
