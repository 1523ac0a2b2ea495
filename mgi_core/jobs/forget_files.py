"""Forgetting a user on disk: the Parquet files of run folders (and Ray stages) that hold
the user's rows or vectors.

A run folder keeps the snapshot its job read (``data.parquet``: ids, text, rating, split),
the review vectors it wrote (``review_embeddings.parquet`` or a folder of parts), the head
probabilities (``review_head_probs.parquet``) and the item vectors (``item_embeddings.parquet``,
means of train review vectors); a Ray stage holds copies of the snapshot and the vectors.
Every Parquet file found there is rewritten without the user's rows, by what its columns
hold, like the database's catalogue sweep:

* a ``user_id`` column: the rows with one of the user's ids;
* a ``review_id`` column: the rows of the user's reviews (their ids as the folder's own
  snapshots have them, and as the database had them);
* item vectors (``item_id`` and ``embedding``, no review id): the rows of the items the user
  reviewed in train, which were means over the user's vectors (the database holds their
  vectors recomputed without the user).

A file is rewritten beside itself under a hidden temporary name and moved over the old one,
so a reader sees the old file or the new one, never a part. Files without a row of the user
are left untouched. A leftover ``shards/`` folder of a data-parallel run (the vectors of each
process, by position) is removed. The model checkpoint is not data: a version trained with
the user's reviews is recorded as such (``forgotten_data``), not changed.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mgi_core.data import lake
from mgi_core.jobs.run_files import RunFiles, read_json

log = logging.getLogger(__name__)

SKIPPED_FOLDERS = ("checkpoint", "studies")  # model files; search journals (no user data)
SHARDS = "shards"


@dataclass(frozen=True)
class UserFootprint:
    """What identifies one user's rows in the files of one dataset's runs."""

    user_ids: frozenset[str]  # every stored form of the id
    review_ids: frozenset[int]  # the user's review ids in the database, before the forget
    train_items: frozenset[str]  # items the user reviewed in train, per the database


@dataclass
class FileCleanup:
    """What :func:`clean_run_folders` changed: file -> rows removed, folders removed, and
    locations it could not clean (with why)."""

    rewritten: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_folders(root: Path, known: Iterable[tuple[str, str]],
                datasets: Sequence[str]) -> list[tuple[Path, str | None]]:
    """(folder, dataset) of the run folders that may hold rows of ``datasets``: those under
    ``root`` whose ``job.json`` names one of them (or cannot be read: dataset None), and the
    ``known`` (folder, dataset) pairs the database records (jobs, versions), deduplicated."""
    out: dict[Path, str | None] = {}
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name in SKIPPED_FOLDERS or \
                    folder.name.startswith("."):
                continue
            job = read_json(RunFiles(folder).job)
            dataset = job.get("dataset") if job else None
            if dataset is None or dataset in datasets:
                out[folder.resolve()] = dataset
    for folder, dataset in known:
        path = Path(folder)
        if dataset in datasets and path.is_dir():
            out[path.resolve()] = dataset
    return sorted(out.items(), key=lambda kv: str(kv[0]))


def clean_run_folders(folders: Sequence[tuple[Path, str | None]],
                      footprints: dict[str, UserFootprint]) -> FileCleanup:
    """Remove the user's rows from every Parquet file of ``folders`` (and of their Ray stage,
    named in ``job.json``), by dataset's ``footprints``; a folder of unknown dataset is
    matched against every footprint."""
    cleanup = FileCleanup()
    for folder, dataset in folders:
        prints = [footprints[dataset]] if dataset in footprints else (
            list(footprints.values()) if dataset is None else [])
        if not prints:
            continue
        merged = UserFootprint(frozenset().union(*(p.user_ids for p in prints)),
                               frozenset().union(*(p.review_ids for p in prints)),
                               frozenset().union(*(p.train_items for p in prints)))
        locations = [str(folder)]
        job = read_json(RunFiles(folder).job) or {}
        stage = (job.get("engine") or {}).get("stage")
        if stage:
            locations.append(lake.join(stage, folder.name))
        for location in locations:
            _clean_location(location, merged, cleanup)
        shards = folder / SHARDS
        if shards.is_dir():
            shutil.rmtree(shards)
            cleanup.removed.append(str(shards))
    return cleanup


def _clean_location(location: str, footprint: UserFootprint, cleanup: FileCleanup) -> None:
    try:
        fs, root = lake.resolve(location)
        info = fs.get_file_info(root)
        if info.type != pafs.FileType.Directory:
            return
        files = sorted(
            e.path for e in fs.get_file_info(pafs.FileSelector(root, recursive=True))
            if e.type == pafs.FileType.File and e.base_name.endswith(".parquet")
            and not _skipped(e.path, root))
    except (OSError, pa.ArrowException) as exc:
        cleanup.failed.append(f"{location}: {exc}")
        return
    # The user's review ids as this location's snapshots have them (a run folder of an
    # older ingest may number reviews otherwise), then every file by its columns.
    found = set(footprint.review_ids)
    items = set(footprint.train_items)
    for path in files:
        try:
            found |= _user_reviews(fs, path, footprint.user_ids, items)
        except (OSError, pa.ArrowException) as exc:
            cleanup.failed.append(f"{_shown(location, root, path)}: {exc}")
    footprint = UserFootprint(footprint.user_ids, frozenset(found), frozenset(items))
    for path in files:
        try:
            n = _rewrite_without(fs, path, footprint)
        except (OSError, pa.ArrowException) as exc:
            cleanup.failed.append(f"{_shown(location, root, path)}: {exc}")
            continue
        if n:
            cleanup.rewritten[_shown(location, root, path)] = n


def _skipped(path: str, root: str) -> bool:
    parts = path[len(root):].strip("/").split("/")
    return any(p in SKIPPED_FOLDERS or p.startswith(".") for p in parts)


def _shown(location: str, root: str, path: str) -> str:
    """``path`` in ``location``'s form (a local path, or the URI)."""
    return lake.join(location, path[len(root):].strip("/"))


