"""FGM and PGD on the word embeddings: the perturbation climbs the loss, stays in its ball,
changes the weights' gradient, and works with frozen embeddings (LoRA)."""

from __future__ import annotations

import pytest
import torch

from mgi_core.config import TrainConfig
from mgi_core.encoder.adversarial import build_adversary
from mgi_core.encoder.model import load_encoder
from mgi_core.encoder.tasks import build_task_data
from mgi_core.encoder.train import TOTAL, Losses, TrainStep, build_model, fine_tune
from mgi_core.encoder.weighting import TaskWeighting


def _setup(tiny_bert, snapshot, **kw):
    # No dropout anywhere: the clean and the perturbed pass differ only by the perturbation.
    config = TrainConfig(base_model=str(tiny_bert), device="cpu", max_seq_length=16,
                         dropout=0.0, lora_dropout=0.0, tasks=("overall", "category"), **kw)
    data = build_task_data(snapshot, config)
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    model = build_model(encoder, data, config, total_steps=10)
    model.eval()
    losses = Losses(data, config, torch.device("cpu"))
    step = TrainStep(model, losses, config, TaskWeighting(list(data.tasks), config))
    idx = list(range(8))
    labels = {t: torch.as_tensor(data.train.labels[t][idx]) for t in ("overall", "category")}
    batch = ([data.train.texts[i] for i in idx], labels, [], [])
    return config, model, step, batch


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("strategy", ["full", "lora"])
@pytest.mark.parametrize("mode", ["fgm", "pgd"])
def test_the_perturbation_climbs_the_loss_and_changes_the_gradient(
        tiny_bert, snapshot, strategy, mode) -> None:
    config, model, step, batch = _setup(tiny_bert, snapshot, strategy=strategy,
                                        adversarial=mode, adv_epsilon=0.5, pgd_steps=3,
                                        pgd_alpha=0.3)
    adversary = build_adversary(model.encoder.transformer, config)
    with adversary.recording():
        clean = step(*batch)[TOTAL]
    clean.backward()
    clean_grads = _grads(model)
    adv_loss = adversary.backward(lambda: step(*batch)[TOTAL])
    both = _grads(model)
    assert adv_loss > float(clean.detach()) + 1e-4  # a step up the loss, not a random one
    assert 0.0 < adversary.last_norm <= 0.5 + 1e-5
    if mode == "fgm":
        assert adversary.last_norm == pytest.approx(0.5, rel=1e-4)  # ε per review
    changed = [n for n in clean_grads if not torch.allclose(both[n], clean_grads[n])]
    assert len(changed) > len(clean_grads) // 2
    # Added to, not replacing, the clean gradient: both minus clean is the adversarial one.
    assert not torch.allclose(both[changed[0]] - clean_grads[changed[0]], clean_grads[changed[0]])
    adversary.close()


def test_no_adversary_when_off(tiny_bert, snapshot) -> None:
    config, model, *_ = _setup(tiny_bert, snapshot)
    assert build_adversary(model.encoder.transformer, config) is None
    off = config.__class__(**{**config.to_dict(), "adversarial": "fgm", "adv_epsilon": 0.0})
    assert build_adversary(model.encoder.transformer, off) is None


def test_fine_tune_with_fgm_logs_the_adversarial_loss_and_moves_other_weights(
        tiny_bert, snapshot) -> None:
    def run(mode: str):
        config = TrainConfig(base_model=str(tiny_bert), device="cpu", max_seq_length=16,
                             batch_size=8, max_train_reviews=24, warmup_ratio=0.0,
                             head_warmup_epochs=0, strategy="full", adversarial=mode,
                             learning_rate=5e-3, tasks=("overall", "category", "match"))
        events: list[dict] = []
        encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
        result = fine_tune(encoder, build_task_data(snapshot, config), config,
                           on_event=events.append)
        steps = [e for e in events if e["kind"] == "step"]
        return result, steps

    plain, plain_steps = run("none")
    fgm, fgm_steps = run("fgm")
    assert all("adv_loss" in e for e in fgm_steps) and not any("adv_loss" in e
                                                               for e in plain_steps)
    a = dict(plain.model.encoder.transformer.named_parameters())
    b = dict(fgm.model.encoder.transformer.named_parameters())
    assert any(not torch.allclose(a[n], b[n]) for n in a)
