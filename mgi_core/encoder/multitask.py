"""The shared encoder with one head per task, and how its weights are made trainable."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import torch
from torch import nn

from mgi_core.config import TrainConfig
from mgi_core.encoder.model import Encoder
from mgi_core.errors import ConfigError

if TYPE_CHECKING:
    from peft.tuners.adalora import AdaLoraModel

log = logging.getLogger(__name__)


class MultiTaskModel(nn.Module):
    """``z = f_θ(x)`` (mean-pooled) feeding a linear head per classification task.

    Heads: ``overall`` → 1 logit; ``category`` / ``subcategory`` → one logit per class.
    ``match`` has no head: it scores cosine similarity between embeddings.
    """

    def __init__(self, encoder: Encoder, n_classes: dict[str, int], dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {task: nn.Linear(encoder.dim, n) for task, n in n_classes.items()}
        )
        self.heads.to(encoder.device_info.torch_device)

    def embed(self, texts: list[str]) -> torch.Tensor:
        return self.encoder(texts)  # (b, d)

    def head_logits(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.dropout(z)
        return {task: head(z) for task, head in self.heads.items()}


def _layer_list(transformer: nn.Module) -> nn.ModuleList | None:
    n = getattr(transformer.config, "num_hidden_layers", None)
    for module in transformer.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    return None


def apply_strategy(encoder: Encoder, config: TrainConfig, total_steps: int | None = None) -> None:
    """Make the right encoder weights trainable: (Ada)LoRA adapters, all, or upper layers.

    ``adalora`` (Zhang et al. 2023, peft's ``AdaLoraConfig``) parametrises each adapter as
    ``P Λ Q`` with ``adalora_init_rank`` singular values and prunes the least important ones
    until the total rank is ``adalora_target_rank`` × the number of adapted modules. Its
    schedule is in optimiser steps, so it needs ``total_steps`` (the run's optimiser steps):
    ``tinit = ⌊adalora_tinit · total_steps⌋`` steps at the initial rank, then a cubic
    decrease of the budget, then ``tfinal = ⌊adalora_tfinal · total_steps⌋`` steps at the
    final budget. So that short runs stay valid (peft wants ``tinit < total_steps - tfinal``)
    and still reach the target budget, ``tfinal`` is at least 1 and ``tinit`` at most
    ``total_steps - tfinal - 1`` once ``total_steps >= 2``; a run of one step keeps the
    initial rank (nothing is pruned after its only step). The adapters go on the
    ``lora_targets`` modules outside the transformer's pooler, whose output the mean-pooling
    encoder never uses.

    Raises:
        ConfigError: strategy ``adalora`` without a positive ``total_steps``.
    """
    transformer = encoder.transformer
    if config.strategy == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout, target_modules=list(config.lora_targets),
            bias="none",
        )
        encoder.transformer = get_peft_model(transformer, lora)
    elif config.strategy == "adalora":
        from peft import AdaLoraConfig, get_peft_model

        tinit, tfinal = adalora_schedule(config, total_steps)
        adalora = AdaLoraConfig(
            init_r=config.adalora_init_rank, target_r=config.adalora_target_rank,
            tinit=tinit, tfinal=tfinal, deltaT=config.adalora_delta_t, total_step=total_steps,
            lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets), bias="none",
            exclude_modules=_pooler_modules(transformer) or None,
        )
        encoder.transformer = get_peft_model(transformer, adalora)
        log.info("AdaLoRA: %d steps at rank %d, budget fixed at %d per module from step %d",
                 tinit, config.adalora_init_rank, config.adalora_target_rank,
                 total_steps - tfinal)
    elif config.strategy == "freeze":
        layers = _layer_list(transformer)
        n_layers = len(layers) if layers is not None else 0
        for p in transformer.parameters():
            p.requires_grad = False
        if layers is not None:
            for layer in list(layers)[min(config.freeze_layers, n_layers):]:
                for p in layer.parameters():
                    p.requires_grad = True
    else:
        for p in transformer.parameters():
            p.requires_grad = True
    n_train = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in encoder.parameters())
    log.info("strategy %s: %d of %d encoder weights trainable", config.strategy, n_train, n_all)


def _pooler_modules(transformer: nn.Module) -> list[str]:
    """Names of the modules in the transformer's pooler (BERT's ``[CLS]`` dense + tanh).

    The encoder mean-pools the last hidden states, so the pooler's output never reaches a
    loss: an AdaLoRA adapter there would hold rank budget without ever being trained.
    """
    pooler = getattr(transformer, "pooler", None)
    if not isinstance(pooler, nn.Module):
        return []
    return [f"pooler.{name}" for name, _ in pooler.named_modules() if name]


def adalora_schedule(config: TrainConfig, total_steps: int | None) -> tuple[int, int]:
    """AdaLoRA's ``(tinit, tfinal)`` in steps for a run of ``total_steps`` (rule in
    ``apply_strategy``).

    Raises:
        ConfigError: ``total_steps`` is missing or below 1.
    """
    if total_steps is None or total_steps < 1:
        raise ConfigError(
            f"strategy 'adalora' needs the run's number of optimiser steps (got "
            f"{total_steps!r}): its rank budget shrinks on a schedule over them. Pass "
            "total_steps (fine_tune does), or choose strategy 'lora'."
        )
    if total_steps == 1:
        return 0, 0
    tfinal = max(1, int(config.adalora_tfinal * total_steps))
    tinit = min(int(config.adalora_tinit * total_steps), total_steps - tfinal - 1)
    return tinit, tfinal


def _adalora(encoder: Encoder) -> AdaLoraModel | None:
    """The encoder's peft ``AdaLoraModel`` (the tuner inside its PeftModel), else None."""
    if "peft" not in sys.modules:  # nothing was wrapped by peft: no import needed
        return None
    from peft.tuners.adalora import AdaLoraModel

    tuner = getattr(encoder.transformer, "base_model", None)
    return tuner if isinstance(tuner, AdaLoraModel) else None


