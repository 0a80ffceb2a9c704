"""Helper processes for the durability and concurrency tests.

As a script it is a *zygote*: it imports torch and tlviz once, then on request forks
training processes that train MLP heads on 'pixels' features of a small digits subset,
forever, writing every run to one ledger, until the test kills them with SIGKILL::

    python tests/fault_worker.py LEDGER EPOCHS
    stdin:  "fork"        -> stdout: "child <pid>"
            "reap <pid>"  -> stdout: "reaped <pid> <wait status>"
            "quit"

The module-level functions are also targets for ``multiprocessing`` (spawn) workers; they
import lazily so a spawned ledger writer does not pay for torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

N_IMAGES = 300  # digits subset: big enough for 10 classes in every split, tiny to train


def tiny_dataset():
    """The first ``N_IMAGES`` of scikit-learn's digits (in memory, no files)."""
    from tlviz.data import load_dataset

    ds = load_dataset("digits")
    return ds.subset(range(N_IMAGES), name=f"digits-{N_IMAGES}")


def train_forever(ledger_path: str, epochs: int) -> None:
    """Train one MLP run after another into ``ledger_path`` (never returns)."""
    import torch

    from tlviz.runs import Ledger
    from tlviz.train import TrainConfig, train

    torch.set_num_threads(1)
    ds = tiny_dataset()
    for seed in range(10**9):
        cfg = TrainConfig(dataset=ds.name, backbone="pixels", head="mlp", epochs=epochs,
                          seed=seed, head_params={"hidden": 32})
        train(cfg, dataset=ds, ledger=Ledger(ledger_path))


def write_runs(ledger_path: str, writer: int, n_runs: int, epochs: int,
               barrier=None, results=None) -> list[int]:
    """Write ``n_runs`` complete runs (epochs, metrics, weights) tagged with ``writer``."""
    import numpy as np

    from tlviz.runs import Ledger

    if barrier is not None:  # every writer starts together
        barrier.wait()
    led = Ledger(ledger_path)
    ids = []
    for j in range(n_runs):
        rid = led.start_run({"dataset": "d", "backbone": "pixels", "head": "mlp",
                             "epochs": epochs, "name": f"w{writer}-r{j}"})
        for e in range(1, epochs + 1):
            led.log_epoch(rid, e, train_loss=1.0 / e, train_acc=0.5, val_loss=1.0 / e,
                          val_acc=writer / 100)
        led.finish_run(rid, val_accuracy=writer / 100, train_accuracy=j / 100,
                       weights={"w": np.full((3, 4), writer * 1000 + j, np.float32)})
        ids.append(rid)
    if results is not None:
        results.put((writer, ids))
    return ids


def embed_once(dataset_root: str, backbone: str,
               barrier=None, results=None) -> tuple[bool, str, bytes, list]:
    """embed() a folder dataset; (from_cache, key, features bytes, failed) for comparison."""
    import numpy as np
    import torch

    from tlviz.data import scan_folder
    from tlviz.embed import embed

    torch.set_num_threads(1)
    ds = scan_folder(dataset_root)
    if barrier is not None:
        barrier.wait()
    emb = embed(ds, backbone)
    out = emb.from_cache, emb.key, np.asarray(emb.features).tobytes(), emb.failed
    if results is not None:
        results.put(out)
    return out


def zygote(ledger_path: str, epochs: int) -> None:
    import numpy as np
    import torch

    from tlviz.heads import create_head

    # import and warm up everything once (single-threaded, so forking stays safe):
    # each forked child then starts training at once
    torch.set_num_threads(1)
    import tlviz.train  # noqa: F401

    tiny_dataset()
    X = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    create_head("mlp", hidden=4, epochs=1).fit(X, np.arange(20) % 2, X, np.arange(20) % 2)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:  # the training process
                try:
                    sys.stdin.close()
                    train_forever(ledger_path, epochs)
                finally:
                    os._exit(1)
            print(f"child {pid}", flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            print(f"reaped {args[0]} {status}", flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    zygote(sys.argv[1], int(sys.argv[2]))
