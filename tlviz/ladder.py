"""The seeds' ladder and small-data honesty: repeated runs, mean ± std, images-per-class curves.

``run_ladder("hymenoptera")`` trains each rung of the ladder — raw pixels into an MLP, a
small CNN from scratch without and with augmentation, a frozen pretrained backbone with
a head, and fine-tuning its last block — over several seeds, stores every run in the
ledger (so the Compare page can overlay their curves, as in the book's closing chart) and
returns a table of val accuracy mean ± std and training time per rung.

``images_per_class_curve`` is the evidence for "a few dozen images": accuracy of a
frozen backbone + head trained on 5, 10, 20, 40 … images per class (embeds once).

>>> res = run_ladder("digits", backbone="pixels", seeds=(0,), modes=["feature-extraction"],
...                  ledger=None)
>>> list(res.table["step"])
['feature-extraction']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from tlviz.augment import AugmentConfig
from tlviz.data import ImageDataset, load_dataset
from tlviz.errors import BadInput, UnknownName
from tlviz.metrics import accuracy_interval, accuracy_text
from tlviz.runs import Ledger
from tlviz.train import Cancelled, TrainConfig, train

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: a training mode, with or without augmentation."""

    name: str
    mode: str
    augment: bool = False
    extra: dict = field(default_factory=dict)
    epochs: int | None = None
    label: str = ""


# Epochs and learning rates chosen so the whole ladder (3 seeds) fits in ~10 minutes on
# 2 CPU cores for a few hundred images; see bench/bench_ladder.py.
STEPS: tuple[Step, ...] = (
    Step("pixels-mlp", "pixels-mlp", False, epochs=30, label="raw pixels -> MLP"),
    Step("scratch-cnn", "scratch-cnn", False, epochs=30, label="small CNN from scratch"),
    Step("scratch-cnn+aug", "scratch-cnn", True, epochs=30,
         label="small CNN from scratch + augmentation"),
    Step("feature-extraction", "feature-extraction", False, label="frozen backbone + head"),
    Step("fine-tune", "fine-tune", True, extra={"n_trainable_blocks": 1}, epochs=10,
         label="fine-tune the last block + augmentation"),
)
STEP_NAMES = tuple(s.name for s in STEPS)


RUN_COLUMNS = ["step", "seed", "run_id", "val_accuracy", "test_accuracy", "train_accuracy",
               "seconds", "n_val", "n_test", "val_ece"]
TABLE_COLUMNS = ["step", "mode", "augment", "val_mean", "val_std", "val_low", "val_high", "n_val",
                 "test_mean", "test_low", "test_high", "n_test", "seconds_mean", "n_seeds", "run_ids"]


@dataclass
class LadderResult:
    """``table``: one row per rung; ``runs``: one row per (rung, seed) run."""

    table: pd.DataFrame
    runs: pd.DataFrame
    cancelled: bool = False

    @property
    def run_ids(self) -> list[int]:
        return [int(i) for i in self.runs["run_id"].dropna()]

    def to_text(self) -> str:
        return format_table(self.table)

    def to_json(self) -> dict:
        return {"steps": json.loads(self.table.to_json(orient="records")),
                "run_ids": self.run_ids, "cancelled": self.cancelled}


def _std(v: pd.Series) -> float:
    v = v.dropna()
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarize(runs: pd.DataFrame) -> dict:
    """Mean ± std (sample std, ddof=1) of a set of repeated runs, and the 95% Wilson interval
    of each mean on the split's images (``n_val``, ``n_test``: the uncertainty of a finite
    val/test set, which every seed shares; the std is the seed-to-seed spread)."""
    val = runs["val_accuracy"]
    test = runs["test_accuracy"].dropna()
    out = {"val_mean": float(val.mean()) if val.notna().any() else None,
           "val_std": _std(val), "test_mean": float(test.mean()) if len(test) else None,
           "test_std": _std(test), "seconds_mean": float(runs["seconds"].mean()),
           "n": int(len(runs)), "run_ids": [int(i) for i in runs["run_id"].dropna()]}
    for split in ("val", "test"):
        n = int(runs[f"n_{split}"].max()) if f"n_{split}" in runs and len(runs) else 0
        lo, hi = accuracy_interval(out[f"{split}_mean"], n)
        out.update({f"n_{split}": n, f"{split}_low": None if lo != lo else lo,
                    f"{split}_high": None if hi != hi else hi})
    return out


