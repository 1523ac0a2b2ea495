"""Fine-tuning under torchrun: two CPU processes (gloo) train one version, as one would.

The commands are the README's: ``torchrun --nproc_per_node 2 -m mgi_core train …`` (run as
``python -m torch.distributed.run``, the same program), on the tiny local BERT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mgi_core.data.ingest import ingest_file
from mgi_core.encoder import distributed
from mgi_core.encoder.distributed import World, world_from_env
from mgi_core.encoder.train import steps_per_epoch
from mgi_core.jobs.manager import job_command
from mgi_core.store import Store
from mgi_core.store.embeddings import review_vectors
from mgi_core.store.versions import get_version
from tests.tiny_model import write_review_csv

ROOT = Path(__file__).resolve().parents[2]


def test_world_comes_from_torchrun_variables() -> None:
    assert world_from_env({}) == World()
    assert world_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == World()
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.active, world.is_main) == \
        (3, 4, 1, True, False)
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_shares_cover_a_batch_once_and_every_process_gets_one() -> None:
    batch = list(range(10))
    shares = [World(r, 3).shard(batch) for r in range(3)]
    assert sorted(x for s in shares for x in s) == batch
    # The last partial batch counts only when every process gets an example of it.
    assert steps_per_epoch(17, 8, World()) == 3
    assert steps_per_epoch(17, 8, World(0, 2)) == 2  # 1 left over: one process would idle
    assert steps_per_epoch(18, 8, World(0, 2)) == 3


def _collectives(rank: int, size: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=size)
    world = World(rank, size)
    full = torch.arange(7 * 2, dtype=torch.float32).reshape(7, 2)
    gathered = distributed.gather_rows(world.shard(full), 7, world)
    stop = distributed.any_rank(rank == 1, world)  # one process saw a cancel
    quiet = distributed.any_rank(False, world)
    [total] = distributed.all_sum([rank + 1], world)
    message = distributed.broadcast_object(f"from {rank}", world)
    torch.save({"gathered": gathered, "stop": stop, "quiet": quiet, "total": total,
                "message": message}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_collectives_between_two_real_processes(tmp_path: Path) -> None:
    out = str(tmp_path / "result")
    mp.spawn(_collectives, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    full = torch.arange(14, dtype=torch.float32).reshape(7, 2)
    for rank in range(2):
        got = torch.load(f"{out}.{rank}")
        assert torch.equal(got["gathered"], full)  # gather_rows inverts World.shard
        assert got["stop"] is True and got["quiet"] is False
        assert got["total"] == 3.0 and got["message"] == "from 0"


# ---------------------------------------------------------------- end to end, two processes


@pytest.fixture
def tiny_csv(tmp_path: Path, snapshot: pd.DataFrame) -> Path:
    return write_review_csv(snapshot, tmp_path / "tiny.csv")


def _db(folder: Path, csv: Path) -> Path:
    folder.mkdir()
    store = Store(folder / "mgi.duckdb")
    ingest_file(store, csv, "tiny")
    store.close()
    return folder / "mgi.duckdb"


def _train_args(db: Path, tiny_bert: Path) -> list[str]:
    return ["-m", "mgi_core", "train", "--db", str(db), "--dataset", "tiny", "--base-model",
            str(tiny_bert), "--epochs", "3", "--batch-size", "8", "--max-seq-length", "16",
            "--embed-max-seq-length", "16", "--lora-rank", "2", "--device", "cpu", "--json"]


def _run(cmd: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr[-4000:]}"
    return json.loads(out.stdout)


@pytest.mark.slow
def test_torchrun_two_processes_register_a_version_that_matches_one_process(
        tmp_path: Path, tiny_csv: Path, tiny_bert: Path) -> None:
    one_db, two_db = _db(tmp_path / "one", tiny_csv), _db(tmp_path / "two", tiny_csv)
    one = _run([sys.executable, *_train_args(one_db, tiny_bert)])
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", *_train_args(two_db, tiny_bert)])
    assert one["status"] == two["status"] == "ready"
    assert "× 2 processes (torchrun)" in two["device"]
    assert "processes" not in one["device"]
    run_config = json.loads((Path(two["artefact_dir"]) / "config.json").read_text())
    assert run_config["processes"] == 2
    # Rank 0 alone wrote the run folder and registered it; the version is usable.
    store = Store(two_db)
    try:
        info = get_version(store, "v1")
        ids, vecs = review_vectors(store, "v1", "tiny")
        n = store.cursor().execute("SELECT count(*) FROM reviews").fetchone()[0]
        assert info["status"] == "ready" and len(ids) == n and vecs.shape[1] == 32
        jobs = store.cursor().execute("SELECT count(*), min(status) FROM jobs").fetchone()
        assert jobs == (1, "finished")
        [(n_probs,)] = store.cursor().execute(
            "SELECT count(*) FROM review_head_probs WHERE version = 'v1'").fetchall()
        texts = dict(store.cursor().execute("SELECT review_id, text FROM reviews").fetchall())
    finally:
        store.close()
    assert n_probs == 2 * n  # category and subcategory heads, every review
    # Each process embedded every 2nd review; put together, they are the saved model's
    # vectors of every review in its place.
    from mgi_core.encoder.checkpoint import load_checkpoint
    from mgi_core.encoder.fast import encode_path_here

    model, _ = load_checkpoint(Path(two["artefact_dir"]), "cpu")
    expected = model.encoder.encode([texts[i] for i in ids], 8, path=encode_path_here("cpu"))
    assert np.sum(vecs * expected, axis=1).min() > 0.999
    assert not (Path(two["artefact_dir"]) / "shards").exists()
    # The same optimisation as one process (global batch 8 = 2 × 4): the validation losses
    # agree within noise (what differs: dropout masks).
    for key in ("overall/loss", "category/loss", "subcategory/loss", "objective"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], rel=0.05), key
    assert abs(two["metrics"]["overall/auc"] - one["metrics"]["overall/auc"]) <= 0.1


def test_the_app_starts_several_processes_through_torchrun(tmp_path: Path) -> None:
    assert job_command(tmp_path, 1)[1:] == ["-m", "mgi_core", "run-job", str(tmp_path)]
    cmd = job_command(tmp_path, 3)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
                        "-m"]
    assert cmd[6:] == ["mgi_core", "run-job", str(tmp_path)]


# ---------------------------------------------------------------- DDP is the same optimisation


def _no_dropout_copy(tiny_bert: Path, folder: Path) -> Path:
    """The tiny BERT without dropout, so one process and two take bit-comparable steps."""
    import shutil

    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _equivalence_config(model: Path, tasks: tuple[str, ...], options: dict | None = None):
    from mgi_core.config import TrainConfig

    # 'overall': a per-review mean, so the mean of two equal shares' losses is the batch's
    # loss and DDP's averaged gradient is the one-process gradient. 'match': each process's
    # anchors meet the positives gathered from both, so the same holds.
    return TrainConfig(base_model=str(model), tasks=tasks, batch_size=8, epochs=2,
                       max_train_reviews=64, max_seq_length=16, device="cpu", dropout=0.0,
                       lora_rank=2, lora_dropout=0.0, lora_targets=("query", "value"),
                       deterministic=True, **(options or {}))


def _fine_tune_to(rank: int, size: int, init_file: str, model: str, snapshot_file: str,
                  out: str, tasks: tuple[str, ...], options: dict | None = None) -> None:
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.tasks import build_task_data
    from mgi_core.encoder.train import fine_tune

    torch.set_num_threads(1)
    if size > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                world_size=size)
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
    config = _equivalence_config(Path(model), tasks, options)
    data = build_task_data(pd.read_parquet(snapshot_file), config)
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    result = fine_tune(encoder, data, config)
    state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save({"state": state, "steps": result.n_steps, "val": result.val_metrics},
               f"{out}.{size}.{rank}")
    if size > 1:
        from mgi_core.encoder.distributed import shutdown

        del result, state
        shutdown()  # collects the DDP wrapper first: left to exit, it can abort the process


@pytest.mark.slow
@pytest.mark.parametrize(("tasks", "options"), [
    (("overall",), {}),
    (("overall", "match"), {}),
    # The training options: AdaLoRA's budget from all-reduced gradients, FGM's perturbation
    # per review, the learned task weights all-reduced inside the DDP step.
    (("overall", "match"), {"strategy": "adalora", "adversarial": "fgm",
                            "task_weighting": "uncertainty", "adalora_init_rank": 4,
                            "adalora_target_rank": 2}),
], ids=["overall", "overall+match", "adalora+fgm+uncertainty"])
def test_two_ddp_processes_take_the_same_steps_as_one(tmp_path: Path, tiny_bert: Path,
                                                      snapshot: pd.DataFrame,
                                                      tasks: tuple[str, ...],
                                                      options: dict) -> None:
    model = _no_dropout_copy(tiny_bert, tmp_path / "bert")
    snapshot_file = tmp_path / "snapshot.parquet"
    snapshot.to_parquet(snapshot_file)
    out = str(tmp_path / "state")
    _fine_tune_to(0, 1, "", str(model), str(snapshot_file), out, tasks, options)
    mp.spawn(_fine_tune_to, args=(2, str(tmp_path / "init"), str(model), str(snapshot_file),
                                  out, tasks, options), nprocs=2, join=True)
    one = torch.load(f"{out}.1.0")
    ranks = [torch.load(f"{out}.2.{r}") for r in range(2)]
    assert one["steps"] == ranks[0]["steps"] == ranks[1]["steps"] == 2 * 64 // 8
    for name, value in one["state"].items():
        # Both processes hold the same weights, and they are one process's weights.
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        torch.testing.assert_close(ranks[0]["state"][name], value, atol=2e-5, rtol=1e-4,
                                   msg=name)
    moved = [n for n, v in one["state"].items() if "heads" not in n]
    assert moved  # the encoder itself was trained (LoRA merged into its weights)
    for key in one["val"]:
        if key.endswith("/loss"):
            assert ranks[0]["val"][key] == pytest.approx(one["val"][key], abs=1e-4), key