def _user_reviews(fs: pafs.FileSystem, path: str, user_ids: frozenset[str],
                  items: set[str]) -> set[int]:
    """The review ids of ``path``'s rows of ``user_ids`` (a file with both columns); the
    items of their train rows are added to ``items``."""
    with fs.open_input_file(path) as fh:
        parquet = pq.ParquetFile(fh)
        names = set(parquet.schema_arrow.names)
        if not {"user_id", "review_id"} <= names:
            return set()
        columns = ["user_id", "review_id", *(c for c in ("item_id", "split") if c in names)]
        out: set[int] = set()
        for batch in parquet.iter_batches(columns=columns):
            mine = _is_in(batch.column("user_id"), user_ids, pa.string())
            if not pc.any(mine).as_py():
                continue
            rows = batch.filter(mine)
            out.update(int(r) for r in rows.column("review_id").to_pylist() if r is not None)
            if "item_id" in columns and "split" in columns:
                train = rows.filter(pc.equal(rows.column("split"), "train"))
                items.update(str(i) for i in train.column("item_id").to_pylist())
    return out


def _is_in(column: pa.Array, values: Iterable[object], kind: pa.DataType) -> pa.Array:
    """Whether each of ``column``'s values is one of ``values`` (nulls: False)."""
    mask = pc.is_in(column.cast(kind), value_set=pa.array(sorted(values), kind))
    return pc.fill_null(mask, False)


def _drop_mask(batch: pa.RecordBatch, footprint: UserFootprint, item_vectors: bool) -> pa.Array:
    masks = []
    names = batch.schema.names
    if "user_id" in names:
        masks.append(_is_in(batch.column("user_id"), footprint.user_ids, pa.string()))
    if "review_id" in names:
        masks.append(_is_in(batch.column("review_id"), footprint.review_ids, pa.int64()))
    if item_vectors:
        masks.append(_is_in(batch.column("item_id"), footprint.train_items, pa.string()))
    drop = masks[0]
    for mask in masks[1:]:
        drop = pc.or_(drop, mask)
    return drop


def _rewrite_without(fs: pafs.FileSystem, path: str, footprint: UserFootprint) -> int:
    """Rewrite ``path`` without the user's rows (atomically: beside it, then moved over it);
    return how many rows went (0: the file is left as it was)."""
    with fs.open_input_file(path) as fh:
        parquet = pq.ParquetFile(fh)
        names = parquet.schema_arrow.names
        item_vectors = ("item_id" in names and "embedding" in names
                        and "review_id" not in names)
        keys = [c for c in ("user_id", "review_id") if c in names] + (
            ["item_id"] if item_vectors else [])
        if not keys:
            return 0
        n = sum(pc.sum(_drop_mask(b, footprint, item_vectors)).as_py() or 0
                for b in parquet.iter_batches(columns=keys))
        if not n:
            return 0
        schema = parquet.schema_arrow
        folder, name = path.rsplit("/", 1)
        tmp = f"{folder}/.{name}.forget-{uuid.uuid4().hex[:8]}.tmp"
        try:
            with fs.open_output_stream(tmp) as out, pq.ParquetWriter(out, schema) as writer:
                for batch in parquet.iter_batches():
                    keep = pc.invert(_drop_mask(batch, footprint, item_vectors))
                    writer.write_table(pa.Table.from_batches([batch.filter(keep)], schema))
        except BaseException:
            _delete_quietly(fs, tmp)
            raise
    fs.move(tmp, path)
    return int(n)


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (OSError, pa.ArrowException) as exc:  # nothing written yet
        log.debug("no temporary file to delete at %s: %s", path, exc)