def repeated_runs(cfg: TrainConfig, seeds: Sequence[int] = (0, 1, 2), *,
                  dataset: ImageDataset | None = None, vary: str = "seed",
                  ledger: Ledger | None | bool = True, progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None) -> pd.DataFrame:
    """Train ``cfg`` once per seed; one row per run (see :func:`summarize` for mean ± std).

    ``vary="seed"`` keeps the dataset's split and changes the training seed (initialisation,
    shuffling, augmentation); ``vary="split"`` also redraws the train/val split per seed
    (only for datasets without a fixed split: folders without split dirs, digits).
    """
    if vary not in ("seed", "split"):
        raise BadInput("vary must be 'seed' or 'split'")
    led = Ledger() if ledger is True else (ledger or None)
    rows = []
    for n, seed in enumerate(seeds):
        ds = dataset
        if vary == "split":
            ds = load_dataset(cfg.dataset if dataset is None else dataset.root or cfg.dataset,
                              seed=seed)
        elif ds is None:
            ds = load_dataset(cfg.dataset, seed=0)
        msg = f"{cfg.mode} seed {seed}"

        def inner(done, total, what, n=n, msg=msg):
            if progress:
                progress(n, len(seeds), f"{msg}: {what} {done}/{total}")

        if progress:
            progress(n, len(seeds), msg)
        r = train(replace(cfg, seed=int(seed)), dataset=ds, ledger=led, progress=inner,
                  should_stop=should_stop)
        n = r.counts()
        rows.append({"seed": int(seed), "run_id": r.run_id, "val_accuracy": r.val_accuracy,
                     "test_accuracy": r.test_accuracy, "train_accuracy": r.train_accuracy,
                     "seconds": r.seconds, "n_val": n.get("val", 0), "n_test": n.get("test", 0),
                     "val_ece": r.val_ece})
    if progress:
        progress(len(seeds), len(seeds), "done")
    return pd.DataFrame(rows, columns=RUN_COLUMNS[1:])


def resolve_steps(modes: Sequence[str] | None) -> list[Step]:
    """Ladder steps by name (``scratch-cnn+aug`` …) or mode, in ladder order; None = all."""
    if modes is None:
        return list(STEPS)
    chosen = set()
    for m in modes:
        hits = [s.name for s in STEPS if s.name == m] or [s.name for s in STEPS if s.mode == m]
        if not hits:
            raise UnknownName(f"unknown ladder step {m!r}; use some of {', '.join(STEP_NAMES)}")
        chosen.update(hits)
    return [s for s in STEPS if s.name in chosen]


def run_ladder(dataset: str | ImageDataset, *, backbone: str = "mobilenet_v2",
               head: str = "logistic", seeds: Sequence[int] = (0, 1, 2),
               modes: Sequence[str] | None = None, ledger: Ledger | None | bool = True,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               options: dict[str, dict] | None = None) -> LadderResult:
    """Run the ladder over ``seeds``; every run goes to the ledger (unless ``ledger=None``).

    ``modes``: step names or modes to run (default all, see :data:`STEPS`); ``options``:
    per-step overrides, e.g. ``{"fine-tune": {"epochs": 5, "lr": 1e-4}}`` (``epochs`` and
    ``augment`` go to the config, the rest to ``extra``). On cancellation the finished
    rungs are returned with ``cancelled=True``.
    """
    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(dataset, seed=0)
    name = dataset if isinstance(dataset, str) else ds.name
    led = Ledger() if ledger is True else (ledger or None)
    steps = resolve_steps(modes)
    options = options or {}
    unknown = set(options) - set(STEP_NAMES)
    if unknown:
        raise BadInput(f"options for unknown step(s): {', '.join(sorted(unknown))}")
    total = len(steps) * len(seeds)
    rows: list[dict] = []
    cancelled = False
    for si, step in enumerate(steps):
        extra = {**step.extra, **options.get(step.name, {})}
        epochs = extra.pop("epochs", step.epochs)
        aug = extra.pop("augment", AugmentConfig.book().to_dict() if step.augment else None)
        if step.mode == "fine-tune" and not step.augment and "augment" not in options.get(step.name, {}):
            aug = {}  # explicit "off" (fine-tune augments by default)
        cfg = TrainConfig(dataset=name, backbone=backbone, head=head, mode=step.mode,
                          augment=aug, epochs=epochs, name=f"ladder: {step.name}", extra=extra)

        def prog(done, tot, msg, base=si * len(seeds), step=step):
            if progress:
                progress(base + done, total, f"{step.name}: {msg}")

        try:
            df = repeated_runs(cfg, seeds, dataset=ds, ledger=led, progress=prog,
                               should_stop=should_stop)
        except Cancelled:
            cancelled = True
            break
        df.insert(0, "step", step.name)
        rows += df.to_dict(orient="records")
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    table = []
    for step in steps:
        sub = runs[runs["step"] == step.name]
        if not len(sub):
            continue
        s = summarize(sub)
        table.append({"step": step.name, "mode": step.mode, "augment": step.augment,
                      **{k: s[k] for k in TABLE_COLUMNS[3:-3]}, "seconds_mean": s["seconds_mean"],
                      "n_seeds": s["n"], "run_ids": s["run_ids"]})
    table = pd.DataFrame(table, columns=TABLE_COLUMNS)
    if progress:
        progress(total, total, "cancelled" if cancelled else "done")
    return LadderResult(table, runs, cancelled)


