"""Model cards: what a checkpoint is, where its weights came from, what it was trained on, how well
it did, and how to feed it.

``model_card(checkpoint)`` reads the checkpoint (without rebuilding the network) and, when the
file sits in a run directory written by ``vsent crossval`` / ``finetune``
(``runs/X/fold<k>/model.pt`` or ``runs/X/model.pt``), that run's ``config.json``,
``summary.json``, ``fold<k>/metrics.json`` (``metrics.json`` for ``finetune --fold K``),
``folds.json`` and ``versions.json``. The card is a
JSON-able dict (layout below); ``card_markdown(card)`` renders it for people::

    {"card_format": "vsent-card/1", "checkpoint": str,
     "model": {"name", "family", "num_classes", "class_names", "options"},
     "weights": {"init", "source", "library", "tag", "licence", "location"},
     "training": {"command", "how", "dataset", "subset", "folds", "fold", "n_train", "n_test",
                  "train", "finetune" (vsent pcnn's stage 2), "run_seed" (when train.seed is
                  the fold's seed derived from it),
                  "extra" ({"subset", "schedule", "n_images"}: --extra-train's weakly labelled
                  images, trained on beside the n_train of the subset) | None},
     "metrics": {"evaluation", "accuracy": {"mean", "std"}, ..., "n_folds", "fold": {...}}
                | {"evaluation", "held_out_fold", "held_out": {"center": {"accuracy", ...},
                   "ten_crop", ["fused_center", "fused_ten_crop"]}} (finetune --fold K) | None,
     "fusion": {"features", "rule", "weight", "classifier", "C", "n_train", ...} | None,
     "preprocess": {"resize", "crop", "mean", "std", "channel_order", "interpolation" (vsent's
                    resampling: bilinear), "weights_interpolation" (the pretrained weights')},
     "versions": {"source": "checkpoint" | "run" | "current", "vsent", "torch", ...}}

A value nobody recorded is ``None`` (shown as "not recorded"); nothing is guessed.

An ONNX or TorchScript export (``vsent export``) gets the same card from its metadata: the card
of its checkpoint stored in it when it was written (``checkpoint`` is then that checkpoint's
path), the model, class names and preprocessing the export states, and one more entry,
``"export": {"file", "engine", "format"}``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

from vsent.config import SCALAR_METRICS, fold_seed
from vsent.errors import VsentError, WeightsError, one_line
from vsent.models.checkpoint import check_complete, read_checkpoint

#: The card's subset for a checkpoint trained on a folder or CSV dataset.
NO_SUBSET = "none (a folder or CSV dataset has no agreement subsets)"

log = logging.getLogger("vsent")

CARD_FORMAT = "vsent-card/1"
#: The resampling of every vsent input path (PIL bilinear, :func:`vsent.data.images.resize`),
#: whatever the weights were trained with.
VSENT_INTERPOLATION = "bilinear"
#: Metrics of summary.json shown on the card, in this order: those summarised over folds
#: (vsent.metrics.SCALARS, whose module imports scikit-learn: taken from vsent.config).
CARD_METRICS = SCALAR_METRICS
#: Evaluations of a ``finetune --fold K`` run's metrics.json shown on the card, in this order.
HELD_OUT_EVALUATIONS = ("center", "ten_crop", "fused_center", "fused_ten_crop")
#: Family -> module with ``describe_weights(arch, init) -> dict`` and ``interpolation_of(arch)``
#: (no download, no model build).
_DESCRIBERS = {"timm": "vsent.models.timm_models", "clip": "vsent.models.clip_models"}
#: Family -> the distribution whose version matters besides vsent and torch.
_FAMILY_PACKAGES = {"timm": "timm", "clip": "open_clip_torch", "torchvision": "torchvision",
                    "caffenet": None, "smallcnn": None, "pcnn": None}
#: Module file of a builder -> family name, for names without a family prefix.
_MODULE_FAMILY = {"torchvision_models": "torchvision"}


def model_card(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of a vsent checkpoint (see the module docstring for its layout).

    ``checkpoint`` may also be an export of one (:func:`export_card`). Raises
    :class:`vsent.errors.WeightsError` when it is missing or neither a vsent checkpoint nor a
    vsent export.
    """
    path = Path(checkpoint)
    try:
        ckpt = read_checkpoint(path, mmap=True)  # the small entries only, not the weights
    except WeightsError:
        exported, unreadable = _read_export(path)
        if unreadable is not None:  # not the checkpoint's advice to score it as an export
            raise unreadable from None
        if exported is None:
            raise  # the checkpoint's own error: it says what the file is
        return export_card(exported)
    check_complete(ckpt, path)  # a card of a file nothing can score would mislead
    meta = dict(ckpt.get("meta") or {})
    if isinstance(ckpt.get("versions"), Mapping):  # recorded by save_checkpoint
        meta.setdefault("versions", ckpt["versions"])
    spec = dict(ckpt.get("spec") or {})
    name = str(spec.pop("name", "?"))
    spec.pop("num_classes", None)
    num_classes = len(ckpt["class_names"])  # the model's width (check_complete)
    info = ckpt.get("info") if isinstance(ckpt.get("info"), Mapping) else {}
    family = info.get("family") or family_of(name)

    from vsent.runs import checkpoint_run

    run_dir, fold = checkpoint_run(path, meta)
    config = _read_json(run_dir / "config.json") if run_dir else None
    config = config if isinstance(config, Mapping) else {}
    foreign = _foreign(meta, config, fold, run_dir) if run_dir else None
    if foreign:  # copied into the run's folder: the run's records are not its own
        log.warning("%s %s: it is no model of the run in %s, whose records and metrics the "
                    "card leaves out", path, foreign, run_dir)
        run_dir, fold, config = None, None, {}
    summary = _read_json(run_dir / "summary.json") if run_dir else None
    fold_metrics = (_read_json(run_dir / f"fold{fold}" / "metrics.json")
                    if run_dir and fold is not None else None)
    run_metrics = (_read_json(run_dir / "metrics.json")  # finetune's evaluation, when it held out
                   if run_dir and config.get("command") == "finetune" else None)

    init = meta.get("init", config.get("init"))
    preprocess = dict(ckpt.get("preprocess") or {})
    extra = info.get("extra") if isinstance(info.get("extra"), Mapping) else {}
    interpolation = extra.get("interpolation") or meta.get("interpolation")
    if interpolation is None and family in _DESCRIBERS:  # the library's, for its architecture
        arch = name.rsplit("/", 1)[-1]  # timm/x, clip/x, zeroshot/clip/x
        interpolation = import_module(_DESCRIBERS[family]).interpolation_of(arch)
    preprocess.update(_interpolations(None if init == "random" else interpolation))
    return {
        "card_format": CARD_FORMAT,
        "checkpoint": str(path),
        "model": {"name": name, "family": family, "num_classes": num_classes,
                  "class_names": list(ckpt.get("class_names") or []), "options": spec},
        "weights": meta.get("weights") or describe_weights(family, name, init),
        "training": _training(meta, config, run_dir, fold),
        "metrics": _metrics(summary, fold_metrics) or _held_out(run_metrics, fold),
        "fusion": _fusion(ckpt, path),
        "preprocess": preprocess,
        "versions": _versions(meta, run_dir, family),
    }


