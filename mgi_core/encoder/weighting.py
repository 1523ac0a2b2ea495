"""How the task losses add up: fixed λ, or weights learned to balance the tasks.

``fixed``: ``L = Σ_k λ_k · ℓ_k`` (DESIGN, "The method").

``uncertainty`` (Kendall, Gal & Cipolla 2018): each task k with λ_k > 0 gets a learned
log-variance ``s_k`` and ``L = Σ_k exp(-s_k) · ℓ_k + s_k``. For fixed ``ℓ_k`` the loss is
lowest at ``s_k = log ℓ_k``, where every weighted loss ``exp(-s_k) · ℓ_k`` is 1: a task
whose loss is ten times larger gets a tenth of the weight, so tasks of different scale
(a contrastive loss over a batch of 16 against a binary cross-entropy) pull the encoder
with comparable force. ``s_k`` starts at ``-log λ_k``, so the first steps weigh the tasks
as the fixed λ do, and it learns at ``weighting_learning_rate``.

The module lives inside the training step (``encoder.train.TrainStep``), so under torchrun
DDP averages the gradients of ``s_k`` with the others and every process keeps the same
weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mgi_core.config import TrainConfig


class TaskWeighting(nn.Module):
    """Adds up the per-task losses of a step (see the module docstring)."""

    def __init__(self, tasks: list[str], config: TrainConfig) -> None:
        super().__init__()
        self.mode = config.task_weighting
        self.fixed = {t: config.weight(t) for t in tasks}
        learned = [t for t in tasks if self.fixed[t] > 0] if self.mode == "uncertainty" else []
        self.log_vars = nn.ParameterDict({
            t: nn.Parameter(torch.tensor(-math.log(self.fixed[t]))) for t in learned
        })

    @property
    def learned(self) -> bool:
        return len(self.log_vars) > 0

    def forward(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The step's loss from its per-task losses (tasks absent from the batch add 0)."""
        total = None
        for task, loss in parts.items():
            if task in self.log_vars:
                s = self.log_vars[task]
                term = torch.exp(-s) * loss + s
            else:
                term = self.fixed.get(task, 1.0) * loss
            total = term if total is None else total + term
        if total is None:
            raise ValueError("no task loss in this batch")
        return total

    def weights(self) -> dict[str, float]:
        """The weight each task's loss has now: λ_k, or exp(-s_k) for learned ones."""
        out = dict(self.fixed)
        for task, s in self.log_vars.items():
            out[task] = float(torch.exp(-s.detach()))
        return out
