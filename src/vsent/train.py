"""Fine-tuning: parameter groups and a loop short enough to read top to bottom.

The recipe itself (:class:`TrainConfig`, frozen and validated when built) lives in
:mod:`vsent.config` and is re-exported here.

The defaults are the recipe of Campos et al. 2015 (Caffe solver): SGD with momentum 0.9 in
Caffe's form (:class:`CaffeSGD`), weight decay 5e-4, base lr 0.001 divided by 10 every 6 epochs,
65 epochs, the new layer at 10x the base lr. As in Caffe's reference prototxts, biases learn at
2x their layer's lr and get no weight decay.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vsent import distributed as dist
from vsent.config import OPTIMIZERS, SCHEDULES, TrainConfig, config_from_dict
from vsent.data.augment_pool import AugmentPool, default_augment_workers, pool_serves
from vsent.data.transforms import augment_batch, draw_seed, mix_batch, normalize
from vsent.errors import VsentError, one_line
from vsent.files import atomic_open
from vsent.inference import resolve_device
from vsent.models.base import non_finite_tensors
from vsent.progress import on_terminal
from vsent.runs import config_diff, writing

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "CaffeSGD", "TrainConfig", "check_parallel", "config_from_dict",
    "base_lr", "fit", "make_optimizer", "make_scheduler", "param_groups", "state_seconds",
    "train_one_epoch",
]

log = logging.getLogger("vsent")

#: What a training state (``state_path`` of :func:`fit`) holds at least.
STATE_KEYS = frozenset({"model", "optimizer", "scheduler", "generator", "torch_rng", "history"})


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Split parameters into (new layer? x bias?) groups with their lr and weight decay.

    New layers (``model.info.new_layers``) train at ``head_lr_mult`` x lr, and so does the head
    (``info.head``) on a partly frozen network (:func:`head_layers`); biases (and BatchNorm
    parameters, which are 1-d) at ``bias_lr_mult`` x their layer's lr without weight decay.
    """
    new_prefixes = tuple(f"{name}." for name in head_layers(model))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (name.startswith(new_prefixes), p.ndim <= 1)
            groups.setdefault(key, []).append(p)
    out = []
    for (is_new, is_bias), params in sorted(groups.items()):
        mult = (cfg.head_lr_mult if is_new else 1.0) * (cfg.bias_lr_mult if is_bias else 1.0)
        out.append({
            "params": params, "lr": cfg.lr * mult, "lr_mult": mult,
            "weight_decay": 0.0 if is_bias else cfg.weight_decay,
            "name": f"{'new' if is_new else 'base'}-{'bias' if is_bias else 'weight'}",
        })
    return out


def head_layers(model: nn.Module) -> tuple[str, ...]:
    """The layers that train at ``head_lr_mult`` x lr: ``info.new_layers``, plus ``info.head``
    once a parameter is frozen (``--train head`` / ``last-N``). The head is then what learns on
    a fixed backbone, and its rate must not hang on whether the family calls it a new layer
    (smallcnn and pcnn have none: their head would learn 10x slower than documented)."""
    info = model.info
    frozen = any(not p.requires_grad for p in model.parameters())
    return (*info.new_layers, info.head) if frozen and info.head else tuple(info.new_layers)


class CaffeSGD(torch.optim.SGD):
    """SGD with momentum in Caffe's form: ``V = m V + lr (g + wd w); w -= V``.

    torch.optim.SGD keeps the velocity without the learning rate (``v = m v + g; w -= lr v``):
    the same steps while the lr is constant, but after a drop of the step schedule Caffe's
    velocity still carries the old lr for about 1 / (1 - m) iterations (10 at momentum 0.9,
    about an epoch of a Twitter I fold at batch 64), while torch's steps shrink at once. Here
    torch's buffer is multiplied by old lr / new lr when a group's lr changes, which gives
    Caffe's steps exactly. Each group records the lr its buffer holds (``momentum_lr``, saved
    with the optimiser's state, so a resumed run goes on as it would have). A step at lr 0
    moves nothing here (Caffe would still apply its velocity).

    The rescaling is a step pre-hook, not a ``step`` that calls SGD's: torch wraps each
    optimiser class's ``step`` with the step hooks, and a step calling another wrapped one ran
    every hook (a profiler's, a user's) twice per step.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_step_pre_hook(_caffe_momentum)


@torch.no_grad()
def _caffe_momentum(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Before a :class:`CaffeSGD` step: each group's momentum buffers rescaled to its lr."""
    for group in opt.param_groups:
        built = group.setdefault("momentum_lr", group["lr"])
        if group["lr"] > 0 and built != group["lr"]:
            for p in group["params"]:
                buf = opt.state[p].get("momentum_buffer")
                if buf is not None:
                    buf.mul_(built / group["lr"])
            group["momentum_lr"] = group["lr"]