def read_export(path: str | os.PathLike[str]) -> Any | None:
    """The :class:`vsent.export.ExportedModule` of ``path`` when it is a vsent ONNX or
    TorchScript export (its metadata read, nothing run), else None."""
    return _read_export(Path(path))[0]


def _read_export(path: Path) -> tuple[Any | None, WeightsError | None]:
    """``(export, None)`` for a vsent export; ``(None, why)`` for an ``.onnx`` file that is
    none, in the export reader's words (``vsent predict --engine onnx`` gives the same
    reason), e.g. "<file>: not a readable ONNX export (<why onnx cannot parse it>)";
    ``(None, None)`` otherwise (the checkpoint's error says more: not named .onnx, or a
    torch.save or TorchScript file so named). Without the onnx package, an ``.onnx`` file's
    reason is the export reader's "needs the 'onnx' extra"."""
    if not path.is_file():
        return None, None
    try:
        from vsent.export import ExportedModule

        return ExportedModule(path), None
    except ImportError:  # a broken install of onnx: read as a checkpoint, which says why not
        return None, None
    except (VsentError, KeyError, ValueError) as exc:  # not an export, or not vsent's
        return None, _why_not_onnx(path, exc)


def _why_not_onnx(path: Path, exc: Exception) -> WeightsError | None:
    """The error of :func:`_read_export` for an ``.onnx`` file the export reader refused
    with ``exc``; None for a file of another name or a torch.save/TorchScript file."""
    if path.suffix.lower() != ".onnx":
        return None
    with path.open("rb") as f:
        head = f.read(2)
    if head == b"PK" or head[:1] == b"\x80":  # zip or pickle: torch's, misnamed
        return None
    if not head:  # onnx parses nothing as an empty model: "format None" would mislead
        return WeightsError(f"{path}: not a readable ONNX export (an empty file)")
    if isinstance(exc, VsentError):
        if exc.__cause__ is None:  # read, but not vsent's: e.g. "not a vsent export (format ...)"
            return WeightsError(str(exc))
        return WeightsError(f"{path}: not a readable ONNX export ({one_line(exc.__cause__)})")
    # vsent's format, but an entry missing or not JSON
    return WeightsError(f"{path}: not a readable ONNX export (its vsent metadata: "
                        f"{type(exc).__name__} {exc})")


