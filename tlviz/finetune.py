"""Training modes that train torch networks: ``pixels-mlp``, ``scratch-cnn``, ``fine-tune``.

The seeds' ladder, bottom to top: raw pixels into a small MLP (fails), a small CNN from
random initialisation (with or without augmentation), a frozen pretrained backbone with
a head (``feature-extraction``, in :mod:`tlviz.train`), and fine-tuning its last blocks.

Fast on a CPU by design:

* images are decoded once into a uint8 tensor (cached in memory per dataset and size);
  augmentation runs on whole batches (:func:`tlviz.augment.augment_batch`) before the
  mean/std normalisation, on training data only;
* ``fine-tune`` runs the frozen part of the backbone (``FeatureNet.split``) once per
  image and *view* through ONNX Runtime (view 0 is the plain image, the others are
  augmented), caches those activations, and then every epoch only runs the unfrozen
  blocks (channels-last) and the head. Epoch ``e`` trains on view ``(e-1) % views``.
* BatchNorm layers inside the unfrozen blocks stay in eval mode (frozen statistics, as
  Keras does when fine-tuning); their affine parameters still train. Dropout trains.
* two phases, as in the book: the head is first fitted on frozen features (logged as
  epoch 0), then blocks and head train together with a small learning rate (RMSprop
  1e-4 by default).

Options go in ``TrainConfig.extra``, read through the mode's dataclass in
:mod:`tlviz.options`; ``patience`` turns on early
stopping with best-epoch restore (selection on val: the val accuracy is then optimistic).
Weights are stored as plain arrays plus a small JSON description (``meta.json``), so
:func:`load_predictor` rebuilds any run without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tlviz import onnxrt
from tlviz.augment import AugmentConfig, augment_batch
from tlviz.backbones import BackboneSpec, create_backbone, get_backbone_spec
from tlviz.data import ImageDataset
from tlviz.embed import embed, iter_batches
from tlviz.errors import BadInput, UnknownName
from tlviz.loop import predict_logits, train_epochs
from tlviz.modes import Context, ModeOutput
from tlviz.nets import FeatureNet
from tlviz.predictors import Predictor
from tlviz.preprocess import Preprocess

SCRATCH_MEAN, SCRATCH_STD = 0.5, 0.25  # fixed normalisation for networks trained from scratch


def augment_config(cfg, default: AugmentConfig | None = None) -> AugmentConfig | None:
    """The run's augmentation (None when off). ``default`` applies when cfg.augment is None."""
    aug = default if cfg.augment is None else cfg.augment
    return None if aug is None or aug.is_identity else aug


# ----------------------------------------------------------------------------- decoded images

_DECODED: OrderedDict[tuple, tuple[torch.Tensor, np.ndarray]] = OrderedDict()
_DECODED_LOCK = threading.Lock()
_DECODED_MAX_BYTES = 1 << 30


def plain_preprocess(size: int, grayscale: bool = False, mean=None, std=None,
                     resize: int | None = None) -> Preprocess:
    """Resize the shorter side, centre crop, normalise (mean 0 / std 1 unless given)."""
    c = 1 if grayscale else 3
    mean = tuple(mean) if mean is not None else (0.0,) * c
    std = tuple(std) if std is not None else (1.0,) * c
    return Preprocess(size, resize, mean, std, grayscale)


def decoded(ds: ImageDataset, prep: Preprocess, ctx: Context | None = None
            ) -> tuple[torch.Tensor, np.ndarray]:
    """Every image of ``ds`` as uint8 (N, C, size, size) — ``prep``'s geometry, before its
    normalisation — plus a validity mask; cached in memory."""
    size, grayscale = prep.size, prep.grayscale
    key = (ds.fingerprint, size, prep.resize, grayscale)
    with _DECODED_LOCK:
        if key in _DECODED:
            _DECODED.move_to_end(key)
            return _DECODED[key]
    plain = plain_preprocess(size, grayscale, resize=prep.resize)
    out = torch.zeros((len(ds), plain.channels, size, size), dtype=torch.uint8)
    valid = np.ones(len(ds), bool)
    done = 0
    for idx, batch, bad in iter_batches(ds, plain, 64):
        out[idx] = torch.from_numpy(np.rint(batch * 255)).to(torch.uint8)
        valid[[i for i, _ in bad]] = False
        done += len(idx)
        if ctx is not None:
            if ctx.progress:
                ctx.progress(done, len(ds), f"decoding images at {size} px")
            ctx.check_stop()
    with _DECODED_LOCK:
        _DECODED[key] = (out, valid)
        while sum(t.numel() for t, _ in _DECODED.values()) > _DECODED_MAX_BYTES and len(_DECODED) > 1:
            _DECODED.popitem(last=False)
    return out, valid


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    c = x.shape[1]
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, c, 1, 1)
    return (x - m) / s


