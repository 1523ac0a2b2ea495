"""Incremental update after an append against the full rebuild it replaces.

    python bench/incremental.py [--json] [--quick] [--reviews N] [--append-share S]
                                [--per-user K] [--half-life DAYS] [--workdir DIR] [--keep]

1. **data**: ``--reviews`` reviews (default 200,000; ``--quick``: 20,000) from
   ``bench/pipeline.py``'s generator (the real Amazon Digital Music reviews resampled with
   fresh ids: ~N/10 users, ~N/20 items; cached in ``--workdir``, shared with that bench),
   cut in time: the newest ``--per-user`` review(s) (default 1) of users drawn at random
   until ``--append-share`` of the reviews (default 0.01) go to an appended file; the rest
   is the first file.
2. **ingest** the first file, **embed** it with ``bench/pipeline.py``'s stand-in vectors
   (a random vector per item plus noise per review, d = 384; item vectors = mean of train
   reviews; registered through ``register_finished_run``, kind 'embed'), then
   **profiles**: ``ensure_profiles`` (the full build), with ``--half-life`` when given.
3. **append**: ``mgi_core.data.append.append_file`` with the appended file (touched users
   split again).
4. **export**: ``export_missing`` (the update job's snapshot of the reviews the version
   lacks) and stand-in vectors for them by the same rule: the item's random vector is its
   stored item vector scaled to the base vectors' expected norm (sqrt(d)); an item with
   none gets a fresh one; plus noise per review. No title vectors for items without a train
   review (the base stand-ins have none either).
5. **update**: ``mgi_core.profiles.incremental.apply_update`` (the new review vectors; the
   touched items' vectors and the touched users' profiles rebuilt).
6. **full**: on a copy of the database after the update (copy not timed), what a full
   rebuild of the same state does: drop the stored profiles, ``ensure_profiles`` again, and
   every item's vector as the embed job makes it (the train snapshot, the train review
   vectors, ``item_vectors_from_reviews``; written to a Parquet file, not to the store).
7. **check**: the incremental store's profiles (``stored_profiles``) against the full
   rebuild's, matched by (user, level, key): the rows, the largest absolute difference of
   the profile vectors and of share / sentiment / head_prob / affinity; the stored item
   vectors against the full means. As a control, the profiles before the update (a copy
   made after the append, not timed) against the same full rebuild: what the check reports
   when the touched users were not updated.

The encoder is not run: both paths would embed reviews (the update only the appended ones,
the full rebuild all of them), which is reported as a count. Incremental = export + update;
full = drop + profiles + item means; the figure is their ratio (and with the append's time
added), reported, never asserted. Every stage runs in its own worker process (``--stage``),
so its peak RSS (``VmHWM``, imports included) is its own; seconds are wall-clock after
imports. Exit status 0 unless a stage fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline import DATASET, DIM, SEED, _cached, generate  # noqa: E402
from bench.pipeline import run_stage as pipeline_run_stage  # noqa: E402
from bench.pipeline import spawn as pipeline_spawn  # noqa: E402
from bench.pipeline import stage_embed as pipeline_embed  # noqa: E402
from bench.pipeline import stage_ingest as pipeline_ingest  # noqa: E402
from bench.pipeline import stage_profiles as pipeline_profiles  # noqa: E402

STAGES = ("ingest", "embed", "profiles", "append", "export", "update", "full", "check")
NOISE = 0.7  # per-review noise around the item's vector, as bench/pipeline.py's stand-ins
TOL = 1e-5  # a profile row "differs" when a vector entry is further off than this


# -- data -----------------------------------------------------------------------------------
def cut(csv: Path, first: Path, more: Path, share: float, per_user: int) -> dict[str, int]:
    """Write ``first`` and ``more`` (the appended file): the newest ``per_user`` reviews of
    users drawn at random go to ``more`` until it holds ``share`` of the reviews."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(csv, dtype={"user_id": str, "item_id": str}, keep_default_na=False)
    target = max(1, round(share * len(frame)))
    newest = (frame.assign(_row=np.arange(len(frame)))
              .sort_values(["timestamp", "_row"], kind="stable")
              .groupby("user_id", sort=False).tail(per_user))
    users = newest["user_id"].unique()
    order = {u: k for k, u in enumerate(np.random.default_rng(SEED + 1).permutation(users))}
    newest = newest.assign(_draw=newest["user_id"].map(order)).sort_values(
        ["_draw", "timestamp", "_row"], kind="stable")
    later = np.zeros(len(frame), dtype=bool)
    later[newest["_row"].to_numpy()[:target]] = True
    frame[~later].to_csv(first, index=False, lineterminator="\n")
    frame[later].to_csv(more, index=False, lineterminator="\n")
    return {"n_first": int((~later).sum()), "n_appended": int(later.sum()),
            "n_appended_users": int(frame.loc[later, "user_id"].nunique())}


