"""The files of one run folder, the only channel between a job and the app.

``job.json`` (what to do), ``data.parquet`` (the dataset snapshot), ``status.json``
(state and progress, rewritten atomically), ``metrics.jsonl`` (one event per line),
``job.log``, and on success ``checkpoint/`` (a sentence-transformers model folder with
MGI's heads and manifest beside it, see ``mgi_core.encoder.checkpoint``) and the
embeddings as Parquet.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TERMINAL = ("finished", "failed", "cancelled")


@dataclass(frozen=True)
class RunFiles:
    root: Path

    @property
    def job(self) -> Path:
        return self.root / "job.json"

    @property
    def snapshot(self) -> Path:
        return self.root / "data.parquet"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "job.log"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def review_embeddings(self) -> Path:
        return self.root / "review_embeddings.parquet"

    @property
    def review_embedding_parts(self) -> Path:
        """A folder of Parquet parts: where Ray's actors write the review vectors when the
        run folder is the stage (``embed --engine ray`` without ``--stage``)."""
        return self.root / "review_embeddings"

    def review_embeddings_to_load(self) -> Path:
        """What registration loads: the one file, else the parts (a DuckDB glob)."""
        if self.review_embeddings.exists() or not self.review_embedding_parts.is_dir():
            return self.review_embeddings
        return self.review_embedding_parts / "*.parquet"

    @property
    def head_probs(self) -> Path:
        return self.root / "review_head_probs.parquet"

    @property
    def item_embeddings(self) -> Path:
        return self.root / "item_embeddings.parquet"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def append_event(path: Path, event: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(event, default=str) + "\n")


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete line of metrics.jsonl (a half-written last line is skipped)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