def export_card(exported: Any) -> dict[str, Any]:
    """The card of an export (a :class:`vsent.export.ExportedModule`): the card of its
    checkpoint stored in it by ``vsent export``, with the model, class names and
    preprocessing the export itself states, and an ``export`` entry. An export written
    without a card (:func:`vsent.export.export_module`) gets what its metadata says; the
    rest is "not recorded"."""
    stored = exported.card if isinstance(exported.card, Mapping) else {}
    info = exported.info
    options = dict(exported.spec)
    options.pop("name", None)
    options.pop("num_classes", None)
    num_classes = info.num_outputs  # a raw ablation's 4096, not its spec's 2
    preprocess = dict(stored.get("preprocess") or {})
    preprocess.update(info.preprocess.to_dict())  # what the export was made with wins
    if "weights_interpolation" not in preprocess:  # no card stored, or one of before it
        preprocess.update(_interpolations(info.extra.get("interpolation")))
    return {
        "card_format": CARD_FORMAT,
        "checkpoint": stored.get("checkpoint"),  # the file it was exported from
        "model": {"name": info.name, "family": info.family, "num_classes": num_classes,
                  "class_names": list(exported.class_names), "options": options},
        "weights": stored.get("weights") or describe_weights(info.family, info.name, None),
        "training": stored.get("training") or _training({}, {}, None, None),
        "metrics": stored.get("metrics"),
        "fusion": stored.get("fusion"),
        "preprocess": preprocess,
        "versions": stored.get("versions") or {"source": None},
        "export": {"file": str(exported.path), "engine": exported.engine,
                   "format": exported.metadata.get("vsent.format")},
    }


