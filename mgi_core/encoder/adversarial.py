"""Adversarial training on the word embeddings: FGM and PGD.

FGM (Miyato, Dai & Goodfellow 2017): after the clean backward pass, each review's word
embeddings ``e`` are moved by ``r = ε · g / ‖g‖`` (``g`` the loss gradient at ``e``, its
norm taken per review over tokens and dimensions), the step's loss is computed again on
``e + r`` and its gradient is added to the clean one. The encoder learns to keep its
answers when a review's words shift a little in the direction that hurts most.

PGD (Madry et al. 2018): ``pgd_steps`` such moves of norm ``pgd_alpha``, each projected
back into the ball of radius ε; only the last perturbed pass adds its gradient to the
weights (the earlier ones only find the direction).

The perturbation is added to the output of the transformer's input-embedding module by a
forward hook, so it works for every strategy, LoRA included (whose embedding weights are
frozen). Under torchrun the perturbation is found from each process's own reviews (the
gradient at the embeddings is per review; DDP averages only the weights' gradients), and
PGD's search passes run outside DDP; the final perturbed pass goes through DDP like the
clean one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from mgi_core.config import TrainConfig

LossFn = Callable[[], torch.Tensor]


def input_embeddings(transformer: nn.Module) -> nn.Module:
    """The module that turns token ids into word embeddings (through a peft wrapper too)."""
    module = transformer.get_input_embeddings()
    if module is None:
        raise ValueError(f"{type(transformer).__name__} has no input embeddings to perturb")
    return module


def _per_review_unit(g: torch.Tensor) -> torch.Tensor:
    """``g / ‖g‖`` with the norm over every axis but the first (one review each)."""
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``delta`` scaled back, per review, into the ball of radius ``epsilon``."""
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (epsilon / norm).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


class Adversary:
    """Records the word embeddings of a step's passes and perturbs a second pass.

    Usage in a training step::

        with adversary.recording():
            loss = step_loss()          # clean forward
        loss.backward()
        adversary.backward(step_loss, search_loss)   # adds the adversarial gradient

    ``step_loss`` and ``search_loss`` recompute the same step's loss (same texts, same
    order of encoder calls); ``search_loss`` may bypass DDP (used for PGD's search).
    """

    def __init__(self, embeddings: nn.Module, config: TrainConfig) -> None:
        self.mode = config.adversarial
        self.epsilon = float(config.adv_epsilon)
        self.steps = int(config.pgd_steps)
        self.alpha = float(config.pgd_alpha)
        self._record = False
        self._outputs: list[torch.Tensor] = []
        self._deltas: list[torch.Tensor] | None = None
        self._calls = 0
        self.last_norm = 0.0  # mean per-review norm of the last perturbation (for tests/logs)
        self._handle = embeddings.register_forward_hook(self._hook)

    def close(self) -> None:
        self._handle.remove()

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        i, self._calls = self._calls, self._calls + 1
        if self._deltas is not None:
            output = output + self._deltas[i]
        if self._record:
            if not output.requires_grad:  # frozen embeddings (LoRA, freeze): a leaf for grad
                output = output.detach().requires_grad_(True)
            output.retain_grad()
            self._outputs.append(output)
        return output

    @contextmanager
    def recording(self):
        """Keep each embedding output of the passes inside, with its gradient."""
        self._record, self._outputs, self._calls = True, [], 0
        try:
            yield
        finally:
            self._record = False

    @contextmanager
    def _perturbed(self, deltas: list[torch.Tensor], record: bool):
        self._deltas, self._calls = deltas, 0
        self._record, self._outputs = record, []
        try:
            yield
        finally:
            self._deltas, self._record = None, False

    def _gradients(self) -> list[torch.Tensor]:
        grads = [o.grad for o in self._outputs]
        if any(g is None for g in grads):
            raise RuntimeError("no gradient at the word embeddings: call backward() on the "
                               "clean loss (inside recording()) first")
        return [g.detach() for g in grads]

    def backward(self, step_loss: LossFn, search_loss: LossFn | None = None) -> float:
        """Add the adversarial loss's gradient to the weights' (after the clean backward).

        Returns the adversarial loss (a float, for the logs).
        """
        grads = self._gradients()
        if self.mode == "fgm":
            deltas = [self.epsilon * _per_review_unit(g) for g in grads]
        else:  # pgd: search the ball, the weights' gradient from the last pass only
            search = search_loss or step_loss
            deltas = [torch.zeros_like(g) for g in grads]
            for _ in range(self.steps - 1):
                deltas = [_project(d + self.alpha * _per_review_unit(g), self.epsilon)
                          for d, g in zip(deltas, grads, strict=True)]
                with self._perturbed(deltas, record=True):
                    loss = search()
                outputs = self._outputs
                grads = [g.detach() for g in torch.autograd.grad(loss, outputs)]
            deltas = [_project(d + self.alpha * _per_review_unit(g), self.epsilon)
                      for d, g in zip(deltas, grads, strict=True)]
        self.last_norm = float(torch.stack(
            [d.flatten(1).norm(dim=1).mean() for d in deltas]).mean())
        with self._perturbed(deltas, record=False):
            loss = step_loss()
        loss.backward()
        return float(loss.detach())


def build_adversary(transformer: nn.Module, config: TrainConfig) -> Adversary | None:
    """An ``Adversary`` on ``transformer``'s word embeddings, or None (adversarial 'none')."""
    if config.adversarial == "none" or config.adv_epsilon <= 0:
        return None
    return Adversary(input_embeddings(transformer), config)
