"""The ``tlviz`` command: datasets, backbones, embed, project, train, runs, ladder, curve, export.

Every subcommand prints a readable table; ``--json`` puts one JSON object on the last
line. Errors are one line on stderr and exit code 2 — never a traceback. Nothing heavy is
imported before a command needs it: ``tlviz --help`` loads argparse and no more, and a
cached ``tlviz embed`` never imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _progress_bar(desc: str):
    from tqdm import tqdm

    bar, label = None, None

    def update(done: int, total: int, msg: str) -> None:
        nonlocal bar, label
        if bar is None or label != msg:  # a disabled tqdm (no tty) has no .desc: track it here
            if bar is not None:
                bar.close()
            bar, label = tqdm(total=total or None, desc=msg, file=sys.stderr, leave=False,
                              disable=not sys.stderr.isatty(), mininterval=0.5), msg
        bar.n = done
        bar.refresh()
        if total and done >= total:
            bar.close()

    return update


def _emit(args, obj, table: str | None = None) -> None:
    if table:
        print(table)
    if getattr(args, "json", False):
        print(json.dumps(obj, default=str))


def cmd_datasets(args) -> int:
    from tlviz.data import get_dataset_info, list_datasets

    if args.download:
        info = get_dataset_info(args.download)
        if info.download is None:
            raise SystemExit(f"{args.download} is not downloadable")
        info.download(_progress_bar("download"))
    rows = []
    for info in list_datasets():
        ok, why = info.available()
        rows.append({"name": info.name, "kind": info.kind, "available": ok,
                     "description": info.description, "status": why})
    table = "\n".join(f"{r['name']:<16} {r['kind']:<9} {'yes' if r['available'] else 'no ':<4} "
                      f"{r['description'] if r['available'] else r['status']}" for r in rows)
    _emit(args, rows, f"{'name':<16} {'kind':<9} {'here':<4} description\n{table}")
    return 0


def cmd_backbones(args) -> int:
    from tlviz.backbones import list_backbones

    rows = []
    for s in list_backbones():
        ok, why = s.available()
        rows.append({"name": s.name, "feature_dim": s.feature_dim, "input_size": s.input_size,
                     "offline": ok, "description": s.description, "status": why})
    table = "\n".join(f"{r['name']:<20} {r['feature_dim']:>5} {r['input_size']:>4}px "
                      f"{'yes' if r['offline'] else 'no ':<4} "
                      f"{r['description'] if r['offline'] else r['status']}" for r in rows)
    _emit(args, rows, f"{'name':<20} {'dim':>5} {'size':>6} {'here':<4} description\n{table}")
    return 0


def cmd_embed(args) -> int:
    from tlviz.data import load_dataset
    from tlviz.embed import embed
    from tlviz.metrics import separation_report

    ds = load_dataset(args.dataset, seed=args.seed, download=args.download)
    _warn_dataset(ds)
    t0 = time.perf_counter()
    emb = embed(ds, args.backbone, backend=args.backend, progress=_progress_bar("embed"),
                int8=args.int8, engine=args.engine, address=args.address, actors=args.actors)
    secs = time.perf_counter() - t0
    rep = separation_report(*emb.split(None))
    out = {"dataset": ds.name, "backbone": args.backbone, "images": len(ds),
           "dim": int(emb.features.shape[1]), "seconds": round(secs, 3), "from_cache": emb.from_cache,
           "images_per_second": round(len(ds) / secs, 1) if not emb.from_cache else None,
           "engine": args.engine, "failed": len(emb.failed), **{k: round(v, 4) for k, v in rep.items()}}
    _emit(args, out, "\n".join(f"{k:<20} {v}" for k, v in out.items()))
    return 0


def cmd_project(args) -> int:
    import numpy as np

    from tlviz.data import load_dataset
    from tlviz.embed import embed
    from tlviz.project import layout

    ds = load_dataset(args.dataset, seed=args.seed, download=args.download)
    emb = embed(ds, args.backbone, progress=_progress_bar("embed"))
    idx = emb.indices(None)
    t0 = time.perf_counter()
    # the dashboard's key and stratification: a layout made here is a cache hit there
    lay = layout(np.asarray(emb.features[idx]), args.method, args.dim, 0, labels=emb.labels[idx],
                 key=f"{emb.key}:all:{len(idx)}", progress=_progress_bar("project"))
    xy = lay.coords
    secs = time.perf_counter() - t0
    if args.out:
        import pandas as pd

        df = pd.DataFrame(xy, columns=[f"x{k}" for k in range(args.dim)])
        df["label"] = [ds.classes[k] for k in ds.labels[idx]]
        df["split"] = ds.splits[idx]
        df["path"] = [ds.path(int(i)) for i in idx]
        df.to_csv(args.out, index=False)
    out = {"dataset": ds.name, "backbone": args.backbone, "method": args.method, "dim": args.dim,
           "points": len(idx), "fitted": lay.n_fitted, "placed": len(idx) - lay.n_fitted,
           "seconds": round(secs, 3), "out": args.out}
    _emit(args, out, "\n".join(f"{k:<10} {v}" for k, v in out.items()))
    return 0


def cmd_train(args) -> int:
    from tlviz.train import TrainConfig, train

    params = _json_arg("--params", args.params) if args.params else {}
    augment = None
    if args.augment:
        from tlviz.augment import AugmentConfig

        augment = (AugmentConfig.book() if args.augment == "book" else
                   AugmentConfig.from_dict(_json_arg("--augment", args.augment))).to_dict()
    cfg = TrainConfig(dataset=args.dataset, backbone=args.backbone, head=args.head,
                      head_params=params, mode=args.mode, augment=augment, epochs=args.epochs,
                      seed=args.seed, name=args.name)
    from tlviz.data import load_dataset

    ds = load_dataset(args.dataset, seed=args.seed, download=args.download)
    _warn_dataset(ds)
    res = train(cfg, dataset=ds, progress=_progress_bar("train"))
    obj = res.to_json()
    lines = [f"run {res.run_id}: {cfg.mode} {cfg.backbone} + {cfg.head} on {ds.name}"]
    for split in ("train", "val", "test"):
        if obj.get(f"{split}_accuracy") is not None:
            lo, hi = obj[f"{split}_interval"]
            lines.append(f"  {split:<5} accuracy {obj[f'{split}_accuracy']:.3f}  95% CI "
                         f"[{lo:.3f}, {hi:.3f}]  n={obj[f'n_{split}']}")
    if obj.get("val_ece") is not None:
        t = obj.get("temperature")
        lines.append(f"  val ECE {obj['val_ece']:.3f} (expected calibration error, 15 bins)"
                     + ("" if t is None else f"; probabilities scaled by temperature {t:g}"))
    if obj.get("chosen"):
        lines.append("  chosen on the train split: "
                     + ", ".join(f"{k}={v}" for k, v in obj["chosen"].items()))
    lines.append(f"  {res.seconds:.1f} s")
    _emit(args, obj, "\n".join(lines))
    return 0


def cmd_runs(args) -> int:
    from tlviz.runs import Ledger

    led = Ledger()
    if args.action == "list":
        df = led.list_runs()
        _emit(args, df.to_dict(orient="records"), df.to_string(index=False) if len(df) else "no runs yet")
    elif args.action == "show":
        run = led.get_run(_one_id(args))
        hist = run.pop("history")
        print(json.dumps(run, indent=2, default=str))
        print(hist.to_string(index=False))
        if args.json:
            run["history"] = hist.to_dict(orient="records")
            print(json.dumps(run, default=str))
    elif args.action == "compare":
        df = led.compare(args.ids)
        _emit(args, df.to_dict(orient="records"), df.to_string(index=False))
    elif args.action == "delete":
        n = led.delete(args.ids)
        _emit(args, {"deleted": n}, f"deleted {n} run(s)")
    elif args.action == "export":
        if not args.out:
            raise SystemExit("export needs --out FILE.csv or FILE.json")
        ids = args.ids or led.list_runs()["id"].tolist()
        path = led.export(ids, args.out)
        _emit(args, {"exported": len(ids), "path": str(path)}, f"wrote {len(ids)} run(s) to {path}")
    return 0


def _json_arg(flag: str, text: str) -> dict:
    """A JSON object given on the command line, or a one-line message saying what is wrong."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise SystemExit(f"{flag} is not valid JSON ({e}): {text}") from None
    if not isinstance(obj, dict):
        raise SystemExit(f'{flag} must be a JSON object such as \'{{"C": 0.5}}\', not {text}')
    return obj