def adapter_penalty(encoder: Encoder) -> torch.Tensor | None:
    """AdaLoRA's orthogonal regularisation of ``P`` and ``Q``, weighted (a scalar to add to
    the loss); None for the other strategies.

    ``R = w · mean over the matrices M of ‖C(M) - I‖_F`` with ``C(Q) = Q Qᵀ`` (r × r) for
    the right singular vectors ``lora_A`` (r, in), ``C(P) = Pᵀ P`` for the left ones
    ``lora_B`` (out, r), and ``w`` peft's ``orth_reg_weight``: what peft's
    ``AdaLoraModel.forward`` adds to a model output's ``loss``. The encoder calls the
    transformer without labels, so its output has no loss and the term is added here.
    """
    tuner = _adalora(encoder)
    if tuner is None:
        return None
    adapter = tuner.trainable_adapter_name
    weight = tuner.peft_config[adapter].orth_reg_weight
    norms = []
    for name, p in tuner.model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and adapter in name:
            cov = p @ p.T if "lora_A" in name else p.T @ p  # (r, r)
            eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
            norms.append(torch.linalg.matrix_norm(cov - eye, ord="fro"))
    if not norms:
        return torch.zeros((), device=encoder.device_info.torch_device)
    return weight * torch.stack(norms).mean()


@torch.no_grad()
def after_optimizer_step(encoder: Encoder, step: int) -> None:
    """AdaLoRA: update the importance scores and reallocate the rank budget; else nothing.

    Call it right after ``optimizer.step()`` and before the gradients are cleared (the
    scores are ``|θ · ∂L/∂θ|``). ``step`` counts the optimiser steps taken before this one
    (0 for the first, as peft counts); the budget reaches its target at step
    ``total_steps - tfinal`` and stays there. A singular value the loss does not reach has
    no gradient: it scores 0 (peft would fail on the missing gradient). With
    ``adalora_target_rank == adalora_init_rank`` there is nothing to prune and nothing is
    done.
    """
    tuner = _adalora(encoder)
    if tuner is None:
        return
    adapter = tuner.trainable_adapter_name
    peft_config = tuner.peft_config[adapter]
    if peft_config.target_r >= peft_config.init_r:
        return  # peft would ask for the 0-th smallest score
    for name, p in tuner.model.named_parameters():
        if "lora_" in name and adapter in name and p.grad is None:
            p.grad = torch.zeros_like(p)  # peft multiplies by p.grad; no gradient = 0
    allocator = tuner.rankallocator
    if not allocator.ipt and step >= peft_config.total_step - peft_config.tfinal:
        allocator.update_ipt(tuner.model)  # the final allocation needs scores to rank
    tuner.update_and_allocate(step)


def rank_budget(encoder: Encoder) -> int | None:
    """AdaLoRA: the total rank now allocated over all adapters (singular values not masked
    to zero); None for the other strategies.

    Before the first allocation every adapter has its initial rank.
    """
    tuner = _adalora(encoder)
    if tuner is None:
        return None
    adapter = tuner.trainable_adapter_name
    pattern = tuner.peft_config[adapter].rank_pattern
    if pattern is None:
        return sum(p.shape[0] for name, p in tuner.model.named_parameters()
                   if "lora_E" in name and adapter in name)
    return int(sum(sum(bool(b) for b in kept) for kept in pattern.values()))


def merge_for_inference(encoder: Encoder) -> None:
    """Fold (Ada)LoRA adapters into the base weights so the saved model is a plain
    transformer (``W + B A`` for LoRA, ``W + P Λ Q`` with the masked values at 0 for
    AdaLoRA)."""
    transformer = encoder.transformer
    if hasattr(transformer, "merge_and_unload"):
        encoder.transformer = transformer.merge_and_unload()


def trainable_parameters(model: MultiTaskModel) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder parameters, head parameters) that require gradients."""
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    return enc, heads
