"""MGI's whole pipeline at size: ingest → embed → profiles → evaluation → recommend.

    python bench/pipeline.py [--json] [--quick] [--reviews N] [--items M] [--db PATH]
                             [--keep] [--embed-sample S] [--scorers A,B,...] [--workdir DIR]

1. A CSV of ``--reviews`` reviews (default 1,000,000; ``--quick``: 50,000) is resampled
   from the real Amazon Digital Music file (``bench/ingest.py``'s ``SOURCE``) with fresh
   user and item ids: about N/10 users and N/20 items (``--items``: M; the acceptance
   set of issue 12 is ``--reviews 760000 --items 19000``), unique (user, item) pairs, each
   review's text, rating and timestamp copied from a real review. Cached in ``--workdir``.
2. **ingest**: ``mgi_core.data.ingest.ingest_file`` into a fresh DuckDB file (``--db``, or
   one in a temporary folder, removed unless ``--keep``).
3. **embed**: the real encoder (``load_encoder`` + ``Encoder.encode`` on the path the embed
   job takes, ``encode_path_here('cpu')``) is timed on ``--embed-sample`` reviews and the
   time for all reviews is **extrapolated** from its rate (a full embed of 1M reviews takes
   hours on 2 cores). The vectors stored are **stand-ins** (d = 384, float32: a random vector
   per item plus noise per review, L2-normalised; item vectors = mean of the item's train
   reviews), registered through the job manager's path (``register_finished_run``, kind
   'embed') so that the later stages run on a full-size version.
4. **profiles**: ``mgi_core.profiles.service.ensure_profiles``.
5. **evaluate**: ``mgi_core.evaluation.protocol.evaluate`` with ``--scorers`` (default
   ``popularity item_knn content mgi_hybrid``), saved as the CLI does.
6. **recommend**: ``mgi_core.ranking.recommend.recommend`` for one evaluated user.

Every stage runs in its own worker process (``--stage``), so its peak RSS (``VmHWM`` from
``/proc/self/status``, imports included) is its own. Printed per stage: seconds (wall,
after imports), CPU seconds, peak RSS and a rate where one makes sense. Figures are
reported, never asserted (exit status 0 unless a stage fails).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import _cpu_seconds, _vm_hwm_kib  # noqa: E402
from bench.ingest import generate as generate_reviews  # noqa: E402

DATASET = "bench"
DIM = 384
SEED = 0
RESULT_TAG = "PIPELINE-RESULT "
STAGES = ("ingest", "embed", "profiles", "evaluate", "recommend")
DEFAULT_SCORERS = "popularity,item_knn,content,mgi_hybrid"


# -- data -----------------------------------------------------------------------------------
def generate(csv_path: Path, rows: int, n_items: int | None = None) -> dict[str, object]:
    """Write ``rows`` reviews from SOURCE with ~rows/10 fresh users and ``n_items`` items
    (default ~rows/20): ``bench/ingest.py``'s generator with this bench's ratios."""
    return generate_reviews(csv_path, rows, n_users=max(1, rows // 10),
                            n_items=n_items or max(1, rows // 20))


def _cached(csv_path: Path, rows: int) -> dict[str, object] | None:
    side = csv_path.with_suffix(".json")
    if not (csv_path.exists() and side.exists()):
        return None
    meta = json.loads(side.read_text())
    ok = meta.get("rows") == rows and meta.get("bytes") == csv_path.stat().st_size
    return meta if ok else None


# -- stages (each in its own worker) --------------------------------------------------------
def stage_ingest(db: Path, csv: Path, **_: object) -> dict[str, object]:
    from mgi_core.data.ingest import ingest_file
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with Store(db) as store:
        rep = ingest_file(store, csv, DATASET)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "n_reviews": rep.n_accepted, "n_users": rep.n_users,
            "n_items": rep.n_items, "rate": rep.n_accepted / secs, "rate_unit": "reviews/s"}


def _standin_vectors(store, tmp: Path, batch_rows: int = 100_000) -> tuple[Path, Path, int]:
    """Stand-in review and item vectors in Parquet (bounded memory: one batch at a time)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mgi_core.store.datasets import export_reviews_parquet

    snap = tmp / "snapshot.parquet"
    export_reviews_parquet(store, DATASET, snap)
    rng = np.random.default_rng(SEED)
    codes: dict[str, int] = {}
    base = np.zeros((0, DIM), dtype=np.float32)
    sums = np.zeros((0, DIM), dtype=np.float64)
    counts = np.zeros(0, dtype=np.int64)
    schema = pa.schema([("review_id", pa.int64()), ("embedding", pa.list_(pa.float32(), DIM))])
    rpath, ipath, n = tmp / "reviews.parquet", tmp / "items.parquet", 0
    with pq.ParquetWriter(rpath, schema) as writer:
        for rb in pq.ParquetFile(snap).iter_batches(batch_rows, columns=["review_id", "item_id",
                                                                         "split"]):
            item_ids = rb.column("item_id").to_pylist()
            idx = np.fromiter((codes.setdefault(i, len(codes)) for i in item_ids), np.int64,
                              len(item_ids))
            if len(codes) > len(base):  # new items: their random base vectors
                extra = len(codes) - len(base)
                base = np.vstack([base, rng.standard_normal((extra, DIM), dtype=np.float32)])
                sums = np.vstack([sums, np.zeros((extra, DIM))])
                counts = np.concatenate([counts, np.zeros(extra, np.int64)])
            vecs = base[idx] + 0.7 * rng.standard_normal((len(idx), DIM), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            train = np.asarray(rb.column("split").to_pylist()) == "train"
            np.add.at(sums, idx[train], vecs[train])
            np.add.at(counts, idx[train], 1)
            writer.write_table(pa.table({
                "review_id": rb.column("review_id").cast(pa.int64()),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIM),
            }, schema=schema))
            n += len(idx)
    names = np.array(list(codes), dtype=object)
    has = counts > 0
    ivec = (sums[has] / np.linalg.norm(sums[has], axis=1, keepdims=True)).astype(np.float32)
    pq.write_table(pa.table({
        "item_id": pa.array(names[has].tolist(), pa.string()),
        "n_train_reviews": pa.array(counts[has], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(ivec.reshape(-1)), DIM),
    }), ipath)
    snap.unlink()
    return rpath, ipath, n