def _one_id(args) -> int:
    if len(args.ids) != 1:
        raise SystemExit("give exactly one run id")
    return args.ids[0]


def _pct(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def _warn_dataset(ds) -> None:
    for path, reason in ds.skipped[:10]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(ds.skipped) > 10:
        print(f"... and {len(ds.skipped) - 10} more skipped files", file=sys.stderr)
    for w in ds.warnings:
        print(f"warning: {w}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlviz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, dataset=True, backbone=True):
        sp.add_argument("--json", action="store_true", help="one JSON object on the last line")
        if dataset:
            sp.add_argument("--dataset", default="digits", help="registered name, folder or .zip")
            sp.add_argument("--download", action="store_true", help="download if missing (online)")
            sp.add_argument("--seed", type=int, default=0)
        if backbone:
            sp.add_argument("--backbone", default="mobilenet_v2")
        return sp

    s = common(sub.add_parser("datasets", help="list datasets and whether they are here"),
               dataset=False, backbone=False)
    s.add_argument("--download", metavar="NAME", help="download a dataset (online)")
    common(sub.add_parser("backbones", help="list backbones and whether they work offline"),
           dataset=False, backbone=False)
    s = common(sub.add_parser("embed", help="embed a dataset (cached) and print separation"))
    s.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    s.add_argument("--int8", action="store_true", help="INT8-quantised ONNX model")
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: threads + one session (default); ray: Ray Data actors writing "
                   "Parquet shards (pip install -r requirements-scale.txt)")
    s.add_argument("--address", help="with --engine ray: a running cluster's address "
                   "(e.g. 10.0.0.1:6379 or auto); default: start a local one")
    s.add_argument("--actors", type=int, help="with --engine ray: actors in the pool")
    s = common(sub.add_parser("project", help="UMAP/PCA/t-SNE of a dataset's embedding"))
    s.add_argument("--method", default="umap", choices=["umap", "pca", "tsne"])
    s.add_argument("--dim", type=int, default=2, choices=[2, 3])
    s.add_argument("--out", help="write the layout as CSV")
    s = common(sub.add_parser("train", help="train a head or a model; store the run"))
    s.add_argument("--head", default="logistic")
    s.add_argument("--params", help='head hyper-parameters as JSON, e.g. \'{"C": 0.5}\'')
    s.add_argument("--mode", default="feature-extraction")
    s.add_argument("--augment", help='"book" or a JSON AugmentConfig')
    s.add_argument("--epochs", type=int)
    s.add_argument("--name")
    s = common(sub.add_parser("runs", help="list, show, compare, delete or export runs"),
               dataset=False, backbone=False)
    s.add_argument("action", choices=["list", "show", "compare", "delete", "export"])
    s.add_argument("ids", nargs="*", type=int)
    s.add_argument("--out")
    _extend_parser(sub, common)
    return p


# the ladder's steps, named here so that --help needs no import of the ladder (tested)
LADDER_STEPS = ("pixels-mlp", "scratch-cnn", "scratch-cnn+aug", "feature-extraction", "fine-tune")


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}") from None


