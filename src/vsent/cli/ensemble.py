"""``vsent ensemble``: the mean prediction of several finished cross-validation runs.

Thin layer over :func:`vsent.analyses.ensemble.ensemble_runs`; the output directory is laid out
as a crossval run, so ``vsent fuse`` works on it.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble", help="mean prediction of several crossval runs (issue 10)",
        description="Average P(positive) image by image over finished `vsent crossval` runs "
                    "made on the same images and folds (other seeds, recipes or models), "
                    "centre crop and 10-crop, and score it fold by fold. No weights, nothing "
                    "chosen on a test fold. The output is laid out as a crossval run "
                    "(`vsent fuse OUT` fuses it with hand-crafted features).")
    p.add_argument("runs", nargs="+", help="finished crossval run directories (two or more)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the output directory and start again")
    p.set_defaults(func=run_ensemble)


def run_ensemble(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vsent.analyses.ensemble import copy_folds, ensemble_runs
    from vsent.metrics import summary_markdown
    from vsent.runs import SUMMARY, check_inputs, open_run_dir

    res = ensemble_runs(args.runs)
    summary, rows = res["summary"], res["rows"]
    # the members' stored predictions are averaged: their images are not read here; no
    # --resume: an unfinished ensemble (interrupted) is simply written again
    with open_run_dir(args.out, res["config"], resume=True, overwrite=args.overwrite,
                      done=SUMMARY, check_paths=False, resume_asked=False) as run:
        check_inputs(run, [Path(r) / "predictions.csv" for r in args.runs])
        if run.status != "finished":
            copy_folds(args.runs[0], run.path)
            run.write_csv("predictions.csv", rows, list(rows[0]))
            members = "\n".join(f"| `{m['run']}` | {m['accuracy']['mean']:.3f} +- "
                                f"{m['accuracy']['std']:.3f} |" for m in summary["members"])
            run.write_text("summary.md", summary_markdown(
                summary, f"Ensemble (mean P(positive)) of {len(args.runs)} runs, centre crop")
                + "\n| member run | its own accuracy (centre crop) |\n|---|---|\n"
                + members + "\n")
            run.write_json(SUMMARY, summary)  # written last: marks the ensemble done
        summary = run.read_json(SUMMARY)
    acc = summary["accuracy"]
    line = f"ensemble accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (centre crop"
    if "ten_crop" in summary:
        t = summary["ten_crop"]["accuracy"]
        line += f"; 10-crop {t['mean']:.3f} +- {t['std']:.3f}"
    print(f"{line}); results in {args.out}/summary.md")
    return 0