def cut_paths(card: dict[str, Any]) -> None:
    """The machine's folders out of a card, in place (what ``vsent serve`` answers and an
    export stores: the artefact others get): the training data, its folds file
    (``--folds PATH``; a named scheme such as ``campos`` is its own last part) and a weights
    file (``--init PATH``) by their last part, the run's command lines (``versions.argv``,
    the ``argv`` of each ``versions.resumed`` session) left out; the version changes of the
    sessions that resumed the run stay. Tags, URLs and hub names of pretrained weights stay.
    The checkpoint's path stays: an export names the file `vsent explain` needs (the service
    cuts it itself)."""
    training = card.get("training")
    if isinstance(training, dict):
        card["training"] = {**training, **{k: Path(str(training[k])).name
                                           for k in ("dataset", "folds") if training.get(k)}}
    weights = card.get("weights")
    if isinstance(weights, dict) and str(weights.get("source") or "").startswith("weights file"):
        card["weights"] = {**weights, **{k: Path(str(weights[k])).name
                                         for k in ("init", "location") if weights.get(k)}}
    versions = card.get("versions")
    if isinstance(versions, dict):
        card["versions"] = {k: v for k, v in versions.items() if k not in ("argv", "resumed")}
        if isinstance(versions.get("resumed"), list):  # the version changes stay, argv goes
            card["versions"]["resumed"] = [{k: e.get(k) for k in ("date", "changed")}
                                           for e in versions["resumed"] if isinstance(e, dict)]


def family_of(name: str) -> str:
    """Family of a registered model name: its prefix (``timm/``, ``clip/``), else the module
    that registers it (``caffenet``, ``torchvision``, ...), else ``"unknown"``."""
    if "/" in name:
        return name.split("/", 1)[0]
    try:
        from vsent.models.registry import get_model_entry

        module = get_model_entry(name).builder.__module__.rsplit(".", 1)[-1]
    except Exception:  # an unknown name still gets a card, with what the file says
        return "unknown"
    return _MODULE_FAMILY.get(module, module)