# -- stages (each in its own worker) --------------------------------------------------------
def _copy_db(db: Path, to: Path) -> None:
    """Copy a closed DuckDB file (and its write-ahead log, if one was left)."""
    shutil.copyfile(db, to)
    if Path(str(db) + ".wal").exists():
        shutil.copyfile(str(db) + ".wal", str(to) + ".wal")


def stage_profiles(db: Path, version: str = "", half_life: float | None = None,
                   **_: object) -> dict[str, object]:
    from mgi_core.store import Store
    from mgi_core.store.datasets import set_profile_half_life

    if half_life is not None:
        with Store(db) as store:
            set_profile_half_life(store, DATASET, half_life)
    return pipeline_profiles(db, version)


def stage_append(db: Path, more: str = "", **_: object) -> dict[str, object]:
    from mgi_core.data.append import append_file
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with Store(db) as store:
        rep = append_file(store, Path(more), DATASET)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "n_reviews": rep.report.n_accepted,
            "n_rejected": rep.report.n_rejected, "n_users": rep.report.n_users,
            "n_new_users": rep.n_new_users, "n_new_items": rep.n_new_items,
            "n_moved": rep.n_moved, "first_review_id": rep.first_review_id,
            "last_review_id": rep.last_review_id,
            "rate": rep.report.n_accepted / secs, "rate_unit": "reviews/s"}