def _prep(x: torch.Tensor, mean, std, aug: AugmentConfig | None = None,
          gen: torch.Generator | None = None) -> torch.Tensor:
    """uint8 batch -> [0, 1] -> augmented (training only) -> normalised float."""
    x = x.float().div_(255)
    if aug is not None:
        x = augment_batch(x, aug, gen)
    return _normalise(x, mean, std).contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- models


def pixels_mlp(n_in: int, n_classes: int, hidden: int = 256, dropout: float = 0.6) -> nn.Module:
    """Flattened pixels -> Dense(hidden) + ReLU + Dropout -> Dense(n_classes)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, n_classes))


def scratch_cnn(n_classes: int, image_size: int = 64, width: int = 16, dense: int = 128,
                dropout: float = 0.5, channels: int = 3) -> nn.Module:
    """The book's four conv + max-pool blocks and a dense layer, scaled down."""
    chans = [channels, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    side = image_size // 16
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(chans[-1] * side * side, dense), nn.ReLU(),
                         nn.Linear(dense, n_classes))


class L2Normalize(nn.Module):
    """Scale each feature vector to unit length (the geometry the logistic head uses)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-12)


def make_head(d_in: int, n_classes: int, hidden: int = 0, dropout: float = 0.6) -> nn.Module:
    """L2-normalise + Linear (the logistic head), or the book's Dense(hidden) + Dropout + Dense."""
    if hidden:
        return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden, n_classes))
    return nn.Sequential(L2Normalize(), nn.Linear(d_in, n_classes))


class FineTuned(nn.Module):
    """A backbone (:class:`FeatureNet`) with a head: images -> logits."""

    def __init__(self, net: FeatureNet, head: nn.Module):
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


class _TailModel(nn.Module):
    """Trainable stages + pooling + head: cached body activations -> logits."""

    def __init__(self, net: FeatureNet, k: int, head: nn.Module):
        super().__init__()
        self.net, self.k, self.head = net, k, head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.net.forward_head(self.net.forward_stages(h, self.k)))


# ----------------------------------------------------------------------------- optimizers


def _optimizer(name: str, params, lr: float, weight_decay: float = 0.0):
    name = name.lower()
    if name == "rmsprop":  # Keras' defaults (rho 0.9, epsilon 1e-7), as in the book
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise UnknownName(f"unknown optimizer {name!r}: use rmsprop, adam or sgd")


def _outputs(parts: dict[str, np.ndarray], logits: Callable[[str], torch.Tensor]
             ) -> tuple[dict, dict]:
    """Predictions per split (indices, arg-max) and the val probabilities (softmax; for the
    run's calibration error) from ``logits(split)``."""
    preds, proba = {}, {}
    for s, idx in parts.items():
        z = logits(s) if len(idx) else None
        preds[s] = (idx, z.argmax(1).numpy() if z is not None else idx)
        if s == "val" and z is not None:
            proba[s] = torch.softmax(z.float(), 1).numpy()
    return preds, proba


def _split_indices(ds: ImageDataset, valid: np.ndarray) -> dict[str, np.ndarray]:
    return {s: np.flatnonzero((ds.splits == s) & valid) for s in ds.split_names}