def describe_weights(family: str, name: str, init: Any) -> dict[str, Any]:
    """Where the initial weights came from, as far as the library states it (no download)."""
    base: dict[str, Any] = {"init": init, "source": None, "library": None, "tag": None,
                            "licence": None, "location": None}
    if init is None:
        return base
    if init == "random":
        return {**base, "source": "random initialisation (no pretrained weights)"}
    module = _DESCRIBERS.get(family)
    if module is not None:
        arch = name.rsplit("/", 1)[-1]  # timm/x, clip/x, zeroshot/clip/x
        return {**base, **import_module(module).describe_weights(arch, str(init))}
    if init == "imagenet":
        return {**base, "source": f"ImageNet weights of {name}", "library": family,
                "tag": "DEFAULT" if family == "torchvision" else None}
    return {**base, "source": "weights file", "location": str(init)}


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as a Markdown document (headings, bullet lists, a metrics table)."""
    m, w, t = card["model"], card["weights"], card["training"]
    e = card.get("export")
    source = f"`{card['checkpoint']}`" if card.get("checkpoint") else "not recorded"
    lines = [f"# Model card: {m['name']}", ""]
    if e:
        lines += [f"Export: `{e['file']}` ({e['engine']}, {e['format']})", "",
                  f"Exported from checkpoint: {source}", ""]
    else:
        lines += [f"Checkpoint: {source}", ""]
    lines += ["## Architecture", "",
              _item("Name", m["name"]), _item("Family", m["family"]),
              _item("Outputs", f"{m['num_classes']} ({_class_names(m['class_names'])})"),
              _item("Options", _inline(m["options"]) if m["options"] else "none"), "",
              "## Initial weights", "",
              _item("--init", w.get("init")), _item("Source", w.get("source"))]
    if w.get("init") != "random":  # random weights come from no library, tag or file
        lines += [_item("Library", w.get("library")), _item("Tag", w.get("tag")),
                  _item("Licence (as the library states it)", w.get("licence")),
                  _item("Location", w.get("location"))]
    lines += _training_section(t)
    lines += _metrics_section(card.get("metrics"))
    lines += ["", "## Late fusion", ""]
    f = card.get("fusion")
    if not f:
        lines.append("none: the scores are the network's")
    else:
        words = f", BoW of {f['bow_words']} words" if f.get("bow_words") else ""
        lines.append(f"P(positive) = {f['weight']:g} x network + {1 - f['weight']:g} x "
                     f"{f['classifier']} on {f['features']} ({f['rule']} rule; C {f['C']:g}, "
                     f"fitted on {f['n_train']} training images{words}); predict and serve "
                     "give the fused score")
    p = card["preprocess"]
    lines += ["", "## Preprocessing", "",
              _item("Resize (square warp)", p.get("resize")), _item("Crop", p.get("crop")),
              _item("Mean (0..255, RGB)", _numbers(p.get("mean"))),
              _item("Std (0..255, RGB)", _numbers(p.get("std"))),
              _item("Channel order", p.get("channel_order")),
              _item("Interpolation", _interpolation_text(p)), "",
              "## Versions", "",
              f"Recorded: {card['versions'].get('source') or 'not recorded'}", ""]
    # versions record cuda None where no GPU was seen: that is known, not unrecorded
    lines += ["- cuda: none (no GPU)" if k == "cuda" and v is None else _item(k, v)
              for k, v in card["versions"].items() if k != "source"]
    return "\n".join(lines) + "\n"


def _training_section(t: Mapping[str, Any]) -> list[str]:
    """The card's "Training data" lines, from its ``training`` record ``t``."""
    dataset = t.get("dataset")
    lines = ["", "## Training data", "",
             _item("Command", t.get("command")), _item("Training", t.get("how")),
             _item("Dataset", os.path.normpath(dataset) if dataset else dataset),
             _item("Subset", t.get("subset"))]
    if t.get("fold") is not None:  # no fold held out: all images trained, no split to name
        lines += [_item("Folds", t.get("folds")), _item("Fold", t["fold"])]
    trained = t.get("how") != "zero-shot"  # "Training: zero-shot" says it: no images, no solver
    if trained:
        lines.append(_item("Training images", t.get("n_train")))
    if t.get("extra"):
        e = t["extra"]
        what = (f"weakly labelled ({e['subset']}-agree images not in {t.get('subset')}-agree; "
                f"--extra-schedule {e.get('schedule')})")
        lines.append(_item("Extra training images", what if e.get("n_images") is None
                           else f"{e['n_images']} {what}"))
    lines.append(_item("Held-out images", "none (trained on every image)" if t.get("n_test") == 0
                       else t.get("n_test")))
    if trained:
        lines.append(_item("Training settings", _inline(t["train"]) if t.get("train") else None))
    if trained and t.get("finetune"):  # (vsent pcnn's stage 2)
        lines.append(_item("Stage-2 settings", _inline(t["finetune"])))
    if trained and t.get("run_seed") is not None:
        lines.append(f"- Seed: {t['train']['seed']} is fold {t['fold']}'s, from the run's seed "
                     f"{t['run_seed']} (seed x 1000 + fold)")
    return lines


def _metrics_section(metrics: Mapping[str, Any] | None) -> list[str]:
    """The card's metrics lines: a held-out fold's table, the cross-validated mean, std and
    this fold's value, or "not recorded"."""
    lines: list[str] = []
    if metrics and metrics.get("held_out"):  # finetune --fold K: one fold, no mean over folds
        lines += ["", f"## Held-out fold {metrics.get('held_out_fold')}", "",
                  f"| evaluation | {' | '.join(CARD_METRICS)} |",
                  f"|---|{'---|' * len(CARD_METRICS)}"]
        for key, values in metrics["held_out"].items():
            cells = ["" if values.get(m) is None else f"{values[m]:.4f}" for m in CARD_METRICS]
            lines.append(f"| {key} | {' | '.join(cells)} |")
    elif not metrics:
        lines += ["", "## Cross-validated metrics", "",
                  "not recorded (the checkpoint is not inside a finished crossval run, or the "
                  "run's summary.json holds no metrics)"]
    else:
        lines += ["", "## Cross-validated metrics", "",
                  f"Evaluation: {metrics.get('evaluation') or 'not recorded'}, "
                  f"{metrics.get('n_folds')} folds", "",
                  "| metric | mean | std | this fold |", "|---|---|---|---|"]
        this = metrics.get("fold") or {}
        for key in CARD_METRICS:
            if key in metrics:
                own = this.get(key)
                lines.append(f"| {key} | {metrics[key]['mean']:.4f} | {metrics[key]['std']:.4f} "
                             f"| {'' if own is None else f'{own:.4f}'} |")
    return lines