def stage_export(db: Path, version: str = "", work: str = "", **_: object) -> dict[str, object]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mgi_core.store import Store
    from mgi_core.store.embedding_updates import export_missing
    from mgi_core.store.embeddings import item_vectors

    snap, out = Path(work) / "missing.parquet", Path(work) / "new_vectors.parquet"
    t0 = time.perf_counter()
    with Store(db) as store:
        n = export_missing(store, version, DATASET, DIM, snap)
        export_secs = time.perf_counter() - t0
        s0 = time.perf_counter()
        item_ids, item_vecs = item_vectors(store, version, DATASET)  # (n_items, d), unit
    missing = pq.read_table(snap, columns=["review_id", "item_id"]).drop_null()
    rng = np.random.default_rng(SEED + 2)
    position = {str(i): k for k, i in enumerate(item_ids)}
    fresh: dict[str, np.ndarray] = {}
    base = np.empty((missing.num_rows, DIM), dtype=np.float32)
    for row, item in enumerate(missing.column("item_id").to_pylist()):
        if item in position:  # the item's random vector, recovered from its stored mean
            base[row] = item_vecs[position[item]] * np.sqrt(DIM)
        else:
            base[row] = fresh.setdefault(item, rng.standard_normal(DIM, dtype=np.float32))
    vecs = base + NOISE * rng.standard_normal(base.shape, dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    pq.write_table(pa.table({
        "review_id": missing.column("review_id").cast(pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIM),
    }), out)
    _copy_db(db, Path(work) / "stale.duckdb")  # the state before the update: the control
    return {"seconds": export_secs, "n_reviews": n, "n_new_items": len(fresh),
            "standin_seconds": time.perf_counter() - s0, "vectors": str(out)}


def stage_update(db: Path, version: str = "", work: str = "", **_: object) -> dict[str, object]:
    from mgi_core.profiles.incremental import apply_update
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with Store(db) as store:
        result = apply_update(store, version, DATASET, Path(work) / "new_vectors.parquet")
    secs = time.perf_counter() - t0
    return {"seconds": secs, "n_reviews": result.n_reviews, "n_items": result.n_items,
            "n_users": result.n_users}


def stage_full(db: Path, version: str = "", work: str = "", full_db: str = "",
               **_: object) -> dict[str, object]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mgi_core.jobs.worker import item_vectors_from_reviews
    from mgi_core.profiles.service import ensure_profiles
    from mgi_core.store import Store
    from mgi_core.store.datasets import (
        export_reviews_parquet,
        profile_half_life,
        set_profile_half_life,
    )
    from mgi_core.store.embeddings import review_vectors

    copy = Path(full_db)
    _copy_db(db, copy)  # the state after the update, rebuilt in full (not timed)

    def no_title_vectors(texts: list[str]) -> np.ndarray:
        raise AssertionError("every item of the train snapshot has a train review")

    t0 = time.perf_counter()
    with Store(copy) as store:
        set_profile_half_life(store, DATASET, profile_half_life(store, DATASET))  # drops them
        drop_secs = time.perf_counter() - t0
        p0 = time.perf_counter()
        ensure_profiles(store, DATASET, version)
        profile_secs = time.perf_counter() - p0
        m0 = time.perf_counter()
        snap = Path(work) / "train_snapshot.parquet"  # the embed job's snapshot, train split
        export_reviews_parquet(store, DATASET, snap, splits=("train",))
        ids, vecs = review_vectors(store, version, DATASET, split="train")  # (n_train, d)
    frame = pq.read_table(snap, columns=["review_id", "item_id", "split"]).to_pandas()
    if not np.array_equal(frame["review_id"].to_numpy(), ids):
        raise SystemExit("the train snapshot and the train vectors are not row-aligned")
    items = item_vectors_from_reviews(frame, vecs, no_title_vectors)
    pq.write_table(pa.table({
        "item_id": pa.array(items["item_id"].astype(str).tolist(), pa.string()),
        "n_train_reviews": pa.array(items["n_train_reviews"], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(np.stack(items["vector"].to_list()).astype(np.float32).reshape(-1)), DIM),
    }), Path(work) / "full_items.parquet")
    snap.unlink()
    means_secs = time.perf_counter() - m0
    return {"seconds": time.perf_counter() - t0, "drop_seconds": drop_secs,
            "profiles_seconds": profile_secs, "item_means_seconds": means_secs,
            "n_items": len(items), "n_train_reviews": len(ids)}


def _compare(got, want) -> dict[str, object]:
    """Two ``UserProfiles`` matched by (user, level, key): whether the rows are the same,
    the largest absolute differences over the rows both have, and how many rows differ
    (in one only, another n_reviews, or a vector off by more than ``TOL``)."""
    import numpy as np

    keys = ["user_id", "level", "key"]
    a = got.rows.set_index(keys).sort_index()
    b = want.rows.set_index(keys).sort_index()
    common = a.index.intersection(b.index)
    a, b, rest = a.loc[common], b.loc[common], len(a) + len(b) - 2 * len(common)
    diff = np.abs(got.vectors[a["vector_row"].to_numpy()]
                  - want.vectors[b["vector_row"].to_numpy()])  # (rows, d)
    values = ["share", "sentiment", "head_prob", "affinity"]
    value_diff = np.abs(a[values].astype(float).fillna(-9).to_numpy()
                        - b[values].astype(float).fillna(-9).to_numpy())
    other = (a["n_reviews"].to_numpy() != b["n_reviews"].to_numpy()) | (
        diff.max(axis=1, initial=0.0) > TOL)

    def labels(rows) -> list[tuple[str, ...]]:
        return [tuple(k) if isinstance(k, (list, np.ndarray)) else () for k in rows["keywords"]]

    keywords = np.array([x != y for x, y in zip(labels(a), labels(b), strict=True)], bool)
    return {"rows_equal": rest == 0 and not other.any(), "n_rows": len(got.rows),
            "n_rows_differing": int(rest + other.sum()),
            "n_keywords_differing": int(keywords.sum()),
            "max_abs_diff": float(diff.max(initial=0.0)),
            "max_abs_diff_values": float(value_diff.max(initial=0.0))}


def stage_check(db: Path, version: str = "", work: str = "", full_db: str = "",
                **_: object) -> dict[str, object]:
    import numpy as np
    import pyarrow.parquet as pq

    from mgi_core.profiles.service import load_train_embeddings, stored_profiles
    from mgi_core.store import Store
    from mgi_core.store.embeddings import item_vectors

    t0 = time.perf_counter()
    with (Store(db, read_only=True) as inc, Store(Path(full_db), read_only=True) as full,
          Store(Path(work) / "stale.duckdb", read_only=True) as stale):
        embeddings = load_train_embeddings(inc, DATASET, version)  # last_liked only
        got = stored_profiles(inc, DATASET, version, embeddings)
        want = stored_profiles(full, DATASET, version, embeddings)
        before = stored_profiles(stale, DATASET, version, embeddings)
        item_ids, item_vecs = item_vectors(inc, version, DATASET)
    if got is None or want is None or before is None:
        raise SystemExit("a store has no complete set of profiles")
    out = _compare(got, want)
    control = _compare(before, want)  # not updated: what the check sees when it is wrong
    out.update(before_update_max_abs_diff=control["max_abs_diff"],
               before_update_rows_differing=control["n_rows_differing"])
    means = pq.read_table(Path(work) / "full_items.parquet")
    full_ids = np.asarray(means.column("item_id").to_pylist(), dtype=object)
    emb = means.column("embedding").combine_chunks()
    full_vecs = emb.values.to_numpy(zero_copy_only=False).reshape(-1, DIM)
    position = {str(i): k for k, i in enumerate(item_ids)}
    found = np.array([str(i) in position for i in full_ids], dtype=bool)
    out["items_equal"] = bool(found.all() and len(item_ids) == len(full_ids))
    item_diff = np.abs(item_vecs[[position[str(i)] for i in full_ids[found]]]
                       - full_vecs[found])
    out["item_max_abs_diff"] = float(item_diff.max(initial=0.0))
    out["n_items"] = len(full_ids)
    out["seconds"] = time.perf_counter() - t0
    return out


STAGE_FUNCS = {"ingest": pipeline_ingest, "embed": pipeline_embed, "profiles": stage_profiles,
               "append": stage_append, "export": stage_export, "update": stage_update,
               "full": stage_full, "check": stage_check}


def run_stage(name: str, kwargs: dict[str, object]) -> None:
    pipeline_run_stage(name, kwargs, STAGE_FUNCS)


def spawn(name: str, kwargs: dict[str, object], quiet: bool) -> dict[str, object]:
    return pipeline_spawn(name, kwargs, quiet, __file__)


def _line(name: str, r: dict[str, object], note: str = "") -> str:
    return (f"{name:<10}{float(r['seconds']):>10.2f} s  CPU {float(r['cpu_seconds']):>7.1f} s  "
            f"peak RSS {float(r['peak_rss_mib']):>7,.0f} MiB{note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--quick", action="store_true", help="20,000 reviews")
    ap.add_argument("--reviews", type=int, default=None, help="reviews (default 200,000)")
    ap.add_argument("--append-share", type=float, default=0.01,
                    help="share of the reviews appended (default 0.01)")
    ap.add_argument("--per-user", type=int, default=1,
                    help="newest reviews per drawn user that go to the appended file")
    ap.add_argument("--half-life", type=float, default=None,
                    help="the dataset's profile half-life in days (default: none, no decay)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mgi-bench"),
                    help="where the generated CSV is cached")
    ap.add_argument("--keep", action="store_true", help="keep the databases and files")
    ap.add_argument("--stage", nargs=2, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.stage:
        run_stage(ns.stage[0], json.loads(ns.stage[1]))
        return 0
    if not 0 < ns.append_share < 1 or ns.per_user < 1:
        ap.error("--append-share must be in (0, 1) and --per-user at least 1")
    out = sys.stderr if ns.json else sys.stdout

    def say(*a: object) -> None:
        print(*a, file=out, flush=True)

    rows = ns.reviews or (20_000 if ns.quick else 200_000)
    ns.workdir.mkdir(parents=True, exist_ok=True)
    csv = ns.workdir / f"pipeline_{rows}.csv"  # bench/pipeline.py's cache
    t0 = time.perf_counter()
    meta = _cached(csv, rows)
    if meta is None:
        say(f"data: generating {rows:,} reviews into {csv} …")
        meta = generate(csv, rows)
    tmpdir = Path(tempfile.mkdtemp(prefix="mgi-incremental-"))
    first, more = tmpdir / "first.csv", tmpdir / "appended.csv"
    split = cut(csv, first, more, ns.append_share, ns.per_user)
    say(f"data: {rows:,} reviews, {meta['n_users']:,} users, {meta['n_items']:,} items; "
        f"appended: {split['n_appended']:,} reviews of {split['n_appended_users']:,} users "
        f"(newest {ns.per_user} each) ({time.perf_counter() - t0:.1f} s)")
    kwargs: dict[str, object] = {
        "db": str(tmpdir / "incremental.duckdb"), "csv": str(first), "more": str(more),
        "work": str(tmpdir), "full_db": str(tmpdir / "full.duckdb"), "embed_sample": 0,
        "half_life": ns.half_life}
    stages: dict[str, dict[str, object]] = {}
    try:
        for name in STAGES:
            r = spawn(name, kwargs, ns.json)
            stages[name] = r
            if name == "embed":
                kwargs["version"] = r["version"]
            note = {
                "embed": "  [stand-in vectors, no encoder]",
                "append": f"  [{r.get('n_reviews', 0):,} reviews, {r.get('n_users', 0):,} "
                          f"users ({r.get('n_new_users', 0):,} new), {r.get('n_moved', 0):,} "
                          "moved to train]",
                "export": f"  [+ stand-in vectors {float(r.get('standin_seconds', 0)):.2f} s, "
                          "not counted]",
                "update": f"  [{r.get('n_users', 0):,} users, {r.get('n_items', 0):,} items "
                          "touched]",
                "full": f"  [drop {float(r.get('drop_seconds', 0)):.2f} + profiles "
                        f"{float(r.get('profiles_seconds', 0)):.2f} + item means "
                        f"{float(r.get('item_means_seconds', 0)):.2f} s]",
            }.get(name, "")
            say(_line(name, r, note))
    finally:
        if not ns.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if ns.keep:
        say(f"files kept in {tmpdir}")
    inc = float(stages["export"]["seconds"]) + float(stages["update"]["seconds"])
    full = float(stages["full"]["seconds"])
    check, update = stages["check"], stages["update"]
    result: dict[str, object] = {
        "reviews": rows, "n_users": meta["n_users"], "n_items": meta["n_items"],
        "cpus": os.cpu_count(),
        "append_share": ns.append_share, "per_user": ns.per_user, "half_life": ns.half_life,
        "n_appended": stages["append"]["n_reviews"],
        "n_train_reviews": stages["full"]["n_train_reviews"],
        "touched_users": update["n_users"], "touched_items": update["n_items"],
        "incremental_seconds": inc, "full_seconds": full, "ratio": inc / full,
        "ratio_with_append": (inc + float(stages["append"]["seconds"])) / full,
        "max_abs_diff": check["max_abs_diff"],
        "max_abs_diff_values": check["max_abs_diff_values"],
        "item_max_abs_diff": check["item_max_abs_diff"], "rows_equal": check["rows_equal"],
        "n_rows_differing": check["n_rows_differing"],
        "n_keywords_differing": check["n_keywords_differing"],
        "before_update_max_abs_diff": check["before_update_max_abs_diff"],
        "before_update_rows_differing": check["before_update_rows_differing"],
        "items_equal": check["items_equal"], "stages": stages,
        "peak_rss_mib": max(float(s["peak_rss_mib"]) for s in stages.values()),
        "total_seconds": time.perf_counter() - t0, "folder": str(tmpdir), "kept": ns.keep,
    }
    say(f"touched by the append: {update['n_users']:,} of {result['n_users']:,} users, "
        f"{update['n_items']:,} of {result['n_items']:,} items; reviews to embed: "
        f"{update['n_reviews']:,} (update) vs {stages['embed']['n_reviews']:,}"
        f"+{stages['append']['n_reviews']:,} (full; the encoder is not run here)")
    say(f"incremental (export + update) {inc:.2f} s / full rebuild (profiles + item means) "
        f"{full:.2f} s = {inc / full:.3f}; with the append's time "
        f"{result['ratio_with_append']:.3f}")
    say(f"incremental vs full: profile vectors max |diff| {check['max_abs_diff']:.2e}, "
        f"share/sentiment/head_prob/affinity {check['max_abs_diff_values']:.2e}, rows "
        f"{'equal' if check['rows_equal'] else 'DIFFER'} ({check['n_rows_differing']:,} "
        f"differ, keyword labels of {check['n_keywords_differing']:,}); item vectors max |diff| "
        f"{check['item_max_abs_diff']:.2e}, items "
        f"{'equal' if check['items_equal'] else 'DIFFER'}")
    say(f"control: the profiles before the update vs the full rebuild: max |diff| "
        f"{check['before_update_max_abs_diff']:.2e}, {check['before_update_rows_differing']:,} "
        "rows differ")
    say(f"peak RSS of any stage: {result['peak_rss_mib']:,.0f} MiB; total "
        f"{result['total_seconds']:.1f} s on {os.cpu_count()} CPUs")
    if ns.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