def stage_embed(db: Path, csv: Path, embed_sample: int = 256, **_: object) -> dict[str, object]:
    import pandas as pd

    from mgi_core.config import DEFAULT_BASE_MODEL, TrainConfig
    from mgi_core.encoder.fast import encode_path_here
    from mgi_core.encoder.model import load_encoder
    from mgi_core.store import Store
    from mgi_core.store.jobs import FinishedRun, register_finished_run
    from mgi_core.store.versions import next_version_id

    cfg = TrainConfig()
    out: dict[str, object] = {"sample": 0, "extrapolated": True, "stand_in_vectors": True}
    t0 = time.perf_counter()
    if embed_sample > 0:  # the real encoder on a sample, on the embed job's path
        texts = pd.read_csv(csv, usecols=["text"], nrows=embed_sample, keep_default_na=False)
        texts = texts["text"].astype(str).tolist()
        encoder = load_encoder(DEFAULT_BASE_MODEL, cfg.embed_max_seq_length, "cpu")
        path = encode_path_here("cpu")
        encoder.encode(texts[:cfg.embed_batch_size], cfg.embed_batch_size, path=path)  # warm
        e0 = time.perf_counter()
        encoder.encode(texts, cfg.embed_batch_size, path=path)
        sample_secs = time.perf_counter() - e0
        out.update(sample=len(texts), sample_seconds=sample_secs,
                   encoder_rate=len(texts) / sample_secs, encode_path=path.describe())
        del encoder
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp, Store(db) as store:
        s0 = time.perf_counter()
        rpath, ipath, n = _standin_vectors(store, Path(tmp))
        version = next_version_id(store)
        register_finished_run(store, FinishedRun(
            job_id=f"bench-{version}", kind="embed", version=version, dataset=DATASET, dim=DIM,
            review_embeddings=rpath, item_embeddings=ipath, device="stand-in vectors (bench)",
            library_versions={},
            job_config={"base_model": "stand-in: random per item + noise (bench/pipeline.py)"},
        ))
        standin_secs = time.perf_counter() - s0
    out.update(version=version, n_reviews=n, standin_seconds=standin_secs,
               wall_seconds=time.perf_counter() - t0)
    if out["sample"]:
        out["seconds"] = n / float(out["encoder_rate"])  # type: ignore[arg-type]
        out["rate"], out["rate_unit"] = out["encoder_rate"], "reviews/s (sample)"
    else:
        out["seconds"] = standin_secs
        out["extrapolated"] = False
    return out