def _labels(ds: ImageDataset, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(ds.labels[idx]).long()


def _state(module: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8).copy()


def read_meta(weights: dict[str, np.ndarray]) -> dict:
    """The JSON description stored beside a run's weights."""
    if "meta.json" not in weights:
        raise BadInput("these weights have no meta.json (not a torch-mode run)")
    return json.loads(bytes(np.asarray(weights["meta.json"], dtype=np.uint8)).decode())


def _sub_state(weights: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in weights.items()
            if k.startswith(prefix)}


# ----------------------------------------------------------------------------- pixels / scratch


def _build_small(meta: dict, n_classes: int) -> nn.Module:
    p = meta["params"]
    if meta["arch"] == "pixels-mlp":
        return pixels_mlp(p["image_size"] ** 2 * meta["channels"], n_classes, p["hidden"],
                          p["dropout"])
    return scratch_cnn(n_classes, p["image_size"], p["width"], p["dense"], p["dropout"],
                       meta["channels"])


def _train_small(ctx: Context, mode: str) -> ModeOutput:
    """pixels-mlp and scratch-cnn: decode once, augment batches on the fly, train from scratch."""
    cfg, ds = ctx.cfg, ctx.dataset
    o = cfg.options()
    size = o.image_size
    gray = mode == "pixels-mlp"
    t0 = time.perf_counter()
    images, valid = decoded(ds, plain_preprocess(size, gray), ctx)
    t_decode = time.perf_counter() - t0
    parts = _split_indices(ds, valid)
    if "train" not in parts or not len(parts["train"]):
        raise BadInput(f"{ds.name} has no usable training images")
    c = images.shape[1]
    mean, std = (SCRATCH_MEAN,) * c, (SCRATCH_STD,) * c
    meta = {"arch": mode, "channels": c, "image_size": size, "mean": mean, "std": std,
            "params": {k: v for k, v in o.to_dict().items()
                       if k in ("image_size", "hidden", "width", "dense", "dropout")}}
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = _build_small(meta, ds.num_classes).to(memory_format=torch.channels_last)
    aug = augment_config(cfg)
    tr, va = parts["train"], parts.get("val", np.zeros(0, int))
    Xtr, ytr = images[tr], _labels(ds, tr)
    opt = _optimizer(o.optimizer, model.parameters(), o.lr, o.weight_decay)
    t1 = time.perf_counter()
    history = train_epochs(model, opt, o.epochs, lambda e: (Xtr, ytr),
                           prep_train=lambda xb, g: _prep(xb, mean, std, aug, g),
                           prep_eval=lambda xb: _prep(xb, mean, std), Xv=images[va],
                           yv=_labels(ds, va), batch_size=o.batch_size,
                           patience=o.patience, gen=gen, check_stop=ctx.check_stop,
                           on_epoch=ctx.epoch_done).history
    t_train = time.perf_counter() - t1
    preds, proba = _outputs(parts, lambda s: predict_logits(model, images[parts[s]],
                                                            lambda xb: _prep(xb, mean, std)))
    weights = {**_state(model, "model."), "meta.json": _meta_array(meta)}
    predictor = TorchPredictor(model, plain_preprocess(size, gray, mean, std), list(ds.classes),
                               meta)
    return ModeOutput(preds, history, weights, {"decode": t_decode, "train": t_train}, predictor,
                      probabilities=proba)


def train_pixels_mlp(ctx: Context) -> ModeOutput:
    return _train_small(ctx, "pixels-mlp")


def train_scratch_cnn(ctx: Context) -> ModeOutput:
    return _train_small(ctx, "scratch-cnn")


# ----------------------------------------------------------------------------- fine-tune

_ACTS: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_ACTS_LOCK = threading.Lock()
_ACTS_MAX_BYTES = 768 << 20


def _body_runner(spec: BackboneSpec, net: FeatureNet, k: int, backend: str = "auto"):
    """normalised images (B, C, H, W) -> activations after the first ``k`` stages.

    ONNX Runtime when available (exported once per backbone and split, cached on disk;
    several times faster than torch on a CPU), else torch in inference mode.
    """
    body = nn.Sequential(*list(net.stages)[:k]).eval()
    if k == 0:
        return lambda x: x
    if backend in ("auto", "onnx") and onnxrt.available():
        sess = onnxrt.cached_model(f"{spec.name}-body{k}-{onnxrt.weights_tag(spec.weights())}",
                                   lambda: body, channels=spec.channels, size=spec.input_size,
                                   threads=torch.get_num_threads())
        return lambda x: torch.from_numpy(sess.run(None, {"images": x.contiguous().numpy()})[0])

    def run(x):
        with torch.inference_mode():
            return body(x).clone()
    return run


def _activations(ctx: Context, key: tuple, images: torch.Tensor, idx: np.ndarray, run_body,
                 spec: BackboneSpec, aug: AugmentConfig | None, gen: torch.Generator | None,
                 what: str, cache: bool, post: Callable | None = None) -> torch.Tensor:
    """Body activations of ``images[idx]`` (augmented when ``aug``), float16, cached in memory.

    ``post`` (e.g. pooling) is applied per batch; its float32 output is stored instead.
    """
    if cache:
        with _ACTS_LOCK:
            if key in _ACTS:
                _ACTS.move_to_end(key)
                return _ACTS[key]
    out = None
    bs = 32
    for k in range(0, len(idx), bs):
        x = _prep(images[idx[k:k + bs]], spec.mean, spec.std, aug, gen)
        h = run_body(x.contiguous())
        if post is not None:
            with torch.no_grad():
                h = post(h.float())
        else:
            h = h.to(torch.float16)
        if out is None:
            out = torch.empty((len(idx), *h.shape[1:]), dtype=h.dtype)
        out[k:k + len(h)] = h
        if ctx.progress:
            ctx.progress(min(k + bs, len(idx)), len(idx), what)
        ctx.check_stop()
    if out is None:
        out = torch.zeros((0,), dtype=torch.float16)
    if cache:
        with _ACTS_LOCK:
            _ACTS[key] = out
            while sum(t.numel() * t.element_size() for t in _ACTS.values()) > _ACTS_MAX_BYTES and len(_ACTS) > 1:
                _ACTS.popitem(last=False)
    return out


def _fit_head(ctx: Context, head: nn.Module, X: np.ndarray, y: np.ndarray, Xv: np.ndarray,
              yv: np.ndarray, epochs: int, lr: float, seed: int) -> dict:
    """Phase 1: the head alone on frozen features. Returns the epoch-0 record.

    The linear head is fitted to convergence exactly as the ``logistic`` head of
    ``feature-extraction`` (L2-normalised features, scikit-learn, C=1), then copied into
    the torch layer: fine-tuning starts from the feature-extraction model. A hidden-layer
    head trains with Adam for at least 300 steps.
    """
    X, Xv = np.asarray(X, np.float32), np.asarray(Xv, np.float32)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    Xvt, yvt = torch.from_numpy(Xv), torch.from_numpy(yv).long()
    loss_fn = nn.CrossEntropyLoss()
    if isinstance(head[0], L2Normalize) and len(np.unique(y)) > 1:
        from sklearn.linear_model import LogisticRegression

        with torch.no_grad():
            Xn = head[0](Xt).numpy()
        lr_ = LogisticRegression(C=1.0, max_iter=3000).fit(Xn, y)
        coef, icpt, cls = lr_.coef_, lr_.intercept_, lr_.classes_
        if coef.shape[0] == 1:  # binary: softmax([-z/2, z/2]) == sigmoid(z)
            coef, icpt = np.r_[-coef / 2, coef / 2], np.r_[-icpt / 2, icpt / 2]
        lin = head[-1]
        W = np.zeros(tuple(lin.weight.shape), np.float32)
        b = np.full(lin.bias.shape, -20.0, np.float32)  # classes absent from train
        W[cls], b[cls] = coef, icpt
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
    else:
        gen = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        steps_per_epoch = max(1, -(-len(Xt) // 32))
        train_epochs(head, opt, max(epochs, -(-300 // steps_per_epoch)), lambda e: (Xt, yt),
                     gen=gen, check_stop=ctx.check_stop)
    head.eval()
    with torch.no_grad():
        z, zv = head(Xt), head(Xvt)
    rec = {"epoch": 0, "train_loss": float(loss_fn(z, yt)),
           "train_acc": float((z.argmax(1) == yt).float().mean()), "val_loss": None, "val_acc": None}
    if len(yv):
        rec["val_loss"] = float(loss_fn(zv, yvt))
        rec["val_acc"] = float((zv.argmax(1) == yvt).float().mean())
    return rec


def augmented_features(ctx: Context, idx: np.ndarray, views: int) -> np.ndarray:
    """Pooled frozen features of ``views`` augmented copies of images ``idx`` (view-major).

    For ``feature-extraction`` with augmentation: decode once, augment batches at the
    input size, run the whole frozen backbone once per view (seeded by ``cfg.seed``).
    """
    cfg, ds = ctx.cfg, ctx.dataset
    spec = get_backbone_spec(cfg.backbone)
    aug = augment_config(cfg)
    net = create_backbone(cfg.backbone)
    images, _ = decoded(ds, spec.preprocess, ctx)
    run_body = _body_runner(spec, net, len(net.stages))
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for v in range(views):
        out.append(_activations(ctx, (), images, idx, run_body, spec, aug, gen,
                                f"augmented view {v + 1}/{views}", False,
                                post=net.forward_head).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.feature_dim), np.float32)


def fine_tune(ctx: Context) -> ModeOutput:
    cfg, ds = ctx.cfg, ctx.dataset
    o = cfg.options()
    spec = get_backbone_spec(cfg.backbone)
    net = create_backbone(cfg.backbone)
    n = o.n_trainable_blocks
    if not len(net.stages):
        raise BadInput(f"{cfg.backbone} has no blocks to fine-tune; pick a pretrained backbone")
    if not 1 <= n <= len(net.stages):
        raise BadInput(f"n_trainable_blocks must be within 1..{len(net.stages)} for {cfg.backbone}")
    k = len(net.stages) - n
    aug = augment_config(cfg, default=AugmentConfig.book())
    views = 1 + (o.augment_views if aug is not None else 0)
    timings: dict[str, float] = {}

    # phase 1: the head on frozen features (the cached embeddings of the plain images)
    t0 = time.perf_counter()
    emb = embed(ds, cfg.backbone, progress=ctx.progress)
    timings["embed"] = time.perf_counter() - t0
    ctx.check_stop()
    torch.manual_seed(cfg.seed)
    head = make_head(net.feature_dim, ds.num_classes, o.hidden, o.dropout)
    Xf, yf = emb.split("train")
    Xfv, yfv = emb.split("val")
    t0 = time.perf_counter()
    rec0 = _fit_head(ctx, head, Xf, yf, Xfv, yfv, o.head_epochs, o.head_lr,
                     cfg.seed)
    timings["head"] = time.perf_counter() - t0
    ctx.epoch_done(rec0)

    # cached body activations: view 0 plain (shared across seeds), then augmented views
    t0 = time.perf_counter()
    images, valid = decoded(ds, spec.preprocess, ctx)
    parts = _split_indices(ds, valid & emb.valid)
    run_body = _body_runner(spec, net, k, o.body_backend)
    base = (ds.fingerprint, spec.name, k)
    acts = {s: _activations(ctx, (*base, s), images, idx, run_body, spec, None, None,
                            f"frozen blocks: {s}", True) for s, idx in parts.items()}
    gen = torch.Generator().manual_seed(cfg.seed)
    tr = parts["train"]
    train_views = [acts["train"]]
    for v in range(1, views):
        train_views.append(_activations(ctx, (), images, tr, run_body, spec, aug, gen,
                                        f"frozen blocks: augmented view {v}/{views - 1}", False))
    timings["body"] = time.perf_counter() - t0

    # phase 2: the unfrozen blocks and the head, BatchNorm statistics frozen
    for p in net.parameters():
        p.requires_grad_(False)
    for st in list(net.stages)[k:]:
        for p in st.parameters():
            p.requires_grad_(True)
    model = _TailModel(net, k, head).to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(o.optimizer, params, o.lr, o.weight_decay)
    ytr = _labels(ds, tr)
    va = parts.get("val", np.zeros(0, int))

    def as_input(h, _gen=None):
        return h.float().contiguous(memory_format=torch.channels_last)

    t0 = time.perf_counter()
    history = train_epochs(model, opt, o.epochs,
                           lambda e: (train_views[(e - 1) % views], ytr), prep_train=as_input,
                           prep_eval=as_input, Xv=acts.get("val", torch.zeros(0)),
                           yv=_labels(ds, va), batch_size=o.batch_size,
                           patience=o.patience, freeze_bn=True, gen=gen,
                           check_stop=ctx.check_stop, on_epoch=ctx.epoch_done).history
    timings["train"] = time.perf_counter() - t0
    preds, proba = _outputs(parts, lambda s: predict_logits(model, acts[s], as_input))
    net.to(memory_format=torch.contiguous_format)
    meta = {"arch": "fine-tune", "backbone": spec.name, "n_trainable_blocks": n,
            "first_trainable_stage": k, "hidden": o.hidden, "dropout": o.dropout,
            "image_size": spec.input_size, "resize": spec.preprocess.resize, "mean": spec.mean,
            "std": spec.std, "grayscale": spec.grayscale, "channels": spec.channels}
    weights = {f"net.stages.{i}.{key}": v for i in range(k, len(net.stages))
               for key, v in _state(net.stages[i], "").items()}
    weights.update(_state(head, "head."))
    weights["meta.json"] = _meta_array(meta)
    model_full = FineTuned(net, head).eval()
    predictor = TorchPredictor(model_full, spec.preprocess, list(ds.classes), meta,
                               feature_net=net)
    return ModeOutput(preds, [rec0, *history], weights, timings, predictor, probabilities=proba)


# ----------------------------------------------------------------------------- predictors


@dataclasses.dataclass
class TorchPredictor(Predictor):
    """A trained torch model with its preprocessing: PIL images in, probabilities out.

    ``meta``: the model's JSON description (:func:`build_model` rebuilds it from that and
    the weights). ``feature_net`` (fine-tuned runs) maps images to pooled features, for
    embedding images before/after fine-tuning.
    """

    model: nn.Module
    preprocess: Preprocess
    classes: list[str]
    meta: dict
    feature_net: FeatureNet | None = None

    kind = "torch"

    @property
    def prep(self) -> Preprocess:
        return self.preprocess

    def predict_proba(self, images: list) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.classes)))
        x = torch.from_numpy(self.batch(images))
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.model(x), 1).numpy()

    def describe(self) -> dict:
        return {"kind": self.kind, "meta": self.meta}

    def state(self) -> dict[str, np.ndarray]:
        prefix = "" if self.meta["arch"] == "fine-tune" else "model."  # FineTuned has net./head.
        return _state(self.model, prefix)

    def probabilities_module(self) -> nn.Module:
        from tlviz.headnets import Probabilities

        return Probabilities(self.model)

    @classmethod
    def from_state(cls, description: dict, state: dict, classes: list[str],
                   folder=None) -> TorchPredictor:
        """From ``describe()`` and ``state()`` (every weight included: nothing pretrained)."""
        meta = description["meta"]
        model, prep, net = build_model(meta, state, len(classes), pretrained=False)
        return cls(model, prep, list(classes), meta, feature_net=net)