def cmd_ladder(args) -> int:
    from tlviz.data import load_dataset
    from tlviz.ladder import run_ladder

    ds = load_dataset(args.dataset, seed=0, download=args.download)
    _warn_dataset(ds)
    options = _json_arg("--options", args.options) if args.options else None
    res = run_ladder(ds, backbone=args.backbone, head=args.head, seeds=_ints(args.seeds),
                     modes=args.steps.split(",") if args.steps else None,
                     ledger=None if args.no_ledger else True,
                     progress=_progress_bar("ladder") if sys.stderr.isatty() else None,
                     options=options)
    print(f"ladder on {ds.name} ({args.backbone} + {args.head})\n{res.to_text()}")
    if args.json:
        print(json.dumps({"dataset": ds.name, "backbone": args.backbone, "head": args.head,
                          **res.to_json()}, default=str))
    return 0


def cmd_curve(args) -> int:
    from tlviz.ladder import images_per_class_curve
    from tlviz.metrics import accuracy_text

    sizes = [None if s.strip().lower() == "all" else _ints(s)[0] for s in args.sizes.split(",")]
    df = images_per_class_curve(args.dataset, args.backbone, args.head, sizes, _ints(args.seeds),
                                progress=_progress_bar("curve") if sys.stderr.isatty() else None)
    lines = [f"{'per class':>9} {'images':>7} {'val accuracy ± std (95% CI)':>28}"]
    lines += [f"{r.label:>9} {r.n_train:>7.0f} {accuracy_text(r.val_mean, r.n_val, r.val_std):>28}"
              for r in df.itertuples()]
    print("\n".join(lines))
    if args.json:
        print(json.dumps(df.to_dict(orient="records")))
    return 0


