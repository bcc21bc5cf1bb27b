"""``vsent regions``: affective regions evaluated on a cross-validation run (Sun et al. 2016).

The method (proposals scored by objectness and sentiment, the top K fused with the whole
image) is :mod:`vsent.analyses.regions`; here each fold's fine-tuned model applies it to that
fold's test images (and, for early fusion, its training images), and the folds' accuracies
make Sun et al.'s Table 1 (every ranking at K) and Figure 4 (accuracy against K = 1..k_max).
Each fold's proposals and scores are kept in ``fold<k>/regions.npz`` and reused by
``--resume``; a finished run whose crossval run changed since is refused
(:func:`vsent.crossval_run.run_moved_since`, ``inputs.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from vsent import figures, papers
from vsent.analyses.proposals import BOXES, cached_proposals, make_edge_detector
from vsent.analyses.regions import (
    RANKINGS,
    RegionConfig,
    affective_score,
    decode_views,
    fusion_curve,
    normalize_objectness,
    rank_regions,
    score_regions,
    sentiment_score,
)
from vsent.data.images import load_rgb
from vsent.errors import VsentError
from vsent.files import NPZ_READ_ERRORS, atomic_open, file_sha256
from vsent.inference import prefetch
from vsent.metrics import mean_std_text

__all__ = ["METHODS", "evaluate_regions", "scored_with_current_models"]

log = logging.getLogger("vsent")


#: Table 1 rows: key -> description.
METHODS = {
    "global": "whole image only (the fine-tuned model, centre crop)",
    "random": "late fusion, K random proposals (sanity baseline)",
    "objectness": "late fusion, top-K by objectness only",
    "sentiment": "late fusion, top-K by sentiment score only",
    "ar": "late fusion, top-K by affective score AR (Sun et al.)",
    "global_linear": "linear classifier on whole-image features (control for early fusion)",
    "early_fusion": "linear classifier on [whole-image, mean top-K AR region] features",
}


def _score_set(model, paths, cfg: RegionConfig, detector, device, *, keep_regions: bool,
               progress: bool, desc: str) -> dict[str, np.ndarray]:
    """Score every image of ``paths``: ragged region arrays + top-K AR feature means."""
    from vsent.progress import progress_bar

    glob_p, glob_f, ef, offsets = [], [], [], [0]
    boxes, obj, probs, fallback, secs = [], [], [], [], []
    size = model.info.preprocess.resize
    # one decoding thread, one image ahead: the network already uses the cores
    decoded = prefetch(lambda p: decode_views(p, size), paths, workers=1, ahead=1)
    for path, images, error in progress_bar(decoded, total=len(paths), desc=desc,
                                            enabled=progress, unit="img"):
        if error is not None:
            raise error  # the crossval run decoded these images: a failure now is a real error
        rgb, glob = images
        props = cached_proposals(path, rgb, cfg.proposals, detector)
        s = score_regions(model, rgb, props, global_view=glob, batch_size=cfg.batch_size,
                          device=device, features=cfg.early_fusion)
        glob_p.append(s.global_probs)
        if cfg.early_fusion:
            top = s.order("ar", cfg.alpha, senti_log=cfg.senti_log)[: cfg.k]
            glob_f.append(s.global_features)
            ef.append(s.features[top].mean(axis=0))
        if keep_regions:
            boxes.append(s.boxes)
            obj.append(s.objectness)
            probs.append(s.probs)
            offsets.append(offsets[-1] + len(s.boxes))
            fallback.append(s.fallback)
            secs.append([s.seconds["proposals"], s.seconds["crop"], s.seconds["score"]])
    out = {"global_probs": np.stack(glob_p).astype(np.float32)}
    if cfg.early_fusion:
        out["global_features"] = np.stack(glob_f).astype(np.float32)
        out["region_features"] = np.stack(ef).astype(np.float32)
    if keep_regions:
        out.update(boxes=np.concatenate(boxes).astype(np.int32),
                   objectness=np.concatenate(obj).astype(np.float32),
                   probs=np.concatenate(probs).astype(np.float32),
                   offsets=np.asarray(offsets, np.int64), fallback=np.asarray(fallback),
                   seconds=np.asarray(secs, np.float64))
    return out


def _fold_regions(run, fold, cfg: RegionConfig, detector, device, out: Path,
                  progress: bool) -> dict[str, np.ndarray]:
    """Score fold ``fold``'s test (and, for early fusion, training) images; cached in npz."""
    file = out / f"fold{fold.index}" / "regions.npz"
    ckpt = run.checkpoint(fold.index)
    sha = file_sha256(ckpt)
    if file.exists():
        try:
            with np.load(file) as z:
                res = dict(z)
        except NPZ_READ_ERRORS as e:  # damaged outside
            log.warning("fold %d: %s is unreadable (%s): scoring fold %d again", fold.index,
                        file, e, fold.index)
            res = {"checkpoint_sha256": ""}
        kept = str(res.pop("checkpoint_sha256", sha))  # absent: scored by an older vsent
        origin = str(res.pop("boxes_origin", ""))
        if kept == sha and origin == BOXES:
            log.info("fold %d: regions already scored (%s)", fold.index, file)
            return res
        if kept == sha:  # one table must not mix the two readings of EdgeBoxes' boxes
            log.warning("fold %d: %s was scored with EdgeBoxes' boxes one pixel off (a vsent "
                        "before their 1-based x, y were read as such): scoring fold %d again",
                        fold.index, file, fold.index)
        elif kept:
            log.warning("fold %d: %s is not the model %s was scored with (the run was "
                        "trained again?): scoring fold %d again", fold.index, ckpt, file,
                        fold.index)
    model, _ = run.load_model(fold.index, map_location=device)  # refuses another fold's
    ds = run.dataset
    test = np.sort(fold.test)
    res = {"test_index": test, "test_labels": ds.labels[test]}
    t = _score_set(model, [ds.paths[i] for i in test], cfg, detector, device, keep_regions=True,
                   progress=progress, desc=f"fold {fold.index} test regions")
    res["test_global_probs"] = t.pop("global_probs")
    if cfg.early_fusion:
        res["test_global_features"] = t.pop("global_features")
        res["test_region_features"] = t.pop("region_features")
    res.update(t)  # boxes, objectness, probs, offsets, fallback, seconds (test images)
    if cfg.early_fusion:  # (features of the images the fold model was fine-tuned on: said
        train = np.sort(fold.train)  # in the README; held out, they would need nested runs)
        tr = _score_set(model, [ds.paths[i] for i in train], cfg, detector, device,
                        keep_regions=False, progress=progress,
                        desc=f"fold {fold.index} train regions")
        res.update(train_index=train, train_labels=ds.labels[train],
                   train_global_features=tr["global_features"],
                   train_region_features=tr["region_features"])
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(file, "wb") as f:  # written last: marks the fold done
        np.savez(f, **res, checkpoint_sha256=np.asarray(sha), boxes_origin=np.asarray(BOXES))
    return res


