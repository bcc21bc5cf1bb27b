"""``vsent layers``: linear probes on every layer of a crossval run's models (Campos Table 2).

Thin layer over :func:`vsent.analyses.layers.layer_probes`; the analysis (torch, scikit-learn)
is imported when the command runs. :data:`CLASSIFIERS` and :data:`DEFAULT_CS` repeat those of
:mod:`vsent.analyses.probes` (tests/test_cli.py checks they agree).
"""

from __future__ import annotations

import argparse

from vsent.cli.common import add_run_args, comma_list, progress_enabled

CLASSIFIERS = ("svm", "softmax")
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layers", help="layer-by-layer linear probes of a crossval run (Table 2)",
        description="For each fold, extract every probe layer's activations with the model "
                    "fine-tuned on that fold's training images, then train a linear SVM and a "
                    "softmax classifier per layer (C by inner CV on the training images) and "
                    "score them on the fold's test images. The analysis continues in --out "
                    "when rerun with the same probe settings (more folds or layers may be "
                    "added; finished ones are reused); the table covers the folds and layers "
                    "of the command that wrote it, so run it once more without --fold-ids or "
                    "--layers for the whole table; --overwrite starts again.",
    )
    p.add_argument("--run", required=True, help="crossval run directory (fold<k>/model.pt)")
    # no --resume: a layer analysis always continues in place (see layer_probes)
    add_run_args(p, "runs/layers", resume=False)
    p.add_argument("--layers", type=comma_list(str),
                   help="comma-separated probe layers (default: all of the model's)")
    p.add_argument("--fold-ids", type=comma_list(int), dest="fold_ids",
                   help="comma-separated fold numbers (default: all)")
    p.add_argument("--classifiers", type=comma_list(str), default=list(CLASSIFIERS),
                   help=f"comma-separated subset of {','.join(CLASSIFIERS)} (default both)")
    p.add_argument("--Cs", type=comma_list(float), default=list(DEFAULT_CS),
                   help="grid of C for the inner cross-validation "
                        f"(default {','.join(f'{c:g}' for c in DEFAULT_CS)})")
    p.add_argument("--inner-splits", type=int, default=5,
                   help="folds of the inner stratified CV choosing C (default 5)")
    p.add_argument("--max-features", default="auto",
                   help="average-pool spatial activations with more values per image to at most "
                        "this many; 'auto': caffenet raw, other models 65536; 'none': all raw")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument("--delete-features", action="store_true",
                   help="delete each fold's feature files once its results exist (CaffeNet "
                        "features take ~3.2 GB per fold; the Gram matrices are kept)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsent.analyses.layers import LayersConfig, layer_probes
    from vsent.analyses.probes import ProbeConfig
    from vsent.metrics import mean_std_text

    # the records validate every option (VsentError naming it)
    probe = ProbeConfig(Cs=tuple(args.Cs), inner_splits=args.inner_splits, seed=args.seed,
                        classifiers=tuple(args.classifiers))
    cfg = LayersConfig(run=args.run, probe=probe, layers=args.layers, folds=args.fold_ids,
                       max_features=args.max_features, batch_size=args.batch_size,
                       device=args.device, keep_features=not args.delete_features)
    summary = layer_probes(cfg, args.out, progress=progress_enabled(args.no_progress),
                           overwrite=args.overwrite)
    for name, entry in summary.items():
        cells = "  ".join(f"{c} {mean_std_text(entry[c], len(entry[c]['folds']))}"
                          for c in probe.classifiers if c in entry)
        print(f"{name:<12} {cells}")
    print(f"results in {args.out}/layers.md")
    return 0