def cmd_export(args) -> int:
    """Write a run's model: ``model.onnx`` (+ model.json) or ``model.safetensors`` (+ json)."""
    from tlviz.export import export_run
    from tlviz.runs import Ledger

    paths = export_run(Ledger(), args.run_id, args.out, onnx=args.format == "onnx")
    if args.format == "safetensors":
        paths.pop("onnx", None)
    out = {"run_id": args.run_id, "format": args.format, **{k: str(v) for k, v in paths.items()}}
    _emit(args, out, "\n".join(f"wrote {v}" for k, v in paths.items()))
    return 0


def cmd_eval(args) -> int:
    """Every dataset x backbone x head with default hyper-parameters: accuracy with intervals."""
    from tlviz.evaluate import evaluate, format_table

    rows = evaluate(args.dataset or ["digits"], args.backbone or ["mobilenet_v2"],
                    args.head or ["knn", "logistic"], seed=args.seed,
                    progress=_progress_bar("eval") if sys.stderr.isatty() else None)
    _emit(args, [r.to_dict() for r in rows], format_table(rows))
    return 0


def cmd_label_issues(args) -> int:
    """Likely mislabelled images (confident learning on out-of-fold probabilities)."""
    from tlviz.data import load_dataset
    from tlviz.embed import embed
    from tlviz.explore import label_issues

    ds = load_dataset(args.dataset, seed=args.seed, download=args.download)
    _warn_dataset(ds)
    emb = embed(ds, args.backbone, progress=_progress_bar("embed"))
    df = label_issues(emb.features, emb.labels, mask=emb.valid)
    ranked = [{"index": int(r.index), "path": ds.path(int(r.index)), "label": ds.classes[r.label],
               "given_prob": round(float(r.given_prob), 4), "suggested": ds.classes[r.suggested],
               "suggested_prob": round(float(r.suggested_prob), 4)} for r in df.itertuples()]
    total = int(emb.valid.sum())
    lines = [f"{len(ranked)} of {total} images flagged as possible label errors "
             f"({len(ranked) / max(total, 1):.1%}), most suspicious first:"]
    lines += [f"  #{r['index']:<6} labelled {r['label']!r} (p={r['given_prob']:.2f}), looks like "
              f"{r['suggested']!r} (p={r['suggested_prob']:.2f})  {r['path']}" for r in ranked[:20]]
    _emit(args, {"dataset": ds.name, "backbone": args.backbone, "flagged": len(ranked),
                 "total": total, "ranked": ranked}, "\n".join(lines))
    return 0