# --------------------------------------------------------------------------------------------


def _foreign(meta: Mapping[str, Any], config: Mapping[str, Any], fold: int | None,
             run_dir: Path) -> str | None:
    """Why a checkpoint found in a run's folder is no model of that run (copied there), or
    None: it records another command than the run's (crossval, finetune), another fold than
    its place (``fold<k>/``, or a ``finetune`` run's fold or every image), other data, subset,
    folds or initial weights, a crossval fold's seed other than the one the run derives for
    it, or another training recipe than the run's (seed and device aside: a resumed run may
    change device)."""
    from vsent.provenance import DATA_RECORD, INIT_RECORD
    from vsent.runs import config_diff

    command, run_command = meta.get("command"), config.get("command")
    if isinstance(command, str) and isinstance(run_command, str) and command != run_command:
        return f"was written by {command}, the run by {run_command}"
    recorded = meta.get("fold")
    place = config.get("fold") if run_command == "finetune" else fold
    if type(recorded) is int and type(place) is int and recorded != place:
        return f"records fold {recorded}, not fold {place}"
    # a finetune run and its model both record "fold": None there is a model of every image,
    # so a fold's model in a run on every image (or the reverse) is no model of the run
    if (run_command == "finetune" and "fold" in meta and "fold" in config
            and all(f is None or type(f) is int for f in (recorded, place))
            and (recorded is None) != (place is None)):
        return (f"records fold {recorded}, the run trained on every image" if place is None
                else f"was trained on every image, the run holds out fold {place}")
    for key in ("data", "subset", "folds", "init"):
        # data and weights by their SHA-256 where both record it (data moved since, a link
        # at its old path removed: the same images), else a path as the run compares it
        record = {"data": DATA_RECORD, "init": INIT_RECORD}.get(key)
        mine = meta.get(f"{key}_sha256")
        theirs = (_read_json(run_dir / record) or {}).get("sha256") if record else None
        if isinstance(mine, str) and isinstance(theirs, str):
            if mine != theirs:
                return f"records other {key} than the run (SHA-256 {mine[:12]}, {theirs[:12]})"
        elif meta.get(key) is not None and config.get(key) is not None and config_diff(
                {key: config[key]}, {key: meta[key]}, ignore=frozenset()):
            return f"records {key} {meta[key]!r}, the run {config[key]!r}"
    train, run_seed = meta.get("train"), config.get("seed")
    seed = train.get("seed") if isinstance(train, Mapping) else None
    if (run_command == "crossval" and type(place) is int and type(seed) is int
            and type(run_seed) is int and seed != fold_seed(run_seed, place)):
        return (f"was trained with seed {seed}, not the seed the run's fold {place} trains "
                f"with ({fold_seed(run_seed, place)})")
    run_train = config.get("train")
    if isinstance(train, Mapping) and isinstance(run_train, Mapping):
        diff = config_diff(run_train, train, ignore=frozenset({"seed", "device"}))
        if diff:
            return f"was trained otherwise than the run (train.{diff[0]})"
    return None