def _linear_classifier(x_train, y_train, x_test, seed: int) -> np.ndarray:
    """Early fusion's classifier (and its whole-image control): standardised features, a
    logistic regression at C = 1, fixed in advance (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000,
                                                             random_state=seed))
    clf.fit(x_train, y_train)
    return clf.predict(x_test)


def _fold_predictions(res: dict[str, np.ndarray], cfg: RegionConfig, fold_index: int
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Predictions of every method at K, the K sweep's predictions, and per-image details."""
    gp = res["test_global_probs"]
    offsets = res["offsets"]
    n = len(gp)
    rng = np.random.default_rng([cfg.seed, fold_index])
    curves = {by: np.empty((n, cfg.k_max, gp.shape[1])) for by in RANKINGS}
    orders = {}
    for i in range(n):
        sl = slice(offsets[i], offsets[i + 1])
        obj, probs = res["objectness"][sl], res["probs"][sl]
        for by in RANKINGS:
            order = rank_regions(obj, probs, by=by, alpha=cfg.alpha, rng=rng,
                                 senti_log=cfg.senti_log)
            curves[by][i] = fusion_curve(gp[i], probs[order[: cfg.k_max]], cfg.beta, cfg.k_max)
            if by == "ar":
                orders[i] = order
    sweep = {by: c.argmax(axis=2) for by, c in curves.items()}  # (n, k_max)
    at_k = {"global": gp.argmax(axis=1), **{by: s[:, cfg.k - 1] for by, s in sweep.items()}}
    if cfg.early_fusion:
        ytr = res["train_labels"]
        gtr, rtr = res["train_global_features"], res["train_region_features"]
        gte, rte = res["test_global_features"], res["test_region_features"]
        at_k["global_linear"] = _linear_classifier(gtr, ytr, gte, cfg.seed)
        at_k["early_fusion"] = _linear_classifier(np.hstack([gtr, rtr]), ytr,
                                                  np.hstack([gte, rte]), cfg.seed)
    fused = curves["ar"][:, cfg.k - 1] / (1.0 + cfg.beta)
    return at_k, sweep, {"orders": orders, "fused": fused}


