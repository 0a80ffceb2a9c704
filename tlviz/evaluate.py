"""The evaluation harness: how defaults are chosen and how a change is judged.

For each dataset, backbone and head: the head fitted with its defaults on the train split
(hyper-parameters chosen inside it, never on val or test), then val and test accuracy
with 95% Wilson intervals, the val expected calibration error (after the head's temperature,
when it has one), the chosen hyper-parameters and the time. ``tlviz eval`` prints
the table; ``bench/bench_eval.py`` writes it to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tlviz.metrics import wilson_interval

Progress = Callable[[int, int, str], None]


@dataclass
class EvalRow:
    dataset: str
    backbone: str
    head: str
    n_train: int
    val_accuracy: float | None
    val_interval: tuple[float, float] | None
    n_val: int
    test_accuracy: float | None
    test_interval: tuple[float, float] | None
    n_test: int
    chosen: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    embed_seconds: float = 0.0
    val_ece: float | None = None

    @property
    def temperature(self) -> float | None:
        return self.chosen.get("temperature")

    def to_dict(self) -> dict:
        return asdict(self)


def _score(head, X: np.ndarray, y: np.ndarray) -> tuple[float | None, tuple | None, int]:
    if not len(y):
        return None, None, 0
    correct = int((head.predict(X) == y).sum())
    return correct / len(y), wilson_interval(correct, len(y)), len(y)


def val_ece(head, X: np.ndarray, y: np.ndarray, n_classes: int) -> float | None:
    """The head's expected calibration error on (X, y) (class codes; None without rows)."""
    from tlviz.calibration import expected_calibration_error

    if not len(y):
        return None
    proba = np.zeros((len(y), n_classes))
    proba[:, np.asarray(head.classes_).astype(int)] = head.predict_proba(X)
    return expected_calibration_error(proba, y)


def evaluate_features(emb, head: str, params: dict | None = None) -> tuple[dict, object, float]:
    """Fit ``head`` (defaults + ``params``) on the train split of embeddings ``emb``."""
    from tlviz.heads import create_head

    Xtr, ytr = emb.split("train")
    h = create_head(head, **(params or {}))
    t0 = time.perf_counter()
    h.fit(Xtr, ytr)
    return getattr(h, "chosen_", {}), h, time.perf_counter() - t0


def evaluate(datasets: Sequence[str], backbones: Sequence[str], heads: Sequence[str], *,
             seed: int = 0, progress: Progress | None = None) -> list[EvalRow]:
    """Every (dataset, backbone, head) with the default hyper-parameters; see the module."""
    from tlviz.data import load_dataset
    from tlviz.embed import embed

    rows: list[EvalRow] = []
    total, done = len(datasets) * len(backbones) * len(heads), 0
    for name in datasets:
        ds = load_dataset(name, seed=seed).ensure_val(seed=seed)
        for bb in backbones:
            t0 = time.perf_counter()
            emb = embed(ds, bb)
            t_embed = time.perf_counter() - t0
            for head in heads:
                chosen, h, secs = evaluate_features(emb, head)
                val = _score(h, *emb.split("val"))
                test = _score(h, *emb.split("test"))
                rows.append(EvalRow(ds.name, bb, head,
                                    len(emb.split("train")[1]), val[0], val[1], val[2],
                                    test[0], test[1], test[2], chosen, secs, t_embed,
                                    val_ece(h, *emb.split("val"), ds.num_classes)))
                done += 1
                if progress:
                    progress(done, total, f"{name} · {bb} · {head}")
    return rows


def format_table(rows: Sequence[EvalRow]) -> str:
    def acc(a, ci, n):
        return "—" if a is None else f"{a:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] n={n}"

    lines = [f"{'dataset':<14} {'backbone':<19} {'head':<9} {'val (95% CI)':<28} "
             f"{'test (95% CI)':<28} {'val ECE':>7} {'fit s':>6}  chosen"]
    for r in rows:
        chosen = ", ".join(f"{k}={v}" for k, v in r.chosen.items())
        lines.append(f"{r.dataset:<14} {r.backbone:<19} {r.head:<9} "
                     f"{acc(r.val_accuracy, r.val_interval, r.n_val):<28} "
                     f"{acc(r.test_accuracy, r.test_interval, r.n_test):<28} "
                     f"{'—' if r.val_ece is None else f'{r.val_ece:.3f}':>7} "
                     f"{r.fit_seconds:>6.2f}  {chosen}")
    return "\n".join(lines)


__all__ = ["EvalRow", "evaluate", "evaluate_features", "format_table"]
