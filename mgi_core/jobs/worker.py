"""What a job does, in the child process (or in the CLI's own process).

It reads only its run folder (job.json, the Parquet snapshot) and writes only there:
progress to status.json / metrics.jsonl, then the checkpoint and the embeddings. It never
opens the database; the app registers the finished run.

Under torchrun (``torchrun --nproc_per_node N -m mgi_core run-job RUN_DIR``, which is how
the app starts a job with ``processes`` > 1) every process trains its share, then embeds its
share of the reviews (every N-th one) into ``shards/``; rank 0 puts the shares together and
writes the run folder's files, so registration does not know how many processes ran.
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mgi_core.config import TrainConfig
from mgi_core.jobs.run_files import RunFiles, append_event, read_json, write_json_atomic
from mgi_core.store.embeddings import item_means

log = logging.getLogger(__name__)


class _Status:
    """status.json, rewritten atomically on every update (by rank 0 only: another
    training process keeps its state in memory and writes nothing)."""

    def __init__(self, files: RunFiles, job: dict[str, Any], writes: bool = True) -> None:
        self.files = files
        self.writes = writes
        self.data: dict[str, Any] = {
            "state": "running", "phase": "preparing", "version": job["version"],
            "kind": job["kind"], "dataset": job["dataset"], "started": time.time(),
        }
        self.write()

    def update(self, **fields: Any) -> None:
        self.data.update(fields, updated=time.time())
        self.write()

    def write(self) -> None:
        if self.writes:
            write_json_atomic(self.files.status, self.data)


def library_versions() -> dict[str, str]:
    import duckdb
    import peft
    import sentence_transformers
    import torch
    import transformers

    import mgi_core

    return {"mgi": mgi_core.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "duckdb": duckdb.__version__, "numpy": np.__version__}


def _write_vectors(path: Path, ids: pa.Array, id_name: str, vectors: np.ndarray,
                   extra: dict[str, pa.Array] | None = None) -> None:
    d = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32).reshape(-1))
    columns = {id_name: ids, **(extra or {}),
               "embedding": pa.FixedSizeListArray.from_arrays(flat, d)}
    pq.write_table(pa.table(columns), path)


def item_vectors_from_reviews(snapshot: pd.DataFrame, review_vecs: np.ndarray,
                              encode: Callable[[list[str]], np.ndarray]) -> pd.DataFrame:
    """Each item's vector: the normalised mean of its *train* review embeddings.

    Items with no train review fall back to their title and category text (no val/test
    review ever contributes). Returns columns item_id, n_train_reviews, vector.
    """
    train = snapshot["split"].to_numpy() == "train"
    uniq, n, means = item_means(snapshot["item_id"].to_numpy()[train], review_vecs[train])
    out_ids, counts, vecs = [str(i) for i in uniq], [int(k) for k in n], list(means)
    cold_ids, cold_vecs = cold_item_vectors(snapshot, set(out_ids), encode)
    vecs.extend(cold_vecs)
    out_ids.extend(cold_ids)
    counts.extend([0] * len(cold_ids))
    return pd.DataFrame({"item_id": out_ids, "n_train_reviews": counts, "vector": vecs})


def cold_item_vectors(snapshot: pd.DataFrame, have: set[str],
                      encode: Callable[[list[str]], np.ndarray]) -> tuple[list[str], list]:
    """(item ids, vectors) of the items not in ``have`` (no train review) that have a
    title: their title and category text, embedded."""
    meta = snapshot.drop_duplicates("item_id").set_index("item_id")
    cold = [i for i in meta.index if i not in have and isinstance(meta.at[i, "item_title"], str)]
    if not cold:
        return [], []
    texts = [f"{meta.at[i, 'item_title']}. {meta.at[i, 'category'] or ''}".strip()
             for i in cold]
    return cold, list(encode(texts))


class HeadProbabilities:
    """Per-review class probabilities of the category heads, collected while embedding."""

    TASKS = ("category", "subcategory")

    def __init__(self, model, n: int) -> None:
        self.model = model
        self.probs: dict[str, np.ndarray] = {}
        if model is not None:
            for task in self.TASKS:
                if task in model.heads:
                    self.probs[task] = np.zeros((n, model.heads[task].out_features), np.float32)

    def collect(self, idx: np.ndarray, raw) -> None:
        if not self.probs:
            return
        logits = self.model.head_logits(raw)
        for task, out in self.probs.items():
            out[idx] = logits[task].softmax(-1).float().cpu().numpy()

    def write(self, path: Path, review_ids: pa.Array) -> None:
        if not self.probs:
            return
        tables = []
        for task, probs in self.probs.items():
            tables.append(pa.table({
                "review_id": review_ids,
                "task": pa.array([task] * len(review_ids)),
                "probs": pa.array(list(probs), pa.list_(pa.float32())),
            }))
        pq.write_table(pa.concat_tables(tables), path)


def run_job(run_dir: Path, should_stop: Callable[[], bool] | None = None) -> str:
    """Run the job described by ``run_dir/job.json``; return its final state."""
    from mgi_core.encoder import distributed
    from mgi_core.encoder.device import choose_device
    from mgi_core.encoder.fast import encode_path_here
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.train import TrainingCancelled

    files = RunFiles(Path(run_dir))
    job = read_json(files.job)
    if job is None:
        raise FileNotFoundError(f"{files.job} is missing or unreadable")
    world = distributed.world_from_env() if job["kind"] == "train" else distributed.World()
    status = _Status(files, job, writes=world.is_main)
    stop = should_stop or (lambda: False)
    try:
        config = TrainConfig.from_dict(job["config"])
        snapshot = pd.read_parquet(files.snapshot)
        if job["kind"] == "search":  # trials, each with a fresh encoder; no embedding
            _search(files, job, config, snapshot, status, stop)
            return status.data["state"]
        if job["kind"] == "update":  # the appended reviews only, with an existing version
            _update(files, job, config, snapshot, status, stop)
            return status.data["state"]
        status.update(phase="loading encoder")
        distributed.init(world, choose_device(config.device).type)
        encoder = load_encoder(config.base_model, config.max_seq_length, config.device)
        info = encoder.device_info
        embed_path = encode_path_here(info.type, info.autocast_dtype)
        # Registration stores this line with the version: training and embedding precision.
        processes = f" × {world.size} processes (torchrun)" if world.active else ""
        status.update(device=f"{info.describe()}{processes}; "
                             f"embedding: {embed_path.describe()}")
        result_fields: dict[str, Any] = {}
        model = None
        if job["kind"] == "train":
            model, result_fields = _train(files, job, config, snapshot, encoder, status, stop,
                                          world)
            encoder = model.encoder
        encoder.max_seq_length = config.embed_max_seq_length
        engine = job.get("engine") or {}
        if engine.get("name") == "ray":
            dim = _embed_on_ray(files, config, snapshot, encoder, embed_path, status, stop,
                                engine)
            status.update(state="finished", phase="done", dim=dim, finished=time.time())
            return status.data["state"]
        status.update(phase="embedding", done=0, total=len(snapshot))

        def progress(done: int, total: int) -> None:
            if stop():
                raise TrainingCancelled("Embedding was cancelled.")
            # Under torchrun rank 0 reports its share, which is 1/N of the whole.
            status.update(done=min(done * world.size, len(snapshot)), total=len(snapshot))

        texts = snapshot["text"].astype(str).tolist()
        mine = world.shard(np.arange(len(texts)))
        heads = HeadProbabilities(model if job["kind"] == "train" else None, len(mine))
        vecs = encoder.encode([texts[i] for i in mine], config.embed_batch_size, progress,
                              heads.collect, path=embed_path)
        if world.active:
            vecs = _join_shards(files, world, vecs, heads, len(texts))
            if vecs is None:
                return "finished"  # rank 0 writes the run folder's files
        review_ids = pa.array(snapshot["review_id"].astype("int64"))
        _write_vectors(files.review_embeddings, review_ids, "review_id", vecs)
        heads.write(files.head_probs, review_ids)
        items = item_vectors_from_reviews(
            snapshot, vecs, lambda t: encoder.encode(t, config.embed_batch_size, path=embed_path)
        )
        _write_vectors(files.item_embeddings, pa.array(items["item_id"].astype(str)),
                       "item_id", np.stack(items["vector"].to_list()),
                       {"n_train_reviews": pa.array(items["n_train_reviews"], pa.int64())})
        status.update(state="finished", phase="done", dim=int(vecs.shape[1]),
                      finished=time.time(), **result_fields)
    except TrainingCancelled as exc:
        status.update(state="cancelled", phase="cancelled", message=str(exc),
                      finished=time.time())
    except Exception as exc:
        log.error("job failed: %s", traceback.format_exc())
        status.update(state="failed", phase="failed", finished=time.time(),
                      message=f"{type(exc).__name__}: {exc}")
    return status.data["state"]


def _update(files: RunFiles, job: dict[str, Any], config: TrainConfig,
            snapshot: pd.DataFrame, status: _Status, stop: Callable[[], bool]) -> None:
    """Embed the snapshot (the reviews a version has not embedded, appended since) with
    that version: review vectors, head probabilities when it has heads, and the title
    vectors of ``job['cold_items']``. The app applies them (``profiles.incremental``)."""
    from mgi_core.encoder.checkpoint import load_checkpoint
    from mgi_core.encoder.device import choose_device
    from mgi_core.encoder.fast import encode_path_here
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.train import TrainingCancelled

    status.update(phase="loading encoder")
    model = None
    if job.get("checkpoint"):
        model, _ = load_checkpoint(Path(job["checkpoint"]), choose_device(config.device))
        encoder = model.encoder
    else:
        encoder = load_encoder(config.base_model, config.embed_max_seq_length, config.device)
    encoder.max_seq_length = config.embed_max_seq_length
    info = encoder.device_info
    embed_path = encode_path_here(info.type, info.autocast_dtype)
    status.update(device=f"{info.describe()}; embedding: {embed_path.describe()}",
                  phase="embedding", done=0, total=len(snapshot))

    def progress(done: int, total: int) -> None:
        if stop():
            raise TrainingCancelled("The update was cancelled.")
        status.update(done=done, total=total)

    texts = snapshot["text"].astype(str).tolist()
    heads = HeadProbabilities(model, len(texts))
    vecs = encoder.encode(texts, config.embed_batch_size, progress, heads.collect,
                          path=embed_path)
    review_ids = pa.array(snapshot["review_id"].astype("int64"))
    _write_vectors(files.review_embeddings, review_ids, "review_id", vecs)
    heads.write(files.head_probs, review_ids)
    cold = set(job.get("cold_items") or [])
    if cold:
        have = set(snapshot["item_id"].astype(str)) - cold
        ids, cold_vecs = cold_item_vectors(
            snapshot, have, lambda t: encoder.encode(t, config.embed_batch_size,
                                                     path=embed_path))
        if ids:
            _write_vectors(files.item_embeddings, pa.array(ids, pa.string()), "item_id",
                           np.stack(cold_vecs),
                           {"n_train_reviews": pa.array([0] * len(ids), pa.int64())})
    status.update(state="finished", phase="done", dim=int(vecs.shape[1]),
                  finished=time.time())


def _join_shards(files: RunFiles, world, vecs: np.ndarray, heads: HeadProbabilities,
                 n: int) -> np.ndarray | None:
    """Under torchrun: every process saves its share of the review vectors (and head
    probabilities) to ``shards/``; after a barrier rank 0 loads them in review order, puts
    the whole into ``vecs`` and ``heads`` and removes the folder. Returns the (n, d) vectors
    on rank 0, None elsewhere; the process group is left."""
    import shutil

    from mgi_core.encoder import distributed

    folder = files.root / "shards"
    folder.mkdir(exist_ok=True)
    np.savez(folder / f"rank-{world.rank}.npz", vecs=vecs,
             **{f"probs_{task}": p for task, p in heads.probs.items()})
    distributed.barrier(world)
    distributed.shutdown()
    if not world.is_main:
        return None
    full = np.empty((n, vecs.shape[1]), dtype=np.float32)
    probs = {task: np.empty((n, p.shape[1]), np.float32) for task, p in heads.probs.items()}
    for rank in range(world.size):
        with np.load(folder / f"rank-{rank}.npz") as part:
            full[rank::world.size] = part["vecs"]
            for task, out in probs.items():
                out[rank::world.size] = part[f"probs_{task}"]
    heads.probs = probs
    shutil.rmtree(folder)
    return full


def _embed_on_ray(files: RunFiles, config: TrainConfig, snapshot: pd.DataFrame, encoder,
                  embed_path, status: _Status, stop: Callable[[], bool],
                  engine: dict[str, Any]) -> int:
    """Embed the snapshot's reviews on Ray Data; write the run folder's embedding files.

    The snapshot goes to the stage (``engine['stage']``, a folder or object-store URI every
    node reads; default the run folder), Ray's actors write the review vectors there as
    Parquet parts, and one streamed pass over them sums each item's train vectors. With the
    run folder as the stage, registration bulk-loads the parts where they are; from another
    stage the same pass copies them into the run folder's file, so the database never needs
    the stage's credentials. Memory: one batch plus items × d. Returns the dimension.
    """
    import os

    from mgi_core.data import lake
    from mgi_core.encoder.fast import PRECISION_ENV
    from mgi_core.encoder.ray_embed import embed_with_ray, item_means

    stage = engine.get("stage")
    base = lake.join(stage, files.root.name) if stage else str(files.root)
    snapshot_uri = str(files.snapshot)
    if stage:
        snapshot_uri = lake.join(base, "snapshot")
        lake.write_batches(pq.ParquetFile(files.snapshot).iter_batches(65_536), snapshot_uri)
    out_uri = lake.join(base, "review_embeddings") if stage else str(
        files.review_embedding_parts)
    status.update(phase="embedding", done=0, total=len(snapshot), engine="ray")

    def progress(done: int, total: int) -> None:
        status.update(done=done, total=total)

    result = embed_with_ray(  # raises TrainingCancelled when stop() says so
        snapshot_uri, out_uri, model=config.base_model,
        max_seq_length=config.embed_max_seq_length, batch_size=config.embed_batch_size,
        address=engine.get("address"), actors=engine.get("actors"),
        precision=os.environ.get(PRECISION_ENV), on_progress=progress, should_stop=stop,
    )
    status.update(phase="collecting")
    writer: pq.ParquetWriter | None = None

    def read_back():
        nonlocal writer
        for batch in lake.iter_batches(out_uri, ["review_id", "item_id", "split", "embedding"]):
            if stage:  # into the run folder, where registration reads
                part = pa.table({"review_id": batch.column("review_id").cast(pa.int64()),
                                 "embedding": batch.column("embedding")})
                if writer is None:
                    writer = pq.ParquetWriter(files.review_embeddings, part.schema)
                writer.write_table(part)
            yield batch

    try:
        item_ids, n_train, vectors = item_means(read_back())
    finally:
        if writer is not None:
            writer.close()
    cold_ids, cold_vecs = cold_item_vectors(
        snapshot, {str(i) for i in item_ids},
        lambda t: encoder.encode(t, config.embed_batch_size, path=embed_path))
    ids = [str(i) for i in item_ids] + cold_ids
    all_vecs = np.concatenate([np.asarray(vectors, np.float32).reshape(-1, result.dim),
                               np.asarray(cold_vecs, np.float32).reshape(-1, result.dim)])
    counts = [int(c) for c in n_train] + [0] * len(cold_ids)
    _write_vectors(files.item_embeddings, pa.array(ids, pa.string()), "item_id", all_vecs,
                   {"n_train_reviews": pa.array(counts, pa.int64())})
    status.update(device=f"Ray Data: {result.actors} actors ({result.device}) on "
                         f"{result.address}; embedding: {embed_path.describe()}")
    return int(result.dim)


def _train(files: RunFiles, job: dict[str, Any], config: TrainConfig, snapshot: pd.DataFrame,
           encoder, status: _Status, stop: Callable[[], bool], world):
    from mgi_core.encoder.checkpoint import save_checkpoint
    from mgi_core.encoder.tasks import build_task_data
    from mgi_core.encoder.train import fine_tune

    data = build_task_data(snapshot, config)
    status.update(phase="training", tasks=data.tasks, notices=data.notices,
                  n_train=len(data.train), n_pairs=len(data.train_pairs))
    if world.is_main:
        write_json_atomic(files.config, {
            "version": job["version"], "dataset": job["dataset"],
            "data_hash": job["data_hash"], "config": config.to_dict(),
            "library_versions": library_versions(), "tasks": data.tasks,
            "notices": data.notices, "processes": world.size,
        })

    def on_event(event: dict[str, Any]) -> None:
        append_event(files.metrics, event)
        if event["kind"] == "step":
            status.update(epoch=event["epoch"], step=event["step"],
                          total_steps=event["total_steps"], eta_s=event["eta_s"],
                          elapsed_s=event["elapsed_s"], loss=event["loss"])
        elif event["kind"] == "epoch":
            status.update(last_val=event["metrics"])
        elif event["kind"] == "notices":
            status.update(notices=event["notices"])

    result = fine_tune(encoder, data, config, on_event=on_event if world.is_main else None,
                       should_stop=stop)
    if not world.is_main:
        return result.model, {}
    status.update(phase="saving")
    # Saved at the embedding length, so that SentenceTransformer(checkpoint) embeds texts as
    # this version's stored vectors were embedded (run_job's next phase).
    save_checkpoint(result.model, files.root, {
        "version": job["version"], "base_model": config.base_model, "tasks": data.tasks,
        "vocab": data.vocab, "like_threshold": config.like_threshold,
        "train_max_seq_length": config.max_seq_length,
    }, max_seq_length=config.embed_max_seq_length)
    return result.model, {
        "val_metrics": result.val_metrics, "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early, "samples_per_s": result.samples_per_s,
        "n_steps": result.n_steps,
    }


def _search(files: RunFiles, job: dict[str, Any], config: TrainConfig,
            snapshot: pd.DataFrame, status: _Status, stop: Callable[[], bool]) -> None:
    """Run the trials of a search job (``mgi_core.jobs.search``): one ``trial`` event per
    trial that ends in metrics.jsonl, then every trial of the study in study.json, which
    registration stores."""
    from mgi_core.jobs import search as searching
    from mgi_core.store.search import StudyRecord

    request = searching.SearchRequest.from_dict(job["search"])
    status.update(phase="searching", study=request.study, trials_target=request.n_trials,
                  n_train=int((snapshot["split"] == "train").sum()),
                  n_val=int((snapshot["split"] == "val").sum()))

    def on_step(trial: int, event: dict[str, Any]) -> None:
        if event["kind"] == "step":
            status.update(trial=trial, epoch=event["epoch"], step=event["step"],
                          total_steps=event["total_steps"], loss=event["loss"])

    def on_trial(record: dict[str, Any], done: int) -> None:
        append_event(files.metrics, {"kind": "trial", **record})
        status.update(trials_done=done, last_trial=record)

    trials = searching.run_study(
        snapshot, config, request, Path(job["search"]["journal"]), dataset=job["dataset"],
        data_hash=job["data_hash"], on_trial=on_trial, on_step=on_step, should_stop=stop)
    study = StudyRecord(request.study, job["dataset"], config.to_dict(),
                        searching.load_space(request.space), searching.OBJECTIVE,
                        searching.DIRECTION)
    searching.write_study_file(files.root, study, trials)
    complete = [t for t in trials if t.state == "complete"]
    best = min(complete, key=lambda t: (t.value, t.trial), default=None)
    status.update(state="finished", phase="done", finished=time.time(),
                  trials_done=len(complete),
                  best_trial=None if best is None else best.trial,
                  best_value=None if best is None else best.value)


def main(run_dir: str) -> int:
    """Entry point of the child process: SIGTERM asks the job to stop cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop_requested = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, on_term)
    state = run_job(Path(run_dir), should_stop=lambda: stop_requested)
    return 0 if state in ("finished", "cancelled") else 1