def build_model(meta: dict, weights: dict[str, np.ndarray], n_classes: int,
                pretrained: bool = True) -> tuple[nn.Module, Preprocess, FeatureNet | None]:
    """Rebuild a torch-mode model from its meta description and weights (no pickle)."""
    if meta["arch"] in ("pixels-mlp", "scratch-cnn"):
        model = _build_small(meta, n_classes)
        model.load_state_dict(_sub_state(weights, "model."))
        prep = plain_preprocess(meta["image_size"], meta["channels"] == 1, meta["mean"], meta["std"])
        return model.eval(), prep, None
    if meta["arch"] != "fine-tune":
        raise UnknownName(f"unknown model kind {meta['arch']!r}")
    spec = get_backbone_spec(meta["backbone"])
    net = create_backbone(meta["backbone"], pretrained=pretrained)
    state = _sub_state(weights, "net.")
    missing = [k for k in state if k not in net.state_dict()]
    if missing:
        raise BadInput(f"weights do not fit {meta['backbone']}: e.g. {missing[0]}")
    net.load_state_dict(state, strict=not pretrained)
    head = make_head(net.feature_dim, n_classes, meta["hidden"], meta["dropout"])
    head.load_state_dict(_sub_state(weights, "head."))
    return FineTuned(net, head).eval(), spec.preprocess, net


def load_predictor(run: dict, weights: dict[str, np.ndarray]) -> TorchPredictor:
    """A predictor for a pixels-mlp, scratch-cnn or fine-tune run from the ledger."""
    meta = read_meta(weights)
    model, prep, net = build_model(meta, weights, len(run["classes"]))
    return TorchPredictor(model, prep, list(run["classes"]), meta, feature_net=net)


__all__ = ["FineTuned", "TorchPredictor", "augment_config", "augmented_features", "build_model", "decoded",
           "load_predictor", "make_head", "pixels_mlp", "plain_preprocess",
           "read_meta", "scratch_cnn"]