def cmd_synth_features(args) -> int:
    """A features-only set of ``--n`` synthetic points from a real dataset's features."""
    from tlviz.synth import make_feature_set

    t0 = time.perf_counter()
    folder = make_feature_set(args.name, args.n, args.dataset, args.backbone, dim=args.dim,
                              noise=args.noise, seed=args.seed, progress=_progress_bar("synth"))
    out = {"name": args.name, "rows": args.n, "source": args.dataset, "backbone": args.backbone,
           "dim": args.dim, "folder": str(folder), "seconds": round(time.perf_counter() - t0, 2),
           "open": f"the dashboard's dataset picker, or --dataset {args.name} --backbone stored"}
    _emit(args, out, "\n".join(f"{k:<10} {v}" for k, v in out.items()))
    return 0


def _extend_parser(sub, common) -> None:
    s = common(sub.add_parser("ladder", help="the seeds' ladder: pixels, scratch CNN, +aug, "
                              "feature extraction, fine-tune; mean ± std over seeds"))
    s.add_argument("--head", default="logistic")
    s.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    s.add_argument("--steps", help=f"comma-separated subset of: {', '.join(LADDER_STEPS)}")
    s.add_argument("--options", help='per-step overrides as JSON, e.g. \'{"fine-tune": {"epochs": 5}}\'')
    s.add_argument("--no-ledger", action="store_true", help="do not store the runs")
    s = common(sub.add_parser("curve", help="accuracy vs images per class (frozen backbone + head)"))
    s.add_argument("--head", default="logistic")
    s.add_argument("--sizes", default="5,10,20,40,all")
    s.add_argument("--seeds", default="0,1,2")
    s = common(sub.add_parser("eval", help="accuracy with 95%% intervals of the default heads, "
                              "per dataset and backbone (how defaults are judged)"),
               dataset=False, backbone=False)
    s.add_argument("--dataset", action="append", help="repeatable: names, folders or zips")
    s.add_argument("--backbone", action="append", help="repeatable")
    s.add_argument("--head", action="append", choices=["knn", "logistic", "mlp"], help="repeatable")
    s.add_argument("--seed", type=int, default=0)
    common(sub.add_parser("label-issues", help="likely mislabelled images (confident learning)"))
    s = common(sub.add_parser("synth-features", help="a features-only set of N synthetic points "
                              "(a real dataset's features + noise) for the large-map views"))
    s.add_argument("--name", default="synthetic-1m")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--dim", type=int, default=64, help="principal components kept")
    s.add_argument("--noise", type=float, default=1.0, help="noise, x each component's spread")
    s.set_defaults(dataset="cifar10-small")
    s = common(sub.add_parser("export", help="write a run's model as ONNX or safetensors"),
               dataset=False, backbone=False)
    s.add_argument("run_id", type=int)
    s.add_argument("--format", choices=["onnx", "safetensors"], default="onnx")
    s.add_argument("--out", required=True, help="a folder for model.onnx / model.safetensors "
                   "and model.json (created)")


COMMANDS = {"datasets": cmd_datasets, "backbones": cmd_backbones, "embed": cmd_embed,
            "project": cmd_project, "train": cmd_train, "runs": cmd_runs, "ladder": cmd_ladder,
            "curve": cmd_curve, "eval": cmd_eval, "label-issues": cmd_label_issues,
            "export": cmd_export, "synth-features": cmd_synth_features}


def main(argv: list[str] | None = None) -> int:
    from tlviz.errors import TlvizError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(f"tlviz: {e.code}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("tlviz: interrupted", file=sys.stderr)
        return 130
    except TlvizError as e:  # everything tlviz refuses: one line, exit 2
        print(f"tlviz: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the user named cannot be read or written
        print(f"tlviz: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
