"""AdaLoRA on a tiny local BERT: the rank budget shrinks to its target, the orthogonal
penalty is peft's, and the merged model is a plain transformer with the same outputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mgi_core.config import TrainConfig
from mgi_core.encoder.model import Encoder, load_encoder
from mgi_core.encoder.multitask import (
    adalora_schedule,
    adapter_penalty,
    after_optimizer_step,
    apply_strategy,
    merge_for_inference,
    rank_budget,
)
from mgi_core.errors import ConfigError

INIT, TARGET = 6, 2


def _config(tiny_bert, **kw) -> TrainConfig:
    return TrainConfig(**{
        "base_model": str(tiny_bert), "strategy": "adalora", "device": "cpu",
        "max_seq_length": 16, "adalora_init_rank": INIT, "adalora_target_rank": TARGET,
        "adalora_delta_t": 1, **kw})


def _adapted(encoder: Encoder) -> list[str]:
    """Names of the modules that carry an AdaLoRA adapter."""
    from peft.tuners.adalora import AdaLoraLayer

    return [n for n, m in encoder.transformer.named_modules() if isinstance(m, AdaLoraLayer)]


def _train(encoder: Encoder, texts: list[str], steps: int, first_step: int = 0) -> list[int]:
    """``steps`` AdamW steps on a toy loss (shrink the embeddings) plus the adapter penalty,
    calling the AdaLoRA hook after each; the rank budget after each step."""
    params = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-3)
    budgets = []
    for step in range(first_step, first_step + steps):
        loss = encoder(texts).pow(2).mean() + adapter_penalty(encoder)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        after_optimizer_step(encoder, step)
        budgets.append(rank_budget(encoder))
    return budgets


def _nonzero_singular_values(encoder: Encoder) -> int:
    return sum(int((p != 0).sum()) for n, p in encoder.transformer.named_parameters()
               if "lora_E" in n)


def test_adalora_needs_the_number_of_steps(tiny_bert) -> None:
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    for total_steps in (None, 0):
        with pytest.raises(ConfigError, match="total_steps"):
            apply_strategy(encoder, _config(tiny_bert), total_steps)
    assert not _adapted(encoder)  # nothing was wrapped


@pytest.mark.parametrize(("tinit", "tfinal", "total", "expected"), [
    (0.1, 0.2, 100, (10, 20)),  # the shares as they are
    (0.1, 0.2, 2, (0, 1)),  # ⌊0.4⌋ = 0 final steps → 1, so step 1 fixes the target budget
    (0.9, 0.05, 10, (8, 1)),  # tfinal 0 → 1, then tinit 9 → 10 - 1 - 1 = 8 (peft: 8 < 9)
    (0.1, 0.2, 1, (0, 0)),  # one step: nothing to shrink after it
])
def test_the_schedule_fits_short_runs(tiny_bert, tinit, tfinal, total, expected) -> None:
    config = _config(tiny_bert, adalora_tinit=tinit, adalora_tfinal=tfinal)
    assert adalora_schedule(config, total) == expected
    t_init, t_final = expected
    assert t_init < total - t_final  # what peft's AdaLoraConfig requires


def test_the_rank_budget_shrinks_to_the_target(tiny_bert, snapshot) -> None:
    # 20 steps: tinit = ⌊0.1·20⌋ = 2, tfinal = ⌊0.2·20⌋ = 4; the budget falls (cubically)
    # over steps 3..15 and is fixed at TARGET per adapter from step 16 = 20 - 4 on.
    config = _config(tiny_bert)  # default targets: query, key, value and every dense
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    apply_strategy(encoder, config, total_steps=20)
    n = len(_adapted(encoder))
    assert n == 12  # 6 per layer × 2 layers; not the pooler, whose output goes unused
    assert rank_budget(encoder) == INIT * n
    budgets = _train(encoder, list(snapshot["text"][:8]), 20)
    assert budgets[:3] == [INIT * n] * 3  # steps 0..2: warm-up at the initial rank
    assert all(a >= b for a, b in itertools.pairwise(budgets))
    assert INIT * n > budgets[8] > TARGET * n  # in between while the budget falls
    assert budgets[16:] == [TARGET * n] * 4
    # The masked singular values are zero in the model, not only in the bookkeeping.
    assert _nonzero_singular_values(encoder) == TARGET * n


@pytest.mark.parametrize("first_step", [0, 1])
def test_a_two_step_run_reaches_the_target_however_steps_are_counted(
        tiny_bert, snapshot, first_step) -> None:
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    apply_strategy(encoder, _config(tiny_bert, lora_targets=("query", "value")), 2)
    n = len(_adapted(encoder))
    assert n == 4
    budgets = _train(encoder, list(snapshot["text"][:8]), 2, first_step)
    assert budgets[-1] == TARGET * n


def test_equal_initial_and_target_ranks_keep_every_adapter_whole(tiny_bert, snapshot) -> None:
    # Nothing to prune (peft alone would ask for the 0-th smallest score and fail).
    config = _config(tiny_bert, adalora_init_rank=TARGET, lora_targets=("query", "value"))
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    apply_strategy(encoder, config, 4)
    assert _train(encoder, list(snapshot["text"][:8]), 4) == [TARGET * 4] * 4


def test_adalora_is_not_plain_lora(tiny_bert, snapshot) -> None:
    texts = list(snapshot["text"][:8])
    lora = load_encoder(str(tiny_bert), 16, "cpu")
    apply_strategy(lora, _config(tiny_bert, strategy="lora"))
    assert (adapter_penalty(lora), rank_budget(lora)) == (None, None)
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    loss = lora(texts).pow(2).mean()
    loss.backward()
    after_optimizer_step(lora, 0)  # a no-op for LoRA
    assert all(torch.equal(p, before[n]) for n, p in lora.named_parameters())

    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    apply_strategy(encoder, _config(tiny_bert, lora_targets=("query", "value")), 10)
    penalty = adapter_penalty(encoder)
    assert penalty is not None and penalty.requires_grad and float(penalty.detach()) > 0
    penalty.backward()  # it trains P and Q
    grads = [p.grad for n, p in encoder.named_parameters() if "lora_A" in n or "lora_B" in n]
    assert len(grads) == 8 and all(g is not None and bool(g.abs().sum() > 0) for g in grads)
    # The singular values got no gradient from it: they score 0 (peft alone would fail).
    after_optimizer_step(encoder, 0)
    assert rank_budget(encoder) == INIT * 4
    # Worked values: all P and Q zero → every ‖0 - I_r‖_F = √r, so 0.5 (peft's
    # orth_reg_weight) × √6; orthonormal rows of Q and columns of P → 0.
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.zero_()
        assert adapter_penalty(encoder).item() == pytest.approx(0.5 * math.sqrt(INIT))
        for name, p in encoder.named_parameters():
            if "lora_A" in name:
                p.copy_(torch.eye(*p.shape))  # (r, in): Q Qᵀ = I
            elif "lora_B" in name:
                p.copy_(torch.eye(*p.shape))  # (out, r): Pᵀ P = I
        assert adapter_penalty(encoder).item() == pytest.approx(0.0, abs=1e-6)


def test_the_merged_model_is_a_plain_transformer_with_the_same_outputs(
        tiny_bert, snapshot) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import BertModel

    texts = list(snapshot["text"][:16])
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    plain_keys = set(encoder.transformer.state_dict())
    apply_strategy(encoder, _config(tiny_bert), total_steps=8)
    _train(encoder, texts[:8], 8)  # past the final allocation (step 8 - 1 = 7)
    assert 0 < _nonzero_singular_values(encoder) < INIT * len(_adapted(encoder))
    encoder.eval()
    with torch.no_grad():
        adapted = encoder(texts)
        with encoder.transformer.disable_adapter():
            unadapted = encoder(texts)
    assert not torch.allclose(adapted, unadapted, atol=1e-4)  # the adapters changed it
    merge_for_inference(encoder)
    assert type(encoder.transformer) is BertModel
    assert not any(isinstance(m, BaseTunerLayer) for m in encoder.transformer.modules())
    assert set(encoder.transformer.state_dict()) == plain_keys
    assert rank_budget(encoder) is None
    with torch.no_grad():
        merged = encoder(texts)
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)


def test_fine_tune_shrinks_the_budget_adds_the_penalty_and_saves_a_plain_model(
        tiny_bert, snapshot) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import BertModel

    from mgi_core.encoder.tasks import build_task_data
    from mgi_core.encoder.train import fine_tune

    # 64 reviews in batches of 8 for 2 epochs: 16 steps, tinit = ⌊1.6⌋ = 1, tfinal =
    # ⌊3.2⌋ = 3: the budget is fixed at TARGET per adapter from the 14th step on.
    config = _config(tiny_bert, tasks=("overall", "category"), max_train_reviews=64,
                     batch_size=8, epochs=2, patience=5, learning_rate=5e-3,
                     head_learning_rate=1e-2, warmup_ratio=0.0, head_warmup_epochs=2)
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    before = {n: p.detach().clone() for n, p in encoder.transformer.named_parameters()}
    events: list[dict] = []
    result = fine_tune(encoder, build_task_data(snapshot, config), config,
                       on_event=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == steps[-1]["total_steps"] == result.n_steps == 16
    budgets = [e["rank_budget"] for e in steps]
    n = 12  # query, key, value and 3 dense per layer × 2 layers (not the pooler)
    assert budgets[0] == INIT * n and budgets[13:] == [TARGET * n] * 3
    assert all(a >= b for a, b in itertools.pairwise(budgets)) and len(set(budgets)) > 2
    # The orthogonal penalty is in the step's loss on top of the weighted task losses.
    extra = [e["loss_total"] - sum(config.weight(t) * v for t, v in e["loss"].items())
             for e in steps]
    assert all(x > 1e-3 for x in extra)
    # Saved as a plain transformer: adapters folded into the targeted weights only.
    transformer = result.model.encoder.transformer
    assert type(transformer) is BertModel
    assert not any(isinstance(m, BaseTunerLayer) for m in transformer.modules())
    after = dict(transformer.named_parameters())
    assert set(after) == set(before)
    moved = {name for name, p in before.items() if not torch.equal(p, after[name].detach())}
    assert moved and all(name.endswith(("query.weight", "key.weight", "value.weight",
                                        "dense.weight")) and "pooler" not in name
                         for name in moved)