def format_table(table: pd.DataFrame) -> str:
    """The ladder as a plain-text table: val accuracy mean ± std over seeds (95% interval on
    the val images), test accuracy (interval), train time."""
    lines = [f"{'step':<20} {'val accuracy ± std (95% CI)':>28} {'test (95% CI)':>20} "
             f"{'seconds':>8} {'seeds':>5}  runs"]
    for r in table.itertuples():
        val = accuracy_text(None if pd.isna(r.val_mean) else r.val_mean, r.n_val, r.val_std)
        test = accuracy_text(None if pd.isna(r.test_mean) else r.test_mean, r.n_test)
        ids = ",".join(map(str, r.run_ids))
        lines.append(f"{r.step:<20} {val:>28} {test:>20} {r.seconds_mean:>8.1f} {r.n_seeds:>5}  {ids}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- images per class


def images_per_class_curve(dataset: str | ImageDataset, backbone: str = "mobilenet_v2",
                           head: str = "logistic", sizes: Sequence[int | None] = (5, 10, 20, 40, None),
                           seeds: Sequence[int] = (0, 1, 2), head_params: dict | None = None,
                           progress: Progress | None = None) -> pd.DataFrame:
    """Val accuracy of ``backbone`` + ``head`` trained on ``n`` images per class.

    Embeds once (cached), then for each size and seed fits the head on a seeded random
    subsample of the training split (``None`` = all of it) and scores the val split.
    Rows: ``label`` ("5" … "all"), ``n_per_class`` (requested, or the largest class for
    all), ``n_train`` (images used, mean over seeds), ``val_mean``, ``val_std``, ``val_min``,
    ``val_max``, ``seeds``, ``n_val`` and the 95% Wilson interval of ``val_mean`` on the val
    images, ``val_low``–``val_high``.
    """
    from tlviz.embed import embed
    from tlviz.heads import create_head

    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(dataset, seed=0)
    ds = ds.ensure_val(seed=0)
    emb = embed(ds, backbone, progress=progress)
    Xtr, ytr = emb.split("train")
    Xv, yv = emb.split("val")
    if not len(yv):
        raise BadInput(f"{ds.name} has no validation images to score")
    classes = np.unique(ytr)
    largest = int(max((ytr == c).sum() for c in classes))
    rows = []
    for size in sizes:
        if size is not None and int(size) < 1:
            raise BadInput("images per class must be at least 1")
        accs, used = [], []
        for seed in (seeds if size is not None else seeds[:1]):
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.permutation(np.flatnonzero(ytr == c))[:size]
                                   for c in classes]) if size is not None else np.arange(len(ytr))
            params = dict(head_params or {})
            if head == "mlp":
                params.setdefault("seed", int(seed))
            if head in ("logistic", "mlp"):  # accuracy only: a temperature cannot change it
                params.setdefault("temperature", 1.0)
            if head == "knn":
                params.setdefault("n_neighbors", 5)
                params["n_neighbors"] = min(params["n_neighbors"], len(pick))
            h = create_head(head, **params).fit(Xtr[pick], ytr[pick])
            accs.append(float((h.predict(Xv) == yv).mean()))
            used.append(len(pick))
        rows.append({"label": "all" if size is None else str(size),
                     "n_per_class": largest if size is None else int(size),
                     "n_train": float(np.mean(used)), "val_mean": float(np.mean(accs)),
                     "val_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                     "val_min": min(accs), "val_max": max(accs), "seeds": len(accs),
                     "n_val": len(yv), **dict(zip(("val_low", "val_high"),
                                                  accuracy_interval(np.mean(accs), len(yv))))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CLI


__all__ = ["STEPS", "LadderResult", "Step", "format_table", "images_per_class_curve",
           "repeated_runs", "resolve_steps", "run_ladder", "summarize"]
