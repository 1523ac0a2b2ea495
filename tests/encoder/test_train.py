"""Fine-tuning on a tiny local BERT: weights move, loss falls, runs are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgi_core.config import TrainConfig
from mgi_core.encoder.device import choose_device
from mgi_core.encoder.model import load_encoder
from mgi_core.encoder.tasks import build_task_data
from mgi_core.encoder.train import (
    Losses,
    TrainingCancelled,
    build_model,
    evaluate_tasks,
    fine_tune,
    warm_up_heads,
)

FAST = dict(batch_size=8, max_seq_length=16, learning_rate=5e-3, head_learning_rate=1e-2,
            warmup_ratio=0.0, device="cpu")


def _config(tiny_bert, **kw) -> TrainConfig:
    return TrainConfig(base_model=str(tiny_bert), **{**FAST, **kw})


def test_weights_change_after_a_step(tiny_bert, snapshot) -> None:
    config = _config(tiny_bert, strategy="full", max_train_reviews=8, tasks=("overall",))
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    before = {n: p.detach().clone() for n, p in encoder.transformer.named_parameters()}
    result = fine_tune(encoder, build_task_data(snapshot, config), config)
    assert result.n_steps == 1
    after = dict(result.model.encoder.transformer.named_parameters())
    moved = [n for n, p in before.items() if not torch.equal(p, after[n].detach())]
    assert len(moved) > len(before) // 2


def test_loss_falls_on_a_separable_set(tiny_bert, snapshot) -> None:
    config = _config(tiny_bert, strategy="full", epochs=6, patience=6,
                     tasks=("overall", "category"))
    events: list[dict] = []
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    result = fine_tune(encoder, build_task_data(snapshot, config), config,
                       on_event=events.append)
    steps = [e["loss_total"] for e in events if e["kind"] == "step"]
    assert np.mean(steps[-5:]) < 0.5 * np.mean(steps[:5])
    # Sentiment and category words are in the text: a separable set.
    assert result.val_metrics["overall/auc"] > 0.9
    assert result.val_metrics["category/accuracy"] > 0.8


@pytest.mark.parametrize("strategy", ["lora", "freeze"])
def test_lora_and_freeze_train_only_their_weights(tiny_bert, snapshot, strategy) -> None:
    config = _config(tiny_bert, strategy=strategy, freeze_layers=1, lora_rank=2,
                     lora_targets=("query", "value"), max_train_reviews=16)
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    before = {n: p.detach().clone() for n, p in encoder.transformer.named_parameters()}
    result = fine_tune(encoder, build_task_data(snapshot, config), config)
    after = dict(result.model.encoder.transformer.named_parameters())  # LoRA merged back
    assert set(after) == set(before)
    moved = {n for n, p in before.items() if not torch.equal(p, after[n].detach())}
    if strategy == "freeze":
        assert moved and all("layer.1." in n for n in moved)
    else:
        assert moved and all(("query" in n or "value" in n) for n in moved)


def test_same_seed_and_data_give_the_same_embeddings(tiny_bert, snapshot) -> None:
    config = _config(tiny_bert, max_train_reviews=32, strategy="lora", lora_rank=2,
                     lora_targets=("query", "value"))
    texts = list(snapshot["text"][:20])
    runs = []
    for _ in range(2):
        encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
        model = fine_tune(encoder, build_task_data(snapshot, config), config).model
        runs.append(model.encoder.encode(texts))
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    base = load_encoder(config.base_model, config.max_seq_length, "cpu").encode(texts)
    assert np.abs(base - runs[0]).max() > 1e-3  # training changed them


def test_head_warmup_fits_the_heads_and_leaves_the_encoder(tiny_bert, snapshot) -> None:
    config = _config(tiny_bert, strategy="lora", lora_rank=2, lora_targets=("query", "value"),
                     tasks=("overall", "category"), head_warmup_epochs=8)
    data = build_task_data(snapshot, config)
    model = build_model(load_encoder(config.base_model, config.max_seq_length, "cpu"), data,
                        config)
    losses = Losses(data, config, torch.device("cpu"))
    encoder_before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
    before = evaluate_tasks(model, data, config, losses)
    events: list[dict] = []
    warm_up_heads(model, data, config, losses, on_event=events.append)
    after = evaluate_tasks(model, data, config, losses)
    # The heads learnt from fixed embeddings: validation losses fall from random heads.
    assert after["overall/loss"] < before["overall/loss"]
    assert after["category/loss"] < 0.9 * before["category/loss"]
    assert all(torch.equal(p, dict(model.encoder.named_parameters())[n])
               for n, p in encoder_before.items())
    assert events and events[0]["kind"] == "head_warmup" and events[0]["epochs"] == 8
    assert model.training  # handed back in the mode it came in


def test_should_stop_cancels(tiny_bert, snapshot) -> None:
    config = _config(tiny_bert)
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    with pytest.raises(TrainingCancelled, match="cancelled"):
        fine_tune(encoder, build_task_data(snapshot, config), config, should_stop=lambda: True)


def test_encode_is_normalised_and_order_preserving(tiny_bert) -> None:
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    texts = ["bass", "great lens and sharp zoom with autofocus", "plot"]
    seen: list[tuple[int, int]] = []
    vecs = encoder.encode(texts, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert vecs.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[1], encoder.encode([texts[1]])[0], atol=1e-5)
    assert seen == [(2, 3), (3, 3)]


def test_device_choice_on_this_machine() -> None:
    info = choose_device("cpu")
    assert info.type == "cpu" and "CPU" in info.describe()
    if not torch.cuda.is_available():
        from mgi_core.errors import ConfigError

        with pytest.raises(ConfigError, match="no CUDA GPU"):
            choose_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs where present)")
def test_cuda_training_step_with_bf16_autocast(tiny_bert, snapshot) -> None:
    info = choose_device("auto")
    assert info.type == "cuda"
    config = _config(tiny_bert, device="cuda", max_train_reviews=16)
    encoder = load_encoder(config.base_model, config.max_seq_length, info)
    result = fine_tune(encoder, build_task_data(snapshot, config), config)
    assert result.n_steps == 2
    assert next(result.model.encoder.transformer.parameters()).device.type == "cuda"