def stage_profiles(db: Path, version: str = "", **_: object) -> dict[str, object]:
    from mgi_core.profiles.service import ensure_profiles
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with Store(db) as store:
        ensure_profiles(store, DATASET, version)
    return {"seconds": time.perf_counter() - t0}


def stage_evaluate(db: Path, version: str = "", scorers: str = DEFAULT_SCORERS,
                   **_: object) -> dict[str, object]:
    from mgi_core.evaluation.protocol import evaluate
    from mgi_core.store import Store

    names = [s for s in scorers.split(",") if s]
    t0 = time.perf_counter()
    with Store(db) as store:
        result = evaluate(store, DATASET, version, names)
    secs = time.perf_counter() - t0
    first = result.per_user[names[0]]
    summary = result.summary()
    ndcg = {s: float(summary.loc[s, "ndcg@10"]) for s in names if "ndcg@10" in summary.columns}
    return {"seconds": secs, "scorers": names, "n_target_users": len(first),
            "rate": len(first) / secs, "rate_unit": "target users/s (all scorers)",
            "ndcg@10": ndcg, "user_id": str(first.index[0])}


def stage_recommend(db: Path, version: str = "", user: str = "", **_: object) -> dict[str, object]:
    from mgi_core.ranking.recommend import recommend
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with Store(db) as store:
        rec = recommend(store, DATASET, version, user, k=10)
    items = rec.get("items") if isinstance(rec, dict) else None
    return {"seconds": time.perf_counter() - t0, "user_id": user,
            "n_items": len(items) if items is not None else None}


STAGE_FUNCS = {"ingest": stage_ingest, "embed": stage_embed, "profiles": stage_profiles,
               "evaluate": stage_evaluate, "recommend": stage_recommend}


def run_stage(name: str, kwargs: dict[str, object],
              stages: dict[str, object] | None = None) -> None:
    """Run stage ``name`` of ``stages`` (default this bench's) here; print its result line
    (seconds, CPU seconds, peak RSS) for :func:`spawn`."""
    c0 = _cpu_seconds()
    kw = dict(kwargs)
    kw["db"], kw["csv"] = Path(str(kw["db"])), Path(str(kw.get("csv", "")))
    out = (stages or STAGE_FUNCS)[name](**kw)
    out["cpu_seconds"] = _cpu_seconds() - c0
    out["peak_rss_mib"] = (_vm_hwm_kib() or 0) / 1024
    print(RESULT_TAG + json.dumps(out, default=str), flush=True)


