"""The shared encoder with one head per task, and how its weights are made trainable."""

from __future__ import annotations

import logging

import torch
from torch import nn

from mgi_core.config import TrainConfig
from mgi_core.encoder.model import Encoder

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


def apply_strategy(encoder: Encoder, config: TrainConfig) -> None:
    """Make the right encoder weights trainable: LoRA adapters, all, or upper layers."""
    transformer = encoder.transformer
    if config.strategy == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout, target_modules=list(config.lora_targets),
            bias="none",
        )
        encoder.transformer = get_peft_model(transformer, lora)
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


def merge_for_inference(encoder: Encoder) -> None:
    """Fold LoRA adapters into the base weights so the saved model is a plain transformer."""
    transformer = encoder.transformer
    if hasattr(transformer, "merge_and_unload"):
        encoder.transformer = transformer.merge_and_unload()


def trainable_parameters(model: MultiTaskModel) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder parameters, head parameters) that require gradients."""
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    return enc, heads
