"""Task weighting: fixed λ, and learned uncertainty weights that balance the task losses."""

from __future__ import annotations

import math

import pytest
import torch

from mgi_core.config import TrainConfig
from mgi_core.encoder.model import load_encoder
from mgi_core.encoder.tasks import build_task_data
from mgi_core.encoder.train import fine_tune
from mgi_core.encoder.weighting import TaskWeighting


def test_fixed_weights_are_the_lambdas() -> None:
    config = TrainConfig(task_weights={"overall": 2.0, "category": 0.5})
    w = TaskWeighting(["overall", "category"], config)
    assert not w.learned and w.weights() == {"overall": 2.0, "category": 0.5}
    parts = {"overall": torch.tensor(1.5), "category": torch.tensor(4.0)}
    assert float(w(parts)) == pytest.approx(2.0 * 1.5 + 0.5 * 4.0)


def test_uncertainty_starts_at_the_lambdas_and_balances_losses_of_different_scale() -> None:
    config = TrainConfig(task_weighting="uncertainty",
                         task_weights={"overall": 1.0, "category": 1.0, "match": 0.0})
    w = TaskWeighting(["overall", "category", "match"], config)
    assert w.learned and set(w.log_vars) == {"overall", "category"}  # λ = 0 stays off
    assert w.weights()["overall"] == pytest.approx(1.0)
    # Two tasks whose losses differ 100× in scale; the weights are learned, the losses not.
    small, large = torch.tensor(0.05), torch.tensor(5.0)
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        w({"overall": small, "category": large}).backward()
        opt.step()
    weights = w.weights()
    assert weights["category"] < weights["overall"]
    # At the optimum each weighted loss is 1: exp(-s) = 1 / loss.
    assert weights["overall"] * 0.05 == pytest.approx(1.0, rel=0.05)
    assert weights["category"] * 5.0 == pytest.approx(1.0, rel=0.05)
    assert weights["match"] == 0.0


def test_fine_tune_logs_learned_weights_moving_toward_balance(tiny_bert, snapshot) -> None:
    config = TrainConfig(base_model=str(tiny_bert), device="cpu", max_seq_length=16,
                         batch_size=8, epochs=3, patience=3, warmup_ratio=0.0,
                         head_warmup_epochs=0, tasks=("overall", "category", "match"),
                         task_weights={"overall": 1.0, "category": 1.0, "match": 1.0},
                         task_weighting="uncertainty", weighting_learning_rate=0.05)
    events: list[dict] = []
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    result = fine_tune(encoder, build_task_data(snapshot, config), config,
                       on_event=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert all(set(e["weights"]) == {"overall", "category", "match"} for e in steps)
    first, last = steps[0], steps[-1]
    assert last["weights"] != first["weights"] and result.task_weights == last["weights"]

    def spread(event: dict) -> float:
        # How unequal the weighted losses are: the log-ratio of the largest to the smallest.
        weighted = [event["weights"][t] * event["loss"][t] for t in event["loss"]]
        return math.log(max(weighted) / min(weighted))

    early = sum(spread(e) for e in steps[:5]) / 5
    late = sum(spread(e) for e in steps[-5:]) / 5
    assert late < early