def spawn(name: str, kwargs: dict[str, object], quiet: bool,
          script: str | Path = __file__) -> dict[str, object]:
    """Run stage ``name`` in a worker process (``script --stage NAME KWARGS``), so its peak
    RSS is its own; return its result."""
    cmd = [sys.executable, str(Path(script).resolve()), "--stage", name, json.dumps(kwargs)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        elif not quiet:
            print(line, file=sys.stderr)
    if proc.returncode != 0 or result is None:
        raise SystemExit(f"stage {name} failed (exit {proc.returncode})")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--quick", action="store_true", help="50,000 reviews")
    ap.add_argument("--reviews", type=int, default=None, help="reviews (default 1,000,000)")
    ap.add_argument("--items", type=int, default=None,
                    help="items to draw from (default reviews / 20)")
    ap.add_argument("--db", type=Path, default=None, help="DuckDB file (default: temporary)")
    ap.add_argument("--keep", action="store_true", help="keep the DuckDB file")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mgi-bench"),
                    help="where the generated CSV is cached")
    ap.add_argument("--embed-sample", type=int, default=256,
                    help="reviews the real encoder is timed on (0: no encoder)")
    ap.add_argument("--scorers", default=DEFAULT_SCORERS, help="comma-separated")
    ap.add_argument("--stage", nargs=2, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.stage:
        run_stage(ns.stage[0], json.loads(ns.stage[1]))
        return 0
    out = sys.stderr if ns.json else sys.stdout

    def say(*a: object) -> None:
        print(*a, file=out, flush=True)

    rows = ns.reviews or (50_000 if ns.quick else 1_000_000)
    ns.workdir.mkdir(parents=True, exist_ok=True)
    suffix = f"_{ns.items}items" if ns.items else ""
    csv = ns.workdir / f"pipeline_{rows}{suffix}.csv"
    t0 = time.perf_counter()
    meta = _cached(csv, rows)
    if meta is None:
        say(f"data: generating {rows:,} reviews into {csv} …")
        meta = generate(csv, rows, ns.items)
    say(f"data: {rows:,} reviews, {meta['n_users']:,} users, {meta['n_items']:,} items "
        f"({time.perf_counter() - t0:.1f} s)")
    tmpdir = None
    if ns.db is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="mgi-pipeline-"))
        db = tmpdir / "pipeline.duckdb"
    else:
        db = ns.db
        for p in (db, Path(str(db) + ".wal")):
            p.unlink(missing_ok=True)
    kwargs: dict[str, object] = {"db": str(db), "csv": str(csv), "scorers": ns.scorers,
                                 "embed_sample": ns.embed_sample}
    stages: dict[str, dict[str, object]] = {}
    try:
        for name in STAGES:
            r = spawn(name, kwargs, ns.json)
            stages[name] = r
            if name == "embed":
                kwargs["version"] = r["version"]
            if name == "evaluate":
                kwargs["user"] = r["user_id"]
            rate = f", {r['rate']:,.0f} {r['rate_unit']}" if "rate" in r else ""
            note = ""
            if name == "embed" and r.get("extrapolated"):
                note = (f"  [EXTRAPOLATED from {r['sample']} reviews on {r['encode_path']}; "
                        f"vectors stored are STAND-INS, made in {r['standin_seconds']:.1f} s]")
            say(f"{name:<10}{r['seconds']:>10.1f} s  CPU {r['cpu_seconds']:>7.1f} s  "
                f"peak RSS {r['peak_rss_mib']:>7,.0f} MiB{rate}{note}")
    finally:
        if tmpdir is not None and not ns.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if tmpdir is not None and ns.keep:
        say(f"database kept: {db}")
    result = {"reviews": rows, "n_users": meta["n_users"], "n_items": meta["n_items"],
              "cpus": os.cpu_count(), "db": str(db), "stages": stages,
              "peak_rss_mib": max(float(s["peak_rss_mib"]) for s in stages.values()),
              "embed_extrapolated": bool(stages["embed"].get("extrapolated")),
              "total_seconds": time.perf_counter() - t0}
    say(f"peak RSS of any stage: {result['peak_rss_mib']:,.0f} MiB; "
        f"total {result['total_seconds']:.1f} s on {os.cpu_count()} CPUs")
    if ns.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