def evaluate_regions(
    run_dir: str | Path, out: str | Path, cfg: RegionConfig = RegionConfig(), *,
    resume: bool = False, overwrite: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Affective-region evaluation of a cross-validation run (Sun et al. 2016, Table 1, Fig. 4).

    Each fold's fine-tuned model scores the proposals of that fold's test images. Writes into
    ``out``: ``table1.{json,csv,md}`` (accuracy etc. mean +- std over folds for every method at
    K), ``k_sweep.{json,csv,png}`` (accuracy vs K = 1..k_max), ``predictions.csv`` (one row per
    test image), ``cost.json`` (seconds per image), ``overlays/*.png``, ``fold<k>/regions.npz``
    (all proposals and scores, reused on ``resume``), ``config.json``, ``run.log``.

    Returns
    -------
    The table as a dict: method -> summary of :func:`vsent.metrics.summarize_folds`.
    """
    from vsent.crossval_run import open_run, record_run_read, run_moved_since
    from vsent.inference import resolve_device
    from vsent.metrics import binary_metrics, summarize_folds
    from vsent.runs import Timer, open_run_dir

    out = Path(out)
    run = open_run(run_dir)
    detector = make_edge_detector(cfg.edge_model)
    device = resolve_device(cfg.device)
    config = {"command": "regions", "run": str(Path(run_dir).resolve()),
              "subset": run.dataset.subset, "model": run.config.model,
              "edge_detector": detector.name, **cfg.to_dict(),
              "crop_policy": "box cropped from the original image, warped to "
                             "preprocess.resize, centre crop (as the whole image); whole "
                             "image through load_resized"}
    folds = _selected_folds(run, cfg)  # before --out is opened: a wrong --folds leaves it be
    for fold in folds:  # every fold's model now, not after the first folds' work
        run.checkpoint(fold.index)
    timer = Timer()
    # vsent.runs.open_run_dir: a run there is continued only with --resume and the same
    # scoring settings (the per-fold regions.npz are reused); --overwrite starts again
    # a regions run inside its crossval run continues where the two were moved together
    moved = None if overwrite else run_moved_since(out, run.path)
    rd = open_run_dir(out, config, resume=resume, overwrite=overwrite, done=None,
                      compare=[k for k in _SCORING_KEYS if not (moved and k == "run")])
    with rd:
        record_run_read(rd, run, moved)
        log.info("regions: %s (%s, %s), %s, edge detector %s, N=%d K=%d",
                 run.path, run.config.model, run.dataset.title,
                 f"{len(run.folds)} folds" if len(folds) == len(run.folds)
                 else f"folds {[f.index for f in folds]} of {len(run.folds)}",
                 detector.name, cfg.proposals.n_proposals, cfg.k)
        per_fold: dict[str, list[dict]] = {m: [] for m in METHODS}
        sweep_acc: dict[str, list[list[float]]] = {by: [] for by in RANKINGS}
        sweep_one: dict[str, list[list[bool]]] = {by: [] for by in RANKINGS}  # one class at K
        rows, all_res = [], []
        for fold in folds:
            res = _fold_regions(run, fold, cfg, detector, device, out, progress)
            at_k, sweep, detail = _fold_predictions(res, cfg, fold.index)
            y = res["test_labels"]
            for method, pred in at_k.items():
                per_fold[method].append({"fold": fold.index, **binary_metrics(y, pred)})
            for by, s in sweep.items():
                sweep_acc[by].append([float((s[:, k] == y).mean()) for k in range(cfg.k_max)])
                # the fold's fusion answered a single class at K (learnt the prior only)
                sweep_one[by].append([bool((s[:, k] == s[0, k]).all()) for k in range(cfg.k_max)])
            rows.extend(_prediction_rows(run, res, at_k, detail, cfg, fold.index))
            all_res.append((fold.index, res, detail))
            log.info("fold %d: global %.3f, AR late fusion %.3f%s", fold.index,
                     per_fold["global"][-1]["accuracy"], per_fold["ar"][-1]["accuracy"],
                     f", early fusion {per_fold['early_fusion'][-1]['accuracy']:.3f}"
                     if cfg.early_fusion else "")
        table = {m: summarize_folds(v) for m, v in per_fold.items() if v}
        _write_table(rd, table, cfg, run)
        _write_sweep(rd, sweep_acc, sweep_one, table["global"], cfg, run)
        rd.write_csv("predictions.csv", rows, list(rows[0]))
        cost = _cost(all_res, cfg)
        cost["total_seconds"] = timer.elapsed
        if cost["fallback_images"] > cost["images"] / 10:  # (a flat image or two is normal)
            log.warning("%d of %d test images had no proposal (none of --min-box-area %d px or "
                        "more in the image, downscaled to at most %d px): their only region is the "
                        "whole image, so AR equals global there", cost["fallback_images"],
                        cost["images"], cfg.proposals.min_box_area, cfg.proposals.max_side)
        rd.write_json("cost.json", cost)
        # a resume may change what only selects or presents (beta, seed, K sweep, folds): the
        # tables and overlays are this session's, and so is the config beside them
        for old in (rd / "overlays").glob("*.png"):
            old.unlink()
        if cfg.overlays:
            _write_overlays(rd, run, all_res, cfg)
        rd.write_json("config.json", config)
        log.info("regions: global %.3f, AR late fusion (K=%d) %s  [%s]",
                 table["global"]["accuracy"]["mean"], cfg.k,
                 mean_std_text(table["ar"]["accuracy"], len(table["ar"]["folds"])), rd.path)
        return table


def scored_with_current_models(run_dir: str | Path, out: str | Path) -> bool:
    """True when ``out`` holds a finished regions run (``cost.json``) whose every scored fold
    was scored with the model that fold's directory in ``run_dir`` holds now (a reproduction
    reuses such a sub-run; one of a run trained again is scored again).

    A fold whose model is gone (``results/`` keeps the small files of runs, no models) has no
    newer model to score again with, and nothing to score with: its scores stand, as do
    those of a run kept without its ``regions.npz`` files and models alike.
    """
    from vsent.runs import FOLD_MODEL, fold_dir

    out = Path(out)
    if not (out / "cost.json").exists():
        return False
    try:  # the table a report reads, deleted or cut: the run (resumed) writes it again
        if not isinstance(json.loads((out / "table1.json").read_text()).get("results"), dict):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    files = sorted(out.glob("fold*/regions.npz"))
    if not files:
        return not any(Path(run_dir).glob(f"fold*/{FOLD_MODEL}"))
    for file in files:
        ckpt = fold_dir(run_dir, int(file.parent.name.removeprefix("fold"))) / FOLD_MODEL
        try:
            with np.load(file) as z:
                kept = str(z["checkpoint_sha256"])
                origin = str(z["boxes_origin"]) if "boxes_origin" in z.files else ""
        except NPZ_READ_ERRORS:
            return False
        if origin != BOXES or (ckpt.is_file() and kept != file_sha256(ckpt)):
            return False
    return True


def _selected_folds(run, cfg: RegionConfig) -> list:
    if cfg.folds is None:
        return run.folds
    known = {f.index for f in run.folds}
    unknown = sorted(set(cfg.folds) - known)
    if unknown:
        raise VsentError(f"--folds {unknown}: the run has folds {sorted(known)}")
    return [f for f in run.folds if f.index in set(cfg.folds)]


#: Config keys a resumed regions run must share with the stored one (the others select work
#: or only change the outputs' presentation).
_SCORING_KEYS = ("run", "edge_detector", "proposals", "alpha", "senti_log", "k",
                 "early_fusion", "crop_policy")


def _prediction_rows(run, res, at_k, detail, cfg, fold_index) -> list[dict]:
    rows = []
    for i, idx in enumerate(res["test_index"]):
        sl = slice(res["offsets"][i], res["offsets"][i + 1])
        top = detail["orders"][i][: cfg.k]
        rows.append({
            "name": run.dataset.names[idx], "fold": fold_index, "label": int(res["test_labels"][i]),
            "prob_positive_global": round(float(res["test_global_probs"][i][1]), 6),
            "prob_positive_fused": round(float(detail["fused"][i][1]), 6),
            **{f"pred_{m}": int(p[i]) for m, p in at_k.items()},
            "n_proposals": int(sl.stop - sl.start), "fallback": bool(res["fallback"][i]),
            "top_boxes": json.dumps(res["boxes"][sl][top].tolist()),
        })
    return rows


def _fmt(s: dict, n_folds: int) -> str:
    return mean_std_text(s, n_folds, digits=2, scale=100)


def _write_table(rd, table: dict, cfg: RegionConfig, run) -> None:
    rd.write_json("table1.json", {"k": cfg.k, "alpha": cfg.alpha, "beta": cfg.beta,
                                  "senti_log": cfg.senti_log, "methods": METHODS,
                                  "results": table})
    metrics = ("accuracy", "precision", "recall", "f1")
    csv_rows = [{"method": m, **{f"{k}_{s}": table[m][k][s] for k in metrics
                                 for s in ("mean", "std")}} for m in table]
    rd.write_csv("table1.csv", csv_rows, list(csv_rows[0]))
    log_name = "log_M" if cfg.senti_log == "classes" else "ln"
    lines = [
        f"# Affective regions on {run.dataset.title} ({run.config.model}, "
        f"{len(table['global']['folds'])} of {len(run.folds)} folds)", "",
        f"N = {cfg.proposals.n_proposals} proposals, K = {cfg.k}, alpha = {cfg.alpha}, "
        f"beta = {cfg.beta}, sentiment score 1 + sum s {log_name} s. Percent, mean +- std over "
        f"folds.", "",
        "| method | accuracy | precision | recall | F1 |", "|---|---|---|---|---|",
    ]
    for m in table:
        n = len(table[m]["folds"])
        lines.append(f"| {m}: {METHODS[m]} | " + " | ".join(_fmt(table[m][k], n)
                                                            for k in metrics) + " |")
    row = "ft_obj_senti_lf_best"
    best = papers.SUN2016_TABLE1[row]
    quoted = ", ".join(f"{papers.SUN2016_COLUMNS[c]} {100 * best[c].mean:.2f} % (K = {best[c].k})"
                       for c in ("five", "four", "three"))
    lines += ["", f"Published (Sun et al. 2016, Table 1, {papers.SUN2016_ROWS[row]}): {quoted}. "
              f"Their Figure 4 (accuracy against K): {papers.NOT_AVAILABLE_TEXT}.", ""]
    rd.write_text("table1.md", "\n".join(lines))


def _write_sweep(rd, sweep_acc: dict, sweep_one: dict, global_summary: dict, cfg: RegionConfig,
                 run) -> None:
    """``k_sweep.{json,csv,png}``. Per ranking, in the JSON: ``mean``/``std`` per K, and per
    fold the accuracy per K (``folds``) and whether its fusion answered one class (``one_class``,
    the reports' one-class flag)."""
    plt = figures.pyplot()

    ks = list(range(1, cfg.k_max + 1))
    result = {by: {"mean": np.mean(v, axis=0).tolist(), "std": np.std(v, axis=0).tolist(),
                   "folds": v, "one_class": sweep_one[by]} for by, v in sweep_acc.items()}
    rd.write_json("k_sweep.json", {"k": ks, "global": global_summary["accuracy"], **result})
    rows = [{"k": k, **{f"{by}_{s}": result[by][s][k - 1] for by in result
                        for s in ("mean", "std")}} for k in ks]
    rd.write_csv("k_sweep.csv", rows, list(rows[0]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for by, style in zip(RANKINGS, ("o-", "s--", "^--", "x:"), strict=True):
        ax.plot(ks, 100 * np.asarray(result[by]["mean"]), style, label=by, markersize=4)
    # the folds' spread, drawn: differences within it are not results
    whole = global_summary["accuracy"]
    ax.axhline(100 * whole["mean"], color="k", lw=1, label="whole image (+- std: grey)")
    ax.axhspan(100 * (whole["mean"] - whole["std"]), 100 * (whole["mean"] + whole["std"]),
               color="grey", alpha=0.15, lw=0)
    ax.axvline(cfg.k, color="grey", lw=0.8, ls=":", label=f"K = {cfg.k} (table1)")
    ax.set_xlabel("K (regions fused)")
    ax.set_ylabel("accuracy (%), mean over folds")
    ax.set_title(f"Late fusion vs K, {run.config.model}, {run.dataset.title}\n"
                 f"{cfg.proposals.n_proposals} proposals, alpha {cfg.alpha:g}, beta "
                 f"{cfg.beta:g}, senti-log {cfg.senti_log}", fontsize=10)
    ax.set_xticks(ks)
    ax.legend(fontsize=8)
    figures.save_figure(fig, rd / "k_sweep.png", dpi=120)


def _cost(all_res, cfg: RegionConfig) -> dict[str, Any]:
    secs = np.concatenate([res["seconds"] for _, res, _ in all_res])  # (n, 3)
    mean = secs.mean(axis=0)
    return {
        "images": int(len(secs)),
        "seconds_per_image": {"proposals": float(mean[0]), "crop": float(mean[1]),
                              "score": float(mean[2])},
        "proposals_per_image": float(np.mean(np.concatenate(
            [np.diff(res["offsets"]) for _, res, _ in all_res]))),
        "fallback_images": int(sum(res["fallback"].sum() for _, res, _ in all_res)),
        "note": "proposals: edge map + EdgeBoxes when first computed (cached afterwards); "
                "crop + score: N crops and the whole image through the model in one pass, "
                f"batch {cfg.batch_size}, test images only",
    }


def _write_overlays(rd, run, all_res, cfg: RegionConfig) -> None:
    plt = figures.pyplot()
    from matplotlib.patches import Rectangle

    folder = rd / "overlays"
    folder.mkdir(exist_ok=True)
    done = 0
    for fold_index, res, detail in all_res:
        for i, idx in enumerate(res["test_index"]):
            if done >= cfg.overlays:
                return
            sl = slice(res["offsets"][i], res["offsets"][i + 1])
            boxes, probs, obj = res["boxes"][sl], res["probs"][sl], res["objectness"][sl]
            obj = normalize_objectness(obj)  # as AR sees it: 1 = the image's best box
            ar = affective_score(obj, sentiment_score(probs, cfg.senti_log), cfg.alpha)
            top = detail["orders"][i][: cfg.k]
            img = np.asarray(load_rgb(run.dataset.paths[idx]))
            fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
            ax.imshow(img)
            for rank in range(len(top) - 1, -1, -1):  # best drawn last, on top
                j = top[rank]
                x0, y0, x1, y1 = boxes[j]
                color = "lime" if probs[j][1] >= 0.5 else "red"
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color,
                                       lw=2.5 if rank == 0 else 1))
                ax.text(x0 + 1, y0 + 1, str(rank + 1), color="white", fontsize=7, va="top",
                        bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "lw": 0})
            label = "positive" if res["test_labels"][i] == 1 else "negative"
            ax.set_title(f"{run.dataset.names[idx][:40]} ({label}); p+ global "
                         f"{res['test_global_probs'][i][1]:.2f}, fused "
                         f"{detail['fused'][i][1]:.2f}", fontsize=8)
            ax.axis("off")
            legend = "  ".join(f"{r + 1}: AR {ar[j]:.2f} obj {obj[j]:.2f} p+ {probs[j][1]:.2f}"
                               for r, j in enumerate(top[:6]))
            fig.text(0.5, 0.01, legend + ("  ..." if len(top) > 6 else ""), ha="center",
                     fontsize=5, wrap=True)
            name = f"fold{fold_index}_{Path(run.dataset.names[idx]).stem}.png"
            figures.save_figure(fig, folder / name, dpi=100, rect=(0, 0.04, 1, 1))
            done += 1