def base_lr(opt: torch.optim.Optimizer) -> float:
    """The schedule's lr now, as a history logs it: a group's lr over its ``lr_mult``
    (:func:`param_groups`)."""
    group = opt.param_groups[0]
    return group["lr"] / group["lr_mult"]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over :func:`param_groups`: SGD in ``cfg.momentum_form`` (Caffe's:
    :class:`CaffeSGD`; torch's: torch.optim.SGD) or AdamW."""
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        sgd = CaffeSGD if cfg.momentum_form == "caffe" else torch.optim.SGD
        return sgd(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: step (Caffe "step" policy), cosine, or constant."""
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm buffers (as the
    torchvision references' ``--model-ema``), updated after every optimiser step.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (timm's
    warm-up), so that a short CPU run is not averaged with its random initial weights.
    """
    from torch.optim.swa_utils import AveragedModel

    def ema_avg(averaged: torch.Tensor, current: torch.Tensor,
                n: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():  # a counter (BatchNorm's num_batches_tracked)
            return current
        d = torch.clamp((1 + n) / (10 + n), max=decay)
        return d * averaged + (1 - d) * current

    return AveragedModel(model, avg_fn=ema_avg, use_buffers=True)


def train_one_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    images: np.ndarray,
    labels: np.ndarray,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    *,
    desc: str = "",
    progress: bool = True,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    augment_pool: AugmentPool | None = None,
) -> dict[str, float]:
    """One pass over the images in random order: augment (``cfg.augment``), normalise, one
    optimiser step per batch (then an update of ``ema`` when given). ``augment_pool``: worker
    processes that augment the next batches meanwhile (``--augment trivial`` without
    ``--mix``, one process; the same images as without it).

    Returns the mean loss, accuracy, images/s and the share of time spent preparing batches.
    """
    model.train()
    pre = dist.module_of(model).info.preprocess  # ``model`` may be a DDP wrapper
    world = dist.world_size()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    order = torch.randperm(len(images), generator=gen).numpy()
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    if len(batches) > 1 and len(batches[-1]) < max(2, world):
        batches.pop()  # BatchNorm cannot train on a batch of one; in DDP each rank needs a row
    total_loss = correct = seen = 0
    data_time = 0.0
    start = time.perf_counter()
    pooled = None
    if augment_pool is not None:
        if not pool_serves(cfg.augment, cfg.mix, world):
            raise ValueError("an augment pool serves --augment trivial without --mix in one "
                             "process")
        # the loop's one draw per batch, in its order (sorted reads: as below)
        seeds = [draw_seed(gen) for _ in batches]
        pooled = augment_pool.augment(
            ((images[np.sort(idx)], seed) for idx, seed in zip(batches, seeds, strict=True)),
            pre.crop)
    bar = tqdm(batches, desc=desc, leave=False, disable=not on_terminal(progress), unit="batch")
    for idx in bar:
        t0 = time.perf_counter()
        idx = np.sort(idx)  # sorted reads are faster on a memory-mapped cache
        if world > 1:  # this rank's rows r::world of the global batch, same crops as 1 process
            x, y_np, weight = dist.shard_batch(images, labels, idx, pre.crop, gen)
        elif pooled is not None:
            x, y_np, weight = next(pooled), labels[idx], 1.0
        else:
            x = augment_batch(torch.from_numpy(images[idx]), pre.crop, cfg.augment, gen)
            y_np, weight = labels[idx], 1.0
        # uint8 to the device (4x fewer bytes than floats), normalised there (as in inference)
        x = normalize(x.to(device, non_blocking=True), pre)
        y = torch.from_numpy(y_np.astype(np.int64)).to(device, non_blocking=True)
        target = y
        if cfg.mix != "none":  # soft targets; the training accuracy stays against the labels
            x, target = mix_batch(x, y, cfg.mix, dist.module_of(model).info.num_outputs, gen)
        data_time += time.perf_counter() - t0

        logits = model(x)
        loss = loss_fn(logits, target)
        opt.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks: weighted, they are those of the global batch mean
        (loss if weight == 1.0 else loss * weight).backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(dist.module_of(model))

        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", img_s=f"{seen / elapsed:.0f}")
    elapsed = time.perf_counter() - start
    total_loss, correct, seen = dist.all_sum(total_loss, correct, seen)  # DDP: all ranks' rows
    return {
        "loss": total_loss / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "images_per_s": seen / elapsed,
        "data_wait_share": data_time / elapsed,
        "seconds": elapsed,
    }


def _on_cuda(device: torch.device) -> bool:
    """Training draws on a GPU's generator (dropout masks): its state is saved and restored
    with the CPU's, so a resumed fold draws what an uninterrupted one would."""
    return torch.device(device).type == "cuda"


def fit(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    cfg: TrainConfig,
    *,
    state_path: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
    augment_workers: int | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place and return one stats dict per epoch.

    Parameters
    ----------
    images : uint8 array (N, S, S, 3), RGB, resized to ``model.info.preprocess.resize``.
    labels : int array (N,), class indices.
    state_path : if given, the model, optimiser, scheduler, random state, history and ``cfg``
        are saved there after every epoch, and an existing file is resumed from (finished
        epochs are not redone). Resuming with a config other than the stored one (the device
        apart) is a VsentError naming the differing options. The file is removed by the caller
        once the result is saved elsewhere.
    augment_workers : processes that run ``--augment trivial`` ahead of the training steps
        (:mod:`vsent.data.augment_pool`; the same images as without them); default
        :func:`~vsent.data.augment_pool.default_augment_workers`: some on a GPU, none on a CPU.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    classes = np.unique(labels)
    if len(classes) == 1:  # legal (a fine-tuning stage may see one class) but rarely meant
        log.warning("%s: all %d training images are of class %d; the model can only learn "
                    "to predict that class", desc, len(labels), classes[0])
    device = dist.local_device(resolve_device(cfg.device))  # DDP: cuda:LOCAL_RANK
    if dist.world_size() > len(images):
        raise VsentError(f"{len(images)} training images cannot be split over "
                         f"{dist.world_size()} processes")
    check_parallel(cfg, dist.world_size())
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    ema = make_ema(model, cfg.ema) if cfg.ema else None
    history: list[dict[str, float]] = []

    state_path = Path(state_path) if state_path else None
    if state_path and state_path.exists():
        history = _resume(state_path, desc, cfg, device, model, opt, sched, gen, ema)

    if augment_workers is None:
        augment_workers = default_augment_workers(device, cfg.augment, cfg.mix,
                                                  dist.world_size())
    left = cfg.epochs - len(history)
    with AugmentPool(augment_workers) if augment_workers and left else nullcontext() as pool:
        net = dist.wrap_model(model, device)  # DDP across processes; ``model`` in one process
        for epoch in range(len(history), cfg.epochs):
            dist.seed_epoch(cfg.seed, epoch)  # DDP: each rank's dropout RNG, same when resumed
            stats = train_one_epoch(
                net, opt, images, labels, cfg, gen, device,
                desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", progress=progress, ema=ema,
                augment_pool=pool,
            )
            stats["epoch"] = epoch + 1
            stats["lr"] = base_lr(opt)
            if not math.isfinite(stats["loss"]):
                # checked per epoch (the mean is already on the host; a per-batch check would
                # add syncs); the epoch's state is not saved: a resume redoes this epoch (and
                # stops here again) instead of training on from NaN weights
                _diverged(desc, epoch + 1, f"loss {stats['loss']}", cfg)
            sched.step()
            history.append(stats)
            log.info(
                "%s epoch %d/%d loss %.4f train-acc %.3f lr %.2e %.0f img/s data-wait %.1f%%",
                desc, epoch + 1, cfg.epochs, stats["loss"], stats["train_accuracy"], stats["lr"],
                stats["images_per_s"], 100 * stats["data_wait_share"],
            )
            if state_path and dist.is_main():  # rank 0 alone writes; every rank resumes from it
                # a last step can turn the weights into NaN with a finite mean loss: such a
                # state is no result to keep (it made the corrected command's run refused)
                if non_finite_tensors(model):
                    _diverged(desc, epoch + 1, "weights hold nan/inf", cfg)
                _save_state(state_path, cfg, device, model, opt, sched, gen, ema, history)
        if ema is not None:  # the averaged weights are the result (before unwrap_model: a
            # rank's average holds its own BatchNorm statistics, rank 0's are broadcast)
            model.load_state_dict(ema.module.state_dict())
        dist.unwrap_model(net)  # DDP: BatchNorm back, rank 0's buffers on every rank
    # the loss is computed before each step: the last step can turn the weights into NaN
    # with a finite mean loss, and such a model would score nothing (argmax of NaNs is 0)
    if non_finite_tensors(model):
        _diverged(desc, len(history), "weights hold nan/inf", cfg)
    return history


def _resume(state_path: Path, desc: str, cfg: TrainConfig, device: torch.device,
            model: nn.Module, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator,
            ema: Any) -> list[dict[str, float]]:
    """Load the training state ``state_path`` (:func:`_save_state`) into the model, optimiser,
    scheduler, random generators and EMA of :func:`fit`; the history of its finished epochs.
    VsentError for a state made with another config or for another model."""
    # on the CPU: the random states must stay CPU ByteTensors (set_state refuses a cuda
    # copy); load_state_dict copies weights and optimiser moments onto the model's device
    state = _load_state(state_path, desc)
    # a state without "config" predates this check: it is resumed as before
    diff = config_diff(state.get("config", cfg.to_dict()), cfg.to_dict())
    if diff:
        raise VsentError(f"{state_path}: the training state was made with another config "
                         f"({'; '.join(diff)}); delete it or use the stored config")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:  # another model's state
        raise _bad_state(state_path, desc, one_line(e)) from None
    if _on_cuda(device) and len(state.get("cuda_rng", ())) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda_rng"])  # dropout masks drawn on the GPU
    history = state["history"]
    log.info("%s: resumed after epoch %d of %d", desc, len(history), cfg.epochs)
    before = state.get("world_size")  # (a state of an older vsent does not say)
    if before is not None and before != dist.world_size():
        log.warning("%s: resumed by %d processes after epoch %d, which a session of %d "
                    "trained: they train equivalently, not identically (on CPU each "
                    "process normalises BatchNorm over its share of the batch; each draws "
                    "its own dropout masks); resume with --nproc %d to go on as that "
                    "session did", desc, dist.world_size(), len(history), before, before)
    return history


def _save_state(state_path: Path, cfg: TrainConfig, device: torch.device, model: nn.Module,
                opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator, ema: Any,
                history: list[dict[str, float]]) -> None:
    """Everything :func:`_resume` needs to go on after the last finished epoch, written
    atomically (a kill leaves the last epoch's state). The folder is made with its first
    file: a fold that wrote nothing leaves none (its run is replaced by the next, see
    :func:`vsent.runs.open_run_dir`)."""
    with writing(state_path), atomic_open(state_path, "wb") as f:
        torch.save({
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(), "history": history,
            "config": cfg.to_dict(), "world_size": dist.world_size(),
            **({"ema": ema.state_dict()} if ema else {}),
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if _on_cuda(device) else {}),
        }, f)


def check_parallel(cfg: TrainConfig, world: int) -> None:
    """VsentError when ``cfg`` cannot train on ``world`` data-parallel processes: checked by
    :func:`fit`, and before ``--nproc N`` starts them (:func:`vsent.crossval.check_launch`)."""
    if world > 1 and cfg.augment != "crop-flip":
        raise VsentError(f"--augment {cfg.augment} runs in one process (data-parallel "
                         "training shards Caffe's crop + mirror only)")
    if world > 1 and cfg.mix != "none":
        raise VsentError(f"--mix {cfg.mix} runs in one process (data-parallel training mixes "
                         "no batches)")
    if world > cfg.batch_size:
        raise VsentError(f"batches of {cfg.batch_size} cannot be split over {world} processes "
                         "(--batch-size at least --nproc)")


def _bad_state(path: Path, desc: str, why: str) -> VsentError:
    return VsentError(f"{path}: not a training state this run can resume ({why}); "
                      f"delete it to start {desc} again from its first epoch")


def _load_state(path: Path, desc: str) -> dict[str, Any]:
    """The training state in ``path``, read without running code (``weights_only``: a run
    directory received from someone else is no program); VsentError naming it when it is
    damaged (cut, garbage) or not one."""
    from vsent.models.checkpoint import load_failure

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a cut or foreign file
        # in a few words, as for a checkpoint (torch's own text is internal, or advice to
        # load the file unsafely)
        raise _bad_state(path, desc, load_failure(path, e)) from None
    if not isinstance(state, dict):
        raise _bad_state(path, desc, f"a {type(state).__name__}, not a dict")
    missing = STATE_KEYS - state.keys()
    if missing:
        raise _bad_state(path, desc, f"no {', '.join(sorted(missing))}")
    return state


def state_seconds(path: str | Path) -> float:
    """Seconds of the epochs a training state holds (their ``seconds``, trained in earlier
    sessions); 0 when there is none or it cannot be read (:func:`fit` then says why)."""
    path = Path(path)
    if not path.is_file():
        return 0.0
    try:  # mmap: the history is read, the weights are not
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return float(sum(h.get("seconds", 0.0) for h in state["history"]))
    except Exception:  # damaged: fit names it when it resumes
        return 0.0


def _diverged(desc: str, epoch: int, what: str, cfg: TrainConfig) -> NoReturn:
    """Raise the VsentError of a run that diverged at ``epoch`` (1-based); the lr is this
    stage's (--lr, or --finetune-lr in a fine-tuning stage, which ``desc`` names)."""
    raise VsentError(f"{desc}: training diverged at epoch {epoch} ({what}): "
                     f"lower the learning rate (lr {cfg.lr:g})")
