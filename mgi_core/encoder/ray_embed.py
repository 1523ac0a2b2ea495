"""Embed a dataset snapshot on a Ray cluster (Ray Data), streaming to a folder of Parquet.

``embed_with_ray`` reads the snapshot's review_id, item_id, split and text with
``ray.data.read_parquet`` (other columns are pruned at the read), embeds them in a pool of
actors (one encoder each, loaded once) and streams the vectors back to the driver, which
writes them with ``lake.ParquetSink``: no step holds every vector. The output columns are
review_id (int64), item_id, split and embedding (``FixedSizeList<float32, d>``, which DuckDB
casts to ``FLOAT[d]``). ``item_means`` turns the same stream into item vectors (normalised
means of train reviews), holding items × d floats.

Where it runs: on the Ray cluster already initialised in this process, else the one at
``address`` ('auto', 'ray://host:10001'), else a local cluster on this machine's CPUs that
the call starts and shuts down. On a cluster of several machines, the snapshot, the output
and the model folder must be reachable from every node (a shared file system or an object
store, see ``mgi_core.data.lake``) and ``mgi`` must be installed on every node.

Faults: Ray Data restarts a dead map actor and retries its tasks (``max_restarts=-1``,
``max_task_retries=-1``, the defaults of its actor pool); a retried task's output replaces
the lost one, so every review is written once. Ray is imported inside the functions: it is
an optional dependency (the ``distributed`` extra).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mgi_core.data import lake
from mgi_core.encoder.fast import PRECISION_ENV
from mgi_core.errors import ConfigError

log = logging.getLogger(__name__)

SNAPSHOT_COLUMNS = ["review_id", "item_id", "split", "text"]
# Rows per Ray block and per actor call: this many encoder batches, which the encoder orders
# by token length inside the call. A killed actor loses (and Ray redoes) one block.
BATCHES_PER_BLOCK = 8
# A column the actors add (their device, in words); the driver drops it before writing.
_DEVICE_COLUMN = "_mgi_device"
PRECISIONS = ("auto", "fp32")


@dataclass(frozen=True)
class RayEmbedResult:
    """What ``embed_with_ray`` did: reviews embedded, vector size, wall time in seconds, the
    actor pool's size, the actors' device and precision in words, the cluster (its address,
    'local' for one this call started, or 'running Ray session') and the parts written."""

    n_reviews: int
    dim: int
    seconds: float
    actors: int
    device: str
    address: str
    files: tuple[str, ...]


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(n, d) vectors as an Arrow ``FixedSizeList<float32, d>`` column (what DuckDB reads as
    a list it casts to ``FLOAT[d]``; not Ray's tensor extension type)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def embedding_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A ``FixedSizeList<float32, d>`` column as an (n, d) float32 array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    d = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32,
                                                                  copy=False).reshape(-1, d)


class ReviewEmbedder:
    """The Ray Data map class: one encoder per actor, loaded once in ``__init__``.

    ``precision`` comes from the driver (remote workers do not share its environment);
    ``threads`` sets torch's CPU threads; ``crash_marker`` is a test hook (see
    ``embed_with_ray``'s ``_crash_once``).
    """

    def __init__(self, model: str, max_seq_length: int, batch_size: int, device: str,
                 precision: str, threads: int | None, crash_marker: str | None) -> None:
        import torch

        from mgi_core.encoder.fast import choose_encode_path, read_cpu_flags
        from mgi_core.encoder.model import load_encoder

        if threads:
            torch.set_num_threads(threads)
        self.encoder = load_encoder(model, max_seq_length, device)
        info = self.encoder.device_info
        self.path = choose_encode_path(info.type, read_cpu_flags(), info.autocast_dtype,
                                       precision)
        self.description = f"{info.describe()}; embedding: {self.path.describe()}"
        self.batch_size = batch_size
        self.crash_marker = crash_marker
        self.calls = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.calls += 1
        if self.crash_marker and self.calls == 2:
            _kill_self_once(self.crash_marker)
        texts = [str(t) for t in batch.column("text").to_pylist()]
        vectors = self.encoder.encode(texts, self.batch_size, path=self.path)  # (b, d)
        n = batch.num_rows
        device = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                pa.array([self.description]))
        return pa.table({
            "review_id": batch.column("review_id").cast(pa.int64()),
            "item_id": batch.column("item_id"),
            "split": batch.column("split"),
            "embedding": embedding_array(vectors),
            _DEVICE_COLUMN: device,
        })


def _kill_self_once(marker: str) -> None:
    """Test hook: the first actor to get here creates ``marker`` and kills its own process
    (SIGKILL: no cleanup, as when a machine or the OOM killer takes a worker)."""
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _connect(address: str | None) -> tuple[bool, str]:
    """Join the running Ray session, or connect to ``address``, or start a local cluster.
    Returns (whether this call started the connection, the cluster in words)."""
    import ray

    if ray.is_initialized():
        return False, "running Ray session"
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)
        return True, address
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
    return True, "local"


def _plan_actors(actors: int | None, gpus_per_actor: float | None) -> dict:
    """The actor pool for this cluster: size, resources per actor, device and threads.

    GPUs when the cluster has them (``gpus_per_actor`` or 1 each, as many actors as fit),
    else CPUs: one actor per CPU by default, the actors sharing all CPUs but one, which
    stays free for Ray Data's file listing and read tasks (an actor pool holding every CPU
    starves them, and the job never starts).
    """
    import ray

    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 1))
    gpus = float(resources.get("GPU", 0))
    if actors is not None and actors < 1:
        raise ConfigError(f"actors must be at least 1 (got {actors}).")
    if gpus_per_actor is not None and gpus_per_actor <= 0:
        raise ConfigError(f"gpus_per_actor must be positive (got {gpus_per_actor}).")
    if gpus_per_actor and not gpus:
        raise ConfigError("gpus_per_actor was given but the Ray cluster has no GPU; "
                          "leave it unset to embed on CPUs.")
    if gpus:
        per = gpus_per_actor or 1.0
        n = actors or max(1, int(gpus // per))
        return {"actors": n, "device": "cuda", "num_gpus": per, "num_cpus": None,
                "threads": None}
    n = actors or max(1, int(cpus))
    per_cpu = max(cpus - 1, 0.0) / n
    return {"actors": n, "device": "cpu", "num_gpus": None, "num_cpus": per_cpu,
            "threads": max(1, round(per_cpu))}


def embed_with_ray(
    snapshot_uri: str,
    out_uri: str,
    *,
    model: str,
    max_seq_length: int,
    batch_size: int,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    precision: str | None = None,
    rows_per_file: int = 100_000,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    _crash_once: str | None = None,
) -> RayEmbedResult:
    """Embed every review of the snapshot on Ray; write a folder of Parquet parts.

    Args:
        snapshot_uri: the snapshot (a Parquet file or folder, path or URI, ``lake``).
        out_uri: an empty or new folder for ``part-NNNNN.parquet`` files with review_id,
            item_id, split, embedding (``FixedSizeList<float32, d>``).
        model: what ``load_encoder`` loads (a folder every node can read, or 'bundled:…').
        max_seq_length: tokens per review.
        batch_size: texts per encoder forward pass (CPU passes are capped at 16).
        address: a Ray cluster to connect to when none is initialised here ('auto',
            'ray://host:10001'); None starts a local one.
        actors: the actor pool's size (default: one per GPU, else one per CPU).
        gpus_per_actor: GPUs per actor (default 1 where the cluster has GPUs).
        precision: 'auto' or 'fp32' (default: this process's ``MGI_ENCODE_PRECISION``), sent
            to the actors, which do not share the driver's environment.
        rows_per_file: rows per output part.
        on_progress: called with (reviews written, total) after every block.
        should_stop: checked after every block; True cancels.
        _crash_once: TEST HOOK, never set in production: a marker file path. The first
            actor to reach its second block while the marker is missing creates it and
            SIGKILLs itself, to prove that Ray retries the lost work.

    Raises:
        TrainingCancelled: ``should_stop()`` returned True (no part is left in ``out_uri``).
        ConfigError: a bad argument, an empty snapshot or a non-empty ``out_uri``.
    """
    import ray

    precision = (precision if precision is not None
                 else os.environ.get(PRECISION_ENV, "auto")).strip().lower() or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} "
                          f"(got {precision!r}).")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1 (got {batch_size}).")
    files = lake.parquet_files(snapshot_uri)
    total = lake.count_rows(snapshot_uri)
    if total == 0:
        raise ConfigError(f"The snapshot {snapshot_uri} holds no reviews; nothing to embed.")
    start = time.perf_counter()
    sink = lake.ParquetSink(out_uri, rows_per_file)  # refuses a folder with parts, early
    started, cluster = _connect(address)
    # Quiet: no progress bars (they become log lines when stdout is a file, as in a job) and
    # no per-run INFO lines from Ray Data; both restored afterwards.
    context = ray.data.DataContext.get_current()
    saved_bars = context.enable_progress_bars
    context.enable_progress_bars = False
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    data_log.setLevel(max(saved_level, logging.WARNING))
    try:
        plan = _plan_actors(actors, gpus_per_actor)
        block_rows = batch_size * BATCHES_PER_BLOCK
        ds = (
            ray.data.read_parquet(files)
            .select_columns(SNAPSHOT_COLUMNS)
            .repartition(target_num_rows_per_block=block_rows)
            .map_batches(
                ReviewEmbedder,
                fn_constructor_kwargs={
                    "model": model, "max_seq_length": max_seq_length,
                    "batch_size": batch_size, "device": plan["device"],
                    "precision": precision, "threads": plan["threads"],
                    "crash_marker": _crash_once,
                },
                batch_size=block_rows,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=plan["actors"]),
                num_cpus=plan["num_cpus"],
                num_gpus=plan["num_gpus"],
            )
        )
        log.info("embedding %d reviews on Ray (%s): %d actors on %s", total, cluster,
                 plan["actors"], plan["device"])
        written, dim, devices = _stream_to_parquet(ds, sink, block_rows, total, on_progress,
                                                   should_stop)
    except BaseException:
        sink.abort()
        raise
    finally:
        context.enable_progress_bars = saved_bars
        data_log.setLevel(saved_level)
        if started:
            ray.shutdown()
    return RayEmbedResult(n_reviews=written, dim=dim, seconds=time.perf_counter() - start,
                          actors=plan["actors"], device=" | ".join(sorted(devices)),
                          address=cluster, files=tuple(sink.files))


def _stream_to_parquet(ds, sink: lake.ParquetSink, block_rows: int, total: int,
                       on_progress: Callable[[int, int], None] | None,
                       should_stop: Callable[[], bool] | None) -> tuple[int, int, set[str]]:
    """Write the dataset's blocks to ``sink`` as they arrive, then close it; returns
    (rows, d, the actors' devices)."""
    written, dim, devices = 0, 0, set()
    # A generator: closing it shuts down the Ray Data execution when we leave early.
    batches = iter(ds.iter_batches(batch_size=block_rows, batch_format="pyarrow",
                                   prefetch_batches=1))
    try:
        for batch in batches:
            devices.update(batch.column(_DEVICE_COLUMN).unique().to_pylist())
            batch = batch.drop_columns([_DEVICE_COLUMN])
            dim = batch.schema.field("embedding").type.list_size
            sink.write(batch)
            written += batch.num_rows
            if on_progress is not None:
                on_progress(written, total)
            if should_stop is not None and should_stop():
                from mgi_core.encoder.train import TrainingCancelled

                raise TrainingCancelled("Embedding was cancelled.")
    finally:
        batches.close()
    if written != total:  # never seen; a partial output must not look complete
        raise RuntimeError(f"Ray returned {written} of the snapshot's {total} reviews.")
    sink.close()
    return written, dim, devices


def item_means(batches: Iterable[pa.RecordBatch | pa.Table]
               ) -> tuple[list, np.ndarray, np.ndarray]:
    """Each item's vector: the normalised mean of its *train* reviews' embeddings.

    Streams batches with item_id, split and embedding (e.g. ``lake.iter_batches`` over
    ``embed_with_ray``'s output); holds one sum per item (items × d), never the reviews.
    Items with no train review are absent (the caller embeds their title and category, as
    ``jobs.worker.item_vectors_from_reviews`` does).

    Returns:
        (item ids sorted, train review counts (n_items,) int64, vectors (n_items, d) float32).
    """
    index: dict = {}
    sums: np.ndarray | None = None  # (capacity, d) float64
    counts = np.zeros(0, np.int64)  # (capacity,)
    for batch in batches:
        train = batch.filter(pc.equal(batch.column("split"), "train"))
        if train.num_rows == 0:
            continue
        vecs = embedding_matrix(train.column("embedding"))  # (b, d)
        rows = np.fromiter((index.setdefault(i, len(index))
                            for i in train.column("item_id").to_pylist()),
                           np.int64, train.num_rows)
        if sums is None or len(index) > len(sums):
            capacity = max(len(index), 2 * len(counts))
            grown = np.zeros((capacity, vecs.shape[1]), np.float64)
            if sums is not None:
                grown[:len(sums)] = sums
            sums = grown
            counts = np.concatenate([counts, np.zeros(capacity - len(counts), np.int64)])
        np.add.at(sums, rows, vecs)
        counts += np.bincount(rows, minlength=len(counts))
    if sums is None:
        return [], np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = sorted(index)
    order = np.array([index[i] for i in ids], np.int64)
    means = sums[order] / counts[order, None]
    norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return ids, counts[order], (means / norms).astype(np.float32)