def _fusion(ckpt: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    """What the checkpoint's late-fusion entry says (None: the network alone)."""
    if ckpt.get("fusion") is None:
        return None
    from vsent.analyses.fused_model import LateFusion

    return LateFusion.from_state(ckpt["fusion"], where=str(path)).describe()


def _read_json(path: Path) -> dict[str, Any] | None:
    """A run file the card reads (a JSON object); None when absent, or unreadable (half-written,
    damaged, another JSON type: said in a warning naming it), and the card says
    "not recorded"."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        why = one_line(e)
    else:
        if isinstance(value, dict):
            return value
        why = f"a JSON {type(value).__name__}, expected an object"
    log.warning("%s: unreadable (%s): the card says 'not recorded' for what it holds", path, why)
    return None


def _training(meta: Mapping[str, Any], config: Mapping[str, Any], run_dir: Path | None,
              fold: int | None) -> dict[str, Any]:
    n_train = n_test = None
    if fold is None and isinstance(meta.get("fold"), int):  # a fold model moved out of its run
        fold = meta["fold"]
    folds_doc = _read_json(run_dir / "folds.json") if run_dir else None
    if fold is not None and isinstance(folds_doc, Mapping):
        for f in folds_doc.get("folds", []):
            if f.get("fold") == fold:
                n_train, n_test = len(f.get("train", [])), len(f.get("test", []))
    how = meta.get("training")  # fine-tuning, frozen features + head, zero-shot, ...
    trained = how != "zero-shot"  # a zero-shot model saw no training image and no solver
    if trained and "fold" in meta and meta["fold"] is None and meta.get("n_train") is not None:
        n_test = 0  # vsent finetune without --fold: every image trained, none held out
    train = meta.get("train", config.get("train")) if trained else None
    run_seed = config.get("seed")
    # crossval trains fold k with a seed derived from the run's: the card says whence it comes
    derived = (fold is not None and isinstance(train, Mapping) and isinstance(run_seed, int)
               and train.get("seed") == fold_seed(run_seed, fold))
    dataset = meta.get("data", config.get("data"))
    return {
        # the checkpoint's own record (since session 34) when it is outside its run
        "command": config.get("command", meta.get("command")),
        # as the Markdown card shows it: a recorded ../ collapsed (one folder, not two spellings)
        "dataset": os.path.normpath(dataset) if isinstance(dataset, str) and dataset else dataset,
        "subset": _subset(meta, config),
        # the split's name is the config's default unless a fold was held out
        "folds": meta.get("folds", config.get("folds")) if fold is not None else None,
        "fold": fold,
        "how": how,
        "n_train": meta.get("n_train", n_train) if trained else None,
        # (a zero-shot model of no fold held nothing out and trained on nothing: not "none")
        "n_test": meta.get("n_test", n_test) if trained or fold is not None else n_test,
        "train": train,
        "finetune": meta.get("finetune") if trained else None,
        "run_seed": run_seed if derived else None,
        "extra": _extra(meta, config, run_dir) if trained else None,
    }


def _extra(meta: Mapping[str, Any], config: Mapping[str, Any], run_dir: Path | None
           ) -> dict[str, Any] | None:
    """The ``--extra-train`` images the model also trained on (the card said the
    subset's images alone): the checkpoint's record, else its run's (a checkpoint saved before
    it was recorded: the count from extra.json); None without --extra-train."""
    subset = meta.get("extra_train", config.get("extra_train"))
    if not isinstance(subset, str):
        return None
    n = meta.get("n_extra")
    if n is None and run_dir is not None:
        from vsent.provenance import EXTRA_RECORD

        record = _read_json(run_dir / EXTRA_RECORD)
        names = record.get("names") if isinstance(record, Mapping) else None
        n = len(names) if isinstance(names, list) else None
    return {"subset": subset, "n_images": n,
            "schedule": meta.get("extra_schedule", config.get("extra_schedule", "joint"))}


def _subset(meta: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    """The agreement subset trained on. The checkpoint records ``None`` for a folder or CSV
    dataset, which has no subsets (the config's ``subset`` is then only the option's default,
    "five"), so the card says so instead of "not recorded"; an older checkpoint without the
    entry falls back on the run's config."""
    if "subset" not in meta:
        return config.get("subset")
    return meta["subset"] if meta["subset"] is not None else NO_SUBSET


def _metrics(summary: Any, fold_metrics: Any) -> dict[str, Any] | None:
    """The run's cross-validated metrics, None when it has none: a run of another kind (e.g.
    ``vsent pcnn``, whose summary.json holds neither folds nor metrics) is no crossval run, and
    its card says "not recorded" rather than an empty table of 0 folds."""
    if not isinstance(summary, Mapping):
        return None
    if not summary.get("folds") and not any(isinstance(summary.get(k), Mapping)
                                            for k in CARD_METRICS):
        return None
    out: dict[str, Any] = {"evaluation": summary.get("evaluation"),
                           "n_folds": len(summary.get("folds", [])),
                           "n_images": summary.get("n_images")}
    for key in CARD_METRICS:
        if isinstance(summary.get(key), Mapping):
            out[key] = {"mean": summary[key]["mean"], "std": summary[key]["std"]}
    if isinstance(fold_metrics, Mapping):
        lead = fold_metrics.get(summary.get("evaluation") or "center")
        out["fold"] = {k: lead[k] for k in CARD_METRICS if isinstance(lead, Mapping) and k in lead}
    return out


def _held_out(run_metrics: Any, fold: int | None) -> dict[str, Any] | None:
    """A ``finetune --fold K`` run's metrics on its held-out fold (its ``metrics.json``); None
    when it held none out. ``evaluation`` is the one its scores are: fused when it is fused."""
    if fold is None or not isinstance(run_metrics, Mapping):
        return None
    held = {k: {m: run_metrics[k][m] for m in CARD_METRICS if m in run_metrics[k]}
            for k in HELD_OUT_EVALUATIONS if isinstance(run_metrics.get(k), Mapping)}
    if "center" not in held:
        return None
    return {"evaluation": "fused_center" if "fused_center" in held else "center",
            "held_out_fold": fold, "held_out": held}


def _versions(meta: Mapping[str, Any], run_dir: Path | None, family: str) -> dict[str, Any]:
    """The versions the checkpoint was written with, as it records them; the run's
    ``versions.json`` for what it does not hold (``argv``, ``resumed``, all of an older
    file's). Not the run's first: they are its first session's, and a run resumed after an
    upgrade trains its later folds with others."""
    saved = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    recorded = _read_json(run_dir / "versions.json") if run_dir else None
    package = _FAMILY_PACKAGES.get(family)
    if saved:
        run_only = recorded if isinstance(recorded, Mapping) else {}
        out = {"source": "checkpoint", **run_only, **saved}
    elif isinstance(recorded, Mapping):
        out = {"source": "run", **recorded}
    else:
        from vsent.provenance import versions

        out = {"source": "current", **versions()}
    if package and out.get(package) is None:
        try:  # the run records a fixed package list; the family's library is added as it is now
            out[f"{package} (now)"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[f"{package} (now)"] = None
    return out


def _interpolations(weights: str | None) -> dict[str, str | None]:
    """The card's resampling entries: vsent's own, and the one the pretrained weights were
    trained with (timm's and open_clip's configurations; None: not stated, or no weights)."""
    return {"interpolation": VSENT_INTERPOLATION, "weights_interpolation": weights}


def _interpolation_text(p: Mapping[str, Any]) -> str | None:
    """The card's line: e.g. "bilinear (vsent); the weights were trained with bicubic", or
    vsent's alone when the weights' is the same or not stated."""
    used, trained = p.get("interpolation"), p.get("weights_interpolation")
    if used is None or trained is None or trained == used:
        return used
    return f"{used} (vsent); the weights were trained with {trained}"


def _item(label: str, value: Any) -> str:
    return f"- {label}: {'not recorded' if value is None else value}"


def _inline(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _numbers(v: Any) -> str | None:
    return None if v is None else ", ".join(f"{float(x):.3f}" for x in v)


def _class_names(names: list[str]) -> str:
    """The outputs' names, the first few of a wide model (a raw ablation has 4096)."""
    shown = ", ".join(names[:4])
    return shown if len(names) <= 4 else f"{shown}, ... {names[-1]}"
