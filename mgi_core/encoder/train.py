"""Multi-task fine-tuning: ``L = Σ_k λ_k · ℓ_k`` over the tasks the data supports.

AdamW with linear warm-up and decay, gradient clipping, early stopping on the validation
objective (``Σ_k λ_k · val_loss_k``) with patience, fixed seeds. Progress goes to an
``on_event`` callback; ``should_stop`` is polled every step so a job can be cancelled.

Under ``torchrun`` (``mgi_core.encoder.distributed``) the same loop runs data-parallel:
``batch_size`` stays the *global* batch, each process takes every N-th review of it, DDP
averages the gradients, and the texts every process needs (validation, the head warm-up)
are embedded in shares and gathered, so every process takes the same decisions (early
stopping, best epoch) without asking the others. The contrastive ``match`` loss gathers
every process's positives (with their gradients), so it sees the global batch's negatives
as one process does. What differs from one process: dropout masks, and a global batch of
pairs not divisible by N loses its last few pairs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mgi_core.config import TrainConfig
from mgi_core.encoder import distributed, multitask
from mgi_core.encoder.adversarial import build_adversary
from mgi_core.encoder.augment import build_augmenter
from mgi_core.encoder.distributed import World
from mgi_core.encoder.model import Encoder
from mgi_core.encoder.multitask import (
    MultiTaskModel,
    apply_strategy,
    merge_for_inference,
    trainable_parameters,
)
from mgi_core.encoder.tasks import IGNORE, ClassificationSet, PairSet, TaskData
from mgi_core.encoder.weighting import TaskWeighting
from mgi_core.errors import MgiError
from mgi_core.evaluation.metrics import accuracy, macro_f1, recall_at_k_matrix, roc_auc

log = logging.getLogger(__name__)
EventFn = Callable[[dict[str, Any]], None]
CLASSIFICATION_TASKS = ("overall", "category", "subcategory")
PAIR_KEYS = 1 << 40  # augmentation keys of match pairs, apart from the reviews' indices


class TrainingCancelled(MgiError):
    """The run was cancelled (by the user or a signal); nothing from it is registered."""


@dataclass
class TrainResult:
    model: MultiTaskModel
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    val_metrics: dict[str, float] = field(default_factory=dict)
    n_steps: int = 0
    samples_per_s: float = 0.0
    stopped_early: bool = False
    task_weights: dict[str, float] = field(default_factory=dict)  # at the end of training


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _class_weights(counts: np.ndarray, device: torch.device) -> torch.Tensor:
    """Inverse square-root frequency, mean 1 over present classes (absent classes: 0)."""
    counts = counts.astype(np.float64)
    present = counts > 0
    w = np.zeros_like(counts)
    w[present] = 1.0 / np.sqrt(counts[present])
    w[present] /= w[present].mean()
    return torch.tensor(w, dtype=torch.float32, device=device)


class Losses:
    """Per-task loss functions with the configured class-imbalance handling.

    ``overall``: binary cross-entropy with balanced class weights; category tasks: cross-entropy
    with inverse square-root frequency weights (mean 1 over present classes).
    """

    def __init__(self, data: TaskData, config: TrainConfig, device: torch.device) -> None:
        self.config = config
        self.binary_weights: tuple[float, float] | None = None  # (negative, positive)
        self.weights: dict[str, torch.Tensor | None] = {}
        balance = config.balance == "class_weights"
        if "overall" in data.tasks and balance:
            # Balanced: each class carries half the loss and the mean sample weight is 1, so
            # the loss keeps its scale beside the other tasks (a pos_weight of neg/pos < 1 on
            # mostly-liked data would shrink it and starve the encoder of it; README, "How it
            # works").
            neg, pos = (max(int(c), 1) for c in data.class_counts["overall"])
            n = neg + pos
            self.binary_weights = (n / (2 * neg), n / (2 * pos))
        for task in ("category", "subcategory"):
            if task in data.tasks:
                counts = data.class_counts[task]
                self.weights[task] = _class_weights(counts, device) if balance else None

    def classification(self, task: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if task == "overall":
            weight = None
            if self.binary_weights is not None:
                w_neg, w_pos = self.binary_weights
                weight = torch.where(y > 0, w_pos, w_neg).float()
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), weight=weight)
        return F.cross_entropy(logits, y, weight=self.weights[task], ignore_index=IGNORE)

    def match(self, anchors: torch.Tensor, positives: torch.Tensor,
              world: World | None = None) -> torch.Tensor:
        """Multiple-negatives ranking loss: each anchor against every positive in the batch.

        Under torchrun (``world`` active, equal shares) the positives of every process are
        gathered with their gradients, so each anchor meets the whole global batch's
        negatives, as in one process; DDP's averaging then gives the global loss's gradient.
        """
        a = F.normalize(anchors, dim=-1)
        p = F.normalize(positives, dim=-1)
        target = torch.arange(len(a), device=a.device)
        if world is not None and world.active:
            p = distributed.gather_with_grad(p)
            target = target + world.rank * len(a)
        logits = self.config.match_scale * a @ p.T  # (b, b · processes)
        return F.cross_entropy(logits, target)


def _has_labels(task: str, y: torch.Tensor) -> bool:
    return bool((y != IGNORE).any()) if task != "overall" else len(y) > 0


def build_model(encoder: Encoder, data: TaskData, config: TrainConfig,
                total_steps: int | None = None) -> MultiTaskModel:
    """The encoder with its strategy applied (``total_steps``: AdaLoRA's budget schedule)
    and one head per classification task."""
    seed_everything(config.seed, config.deterministic)
    n_classes = {}
    if "overall" in data.tasks:
        n_classes["overall"] = 1
    for task in ("category", "subcategory"):
        if task in data.tasks:
            n_classes[task] = len(data.vocab[task])
    apply_strategy(encoder, config, total_steps)
    return MultiTaskModel(encoder, n_classes, config.dropout)


class TrainStep(nn.Module):
    """One optimisation step's forward pass: the weighted multi-task loss of a batch.

    A module of its own so that DistributedDataParallel can wrap it: both encoder passes
    (reviews for the heads, anchor and positive texts for ``match``) run inside one
    ``forward``, and DDP averages the gradients of the whole step, the learned task weights'
    (``weighting``) included.
    """

    def __init__(self, model: MultiTaskModel, losses: Losses, config: TrainConfig,
                 weighting: TaskWeighting) -> None:
        super().__init__()
        self.model = model
        self.losses = losses
        self.config = config
        self.weighting = weighting

    def forward(self, texts: list[str], labels: dict[str, torch.Tensor],
                anchors: list[str], positives: list[str]) -> dict[str, torch.Tensor]:
        """Loss per task for this batch (tasks without a label in it are left out) and their
        weighted sum under ``TOTAL``. A batch with texts but no label at all gives
        ``{IDLE: 0 · Σ logits}``: a zero loss still joined to the graph, so this process
        takes part in DDP's gradient all-reduce."""
        parts: dict[str, torch.Tensor] = {}
        if texts:
            logits = self.model.head_logits(self.model.embed(texts))
            for task, y in labels.items():
                if _has_labels(task, y):
                    parts[task] = self.losses.classification(task, logits[task], y)
            if not parts and not anchors:
                parts[IDLE] = sum(v.sum() for v in logits.values()) * 0.0
        if anchors:
            # Anchors and positives in one forward pass: one larger batch is cheaper on a
            # CPU than two (bench/train.py --profile).
            z = self.model.embed(anchors + positives)
            parts["match"] = self.losses.match(z[:len(anchors)], z[len(anchors):],
                                               distributed.current_world())
        if parts and IDLE not in parts:
            parts[TOTAL] = self.weighting(parts)
        return parts


IDLE = "idle"  # TrainStep's zero loss for a batch share without labels
TOTAL = "total"  # TrainStep's weighted sum of the task losses


def _step_total(step: nn.Module, batch: tuple) -> torch.Tensor:
    """The weighted loss of ``batch`` through ``step`` (a TrainStep, or its DDP wrapper);
    the zero loss of a share without labels."""
    parts = step(*batch)
    return parts[TOTAL] if TOTAL in parts else parts[IDLE]


def steps_per_epoch(n: int, batch_size: int, world: World) -> int:
    """Optimiser steps over ``n`` examples: a last, partial global batch counts only when
    every process gets at least one example of it."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= world.size else 0)


def fine_tune(
    encoder: Encoder,
    data: TaskData,
    config: TrainConfig,
    on_event: EventFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``encoder`` (in place) and its heads on ``data``; return the best epoch's model.

    Under torchrun every process calls this with the same data and config (see the module
    docstring); events are emitted where ``on_event`` is given (rank 0), and a stop seen by
    any process stops all of them at the same step.

    Raises:
        TrainingCancelled: ``should_stop()`` returned True (on any process).
    """
    world = distributed.current_world()
    cls_tasks = [t for t in data.tasks if t in CLASSIFICATION_TASKS]
    use_match = "match" in data.tasks
    n_cls, n_pairs, bsz = len(data.train), len(data.train_pairs), config.batch_size
    per_epoch = steps_per_epoch(n_cls if cls_tasks else n_pairs, bsz, world)
    total_steps = per_epoch * config.epochs
    model = build_model(encoder, data, config, total_steps)
    device = encoder.device_info.torch_device
    losses = Losses(data, config, device)
    weighting = TaskWeighting(list(data.tasks), config).to(device)
    augmenter = build_augmenter(config, config.seed)
    if augmenter is not None and augmenter.notices:
        data.notices.extend(augmenter.notices)
        if on_event is not None:
            on_event({"kind": "notices", "notices": list(data.notices)})

    enc_params, head_params = trainable_parameters(model)
    groups = [{"params": head_params, "lr": config.head_learning_rate}]
    if enc_params:
        groups.append({"params": enc_params, "lr": config.learning_rate})
    if weighting.learned:
        groups.append({"params": list(weighting.parameters()), "weight_decay": 0.0,
                       "lr": config.weighting_learning_rate})
    fused = device.type in ("cpu", "cuda")  # one kernel per step instead of one per tensor
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, fused=fused)
    warm_up_heads(model, data, config, losses, on_event, should_stop)
    warmup = max(1, int(config.warmup_ratio * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = np.random.default_rng(config.seed)  # the same order on every process
    labels = {t: torch.as_tensor(data.train.labels[t], device=device) for t in cls_tasks}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    local_step = TrainStep(model, losses, config, weighting)
    train_step = distributed.wrap_for_training(local_step, world)
    adversary = build_adversary(model.encoder.transformer, config)
    if world.active:  # the same batches, different dropout masks in each process
        torch.manual_seed(config.seed + 1_000_003 * world.rank)

    result = TrainResult(model=model)
    best_objective, best_state, bad_epochs = math.inf, None, 0
    step, samples, started = 0, 0, time.monotonic()
    for epoch in range(1, config.epochs + 1):
        model.train()
        cls_order = rng.permutation(n_cls) if cls_tasks else None
        pair_order = rng.permutation(n_pairs) if use_match else None
        for k in range(per_epoch):
            stop = should_stop is not None and should_stop()
            if distributed.any_rank(stop, world):
                raise TrainingCancelled("Training was cancelled; no version was registered.")
            texts: list[str] = []
            batch_labels: dict[str, torch.Tensor] = {}
            if cls_tasks:
                idx = world.shard(cls_order[k * bsz:(k + 1) * bsz])
                texts = [data.train.texts[i] for i in idx]
                if augmenter is not None:
                    texts = augmenter.apply(texts, [int(i) for i in idx], epoch)
                index = torch.as_tensor(idx, device=device)
                batch_labels = {task: labels[task][index] for task in cls_tasks}
                samples += len(idx)
            anchors: list[str] = []
            positives: list[str] = []
            if use_match:
                start = (k * bsz) % n_pairs
                pairs = pair_order[start:start + bsz]
                pairs = pairs[:len(pairs) - len(pairs) % world.size]  # equal shares
                if len(pairs) >= 2 * world.size:  # in-batch negatives in every share
                    idx = world.shard(pairs)
                    anchors = [data.train_pairs.anchors[i] for i in idx]
                    positives = [data.train_pairs.positives[i] for i in idx]
                    if augmenter is not None:
                        keys = [PAIR_KEYS + 2 * int(i) for i in idx]
                        anchors = augmenter.apply(anchors, keys, epoch)
                        positives = augmenter.apply(positives, [k + 1 for k in keys], epoch)
                    samples += len(idx)
            if not texts and not anchors:
                continue  # the same on every process: shares are empty together
            batch = (texts, batch_labels, anchors, positives)
            optimizer.zero_grad(set_to_none=True)
            with adversary.recording() if adversary is not None else nullcontext():
                parts = train_step(*batch)
            idle = parts.pop(IDLE, None)
            total = parts.pop(TOTAL, None)
            if not parts and not world.active:
                continue
            # A share without labels joins the step with a zero loss (DDP needs every process).
            loss = total if parts else idle
            penalty = multitask.adapter_penalty(model.encoder)
            if penalty is not None:
                loss = loss + penalty
            loss.backward()
            adv_loss = None
            # Under torchrun every process takes the adversarial pass when one does (its
            # forward is a DDP step): a share without labels perturbs by zero.
            if adversary is not None and distributed.any_rank(bool(parts), world):
                adv_loss = adversary.backward(partial(_step_total, train_step, batch),
                                              partial(_step_total, local_step, batch))
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(
                    [p for g in groups for p in g["params"]], config.grad_clip
                )
            optimizer.step()
            multitask.after_optimizer_step(model.encoder, step)
            scheduler.step()
            step += 1
            elapsed = time.monotonic() - started
            if on_event is not None:
                event = {
                    "kind": "step", "epoch": epoch, "step": step, "total_steps": total_steps,
                    "loss": {t: float(v.detach()) for t, v in parts.items()},
                    "loss_total": float(loss.detach()), "lr": scheduler.get_last_lr()[-1],
                    "elapsed_s": elapsed,
                    "eta_s": elapsed / step * (total_steps - step),
                }
                if weighting.learned:
                    event["weights"] = weighting.weights()
                budget = multitask.rank_budget(model.encoder)
                if budget is not None:
                    event["rank_budget"] = budget
                if adv_loss is not None:
                    event["adv_loss"] = adv_loss
                on_event(event)
        metrics = evaluate_tasks(model, data, config, losses)
        objective = sum(
            config.weight(t) * metrics[f"{t}/loss"] for t in data.tasks
            if not math.isnan(metrics.get(f"{t}/loss", math.nan))
        )
        metrics["objective"] = objective
        result.history.append({"epoch": epoch, **metrics})
        if on_event is not None:
            on_event({"kind": "epoch", "epoch": epoch, "step": step, "metrics": metrics})
        if objective < best_objective - 1e-6:
            best_objective, bad_epochs, result.best_epoch = objective, 0, epoch
            best_state = {n: v.detach().clone() for n, v in model.state_dict().items()
                          if n in trainable}
            result.val_metrics = metrics
        else:
            bad_epochs += 1
            if bad_epochs > config.patience:
                result.stopped_early = True
                log.info("early stop after epoch %d (best %d)", epoch, result.best_epoch)
                break
    del train_step  # the DDP wrapper's hooks must not outlive the process group
    if adversary is not None:
        adversary.close()
    result.task_weights = weighting.weights()
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    merge_for_inference(model.encoder)
    model.eval()
    result.n_steps = step
    [total_samples] = distributed.all_sum([samples], world)
    result.samples_per_s = total_samples / max(time.monotonic() - started, 1e-9)
    return result


def warm_up_heads(model: MultiTaskModel, data: TaskData, config: TrainConfig, losses: Losses,
                  on_event: EventFn | None = None,
                  should_stop: Callable[[], bool] | None = None) -> None:
    """Linear probing before fine-tuning (LP-FT, Kumar et al. 2022).

    Embeds the training reviews once with the encoder as it is, then fits the classification
    heads on those fixed embeddings for ``config.head_warmup_epochs`` epochs. Fine-tuning then
    starts from useful heads instead of random ones, whose gradients would distort the
    pre-trained features in the first steps.
    """
    cls_tasks = [t for t in data.tasks if t in CLASSIFICATION_TASKS]
    if config.head_warmup_epochs <= 0 or not cls_tasks or not len(data.train):
        return
    device = model.encoder.device_info.torch_device
    started = time.monotonic()
    was_training = model.training
    model.eval()
    z = _embed_all(model, data.train.texts, config.embed_batch_size)  # (n, d)
    labels = {t: torch.as_tensor(data.train.labels[t], device=device) for t in cls_tasks}
    params = list(model.heads.parameters())
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(params, lr=config.head_learning_rate,
                                  weight_decay=config.weight_decay, fused=fused)
    rng = np.random.default_rng(config.seed + 1)
    model.dropout.train()
    bsz = config.batch_size
    for _ in range(config.head_warmup_epochs):
        if should_stop is not None and should_stop():
            raise TrainingCancelled("Training was cancelled; no version was registered.")
        order = torch.as_tensor(rng.permutation(len(z)), device=device)
        for k in range(0, len(order), bsz):
            index = order[k:k + bsz]
            logits = model.head_logits(z[index])
            parts = [
                config.weight(t) * losses.classification(t, logits[t], labels[t][index])
                for t in cls_tasks if _has_labels(t, labels[t][index])
            ]
            if not parts:
                continue
            optimizer.zero_grad(set_to_none=True)
            sum(parts).backward()
            optimizer.step()
    model.train(was_training)
    log.info("heads warmed up for %d epochs on %d embeddings in %.1f s",
             config.head_warmup_epochs, len(z), time.monotonic() - started)
    if on_event is not None:
        on_event({"kind": "head_warmup", "epochs": config.head_warmup_epochs,
                  "seconds": time.monotonic() - started})


@torch.no_grad()
def _embed_all(model: MultiTaskModel, texts: list[str], bsz: int) -> torch.Tensor:
    """(n, d) vectors of ``texts``; under torchrun each process embeds its share and every
    process gets them all (``distributed.gather_rows``)."""
    world = distributed.current_world()
    share = world.shard(texts)
    chunks = [model.embed(share[i:i + bsz]) for i in range(0, len(share), bsz)]
    device = model.encoder.device_info.torch_device
    local = torch.cat(chunks) if chunks else torch.zeros((0, model.encoder.dim), device=device)
    return distributed.gather_rows(local, len(texts), world)


@torch.no_grad()
def evaluate_tasks(model: MultiTaskModel, data: TaskData, config: TrainConfig,
                   losses: Losses | None = None) -> dict[str, float]:
    """Validation metrics: AUC for overall, macro-F1 and accuracy for the category tasks,
    recall@1/@10 of the contrastive match among all validation pairs; a loss per task."""
    device = model.encoder.device_info.torch_device
    losses = losses or Losses(data, config, device)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    val: ClassificationSet = data.val
    cls_tasks = [t for t in data.tasks if t in CLASSIFICATION_TASKS]
    if cls_tasks and len(val):
        z = _embed_all(model, val.texts, config.embed_batch_size)
        logits = model.head_logits(z)
        for task in cls_tasks:
            y = torch.as_tensor(val.labels[task], device=device)
            keep = y != IGNORE if task != "overall" else torch.ones_like(y, dtype=torch.bool)
            if not bool(keep.any()):
                continue
            lg, yy = logits[task][keep], y[keep]
            out[f"{task}/loss"] = float(losses.classification(task, lg, yy))
            y_np = yy.cpu().numpy()
            if task == "overall":
                out["overall/auc"] = roc_auc(y_np, lg[:, 0].cpu().numpy())
                out["overall/accuracy"] = accuracy(y_np, (lg[:, 0] > 0).long().cpu().numpy())
            else:
                pred = lg.argmax(-1).cpu().numpy()
                out[f"{task}/macro_f1"] = macro_f1(y_np, pred)
                out[f"{task}/accuracy"] = accuracy(y_np, pred)
    pairs: PairSet = data.val_pairs
    if "match" in data.tasks and len(pairs) >= 2:
        a = _embed_all(model, pairs.anchors, config.embed_batch_size)
        p = _embed_all(model, pairs.positives, config.embed_batch_size)
        bsz = config.batch_size
        chunk_losses = [
            float(losses.match(a[i:i + bsz], p[i:i + bsz]))
            for i in range(0, len(a) - 1, bsz) if len(a[i:i + bsz]) >= 2
        ]
        out["match/loss"] = float(np.mean(chunk_losses))
        sim = (F.normalize(a, dim=-1) @ F.normalize(p, dim=-1).T).cpu().numpy()
        out["match/recall@1"] = recall_at_k_matrix(sim, 1)
        out["match/recall@10"] = recall_at_k_matrix(sim, 10)
    model.train(was_training)
    return out
