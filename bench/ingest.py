"""Benchmark MGI's review-file ingest against the plain pandas + DuckDB path.

    python bench/ingest.py [--rows 1000000] [--workdir /tmp/mgi-bench] [--json]
                           [--threads N] [--memory-limit 2GB] [--set NAME=VALUE]
                           [--repeat N] [--only mgi|plain]

1. A CSV of ``--rows`` reviews is resampled from the real Amazon Digital Music file
   (``../shared/data/amazon_digital_music.csv``) with fresh user and item ids, unique
   (user, item) pairs, and cached in ``--workdir`` (reused while its sidecar JSON says it
   has the asked row count and the file size matches).
2. MGI: ``ingest_file(Store(db), csv, name)`` into a fresh DuckDB file.
3. Plain: ``pandas.read_csv(csv)`` then ``CREATE TABLE reviews AS SELECT * FROM df`` into a
   fresh DuckDB file, the path MGI replaces.

Each measured path runs in its own worker process (``--_worker``) so that its peak memory
is its own. Peak RSS is the worker's ``VmHWM`` from ``/proc/self/status``: the high-water
mark of the worker's own address space, started fresh at ``exec``. ``ru_maxrss``
(``getrusage``) is printed beside it as a cross-check only: Linux carries the parent's
high-water mark across ``fork``/``vfork`` + ``exec`` into the child's ``ru_maxrss``, and
``RUSAGE_CHILDREN`` in the parent is the maximum over *all* waited-for children, so neither
isolates one path. (The parent stays small — it imports neither pandas nor DuckDB, and the
data are generated in a worker too — so the two readings agree here.)

Timing is wall-clock inside the worker, after imports: for MGI from opening the store to
``ingest_file`` returning (hash, sniff, read, validate, split, insert, commit); for the
plain path from ``read_csv`` to the ``CREATE TABLE`` returning (connect included). CPU
time (user + sys) over the same span is printed too: on a shared machine it is the steadier
figure. The file is read once beforehand so both paths start with it in the page cache.

Targets (reported, never asserted; the exit status is 0 whatever the figures): MGI at
least 3x the plain path's rows/s, and MGI's peak RSS well under (at most half of) the
in-memory size of the DataFrame the plain path builds (``memory_usage(deep=True)``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SOURCE = ROOT.parent / "shared" / "data" / "amazon_digital_music.csv"
if not SOURCE.exists():  # the checkout may live elsewhere; the shared data do not move
    SOURCE = Path("/work/shared/data/amazon_digital_music.csv")
COLUMNS = ["user_id", "item_id", "text", "rating", "timestamp", "category", "item_title"]
SEED = 0
SPEED_TARGET = 3.0  # MGI rows/s over plain rows/s
RSS_TARGET = 0.5  # MGI peak RSS over the DataFrame's in-memory size ("well under")
RESULT_TAG = "BENCH-RESULT "
MIB = 1024 * 1024


# -- memory readings ----------------------------------------------------------------------
def _vm_hwm_kib() -> int | None:
    """Peak resident set of this process's address space (KiB), Linux only."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _memory() -> dict[str, int | None]:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux, bytes on macOS.
    return {"vm_hwm_kib": _vm_hwm_kib(), "ru_maxrss_kib": ru // 1024 if sys.platform ==
            "darwin" else ru}


def _peak_kib(mem: dict[str, int | None]) -> int:
    return int(mem["vm_hwm_kib"] if mem["vm_hwm_kib"] is not None else mem["ru_maxrss_kib"])


# -- data generation (runs in a worker) -----------------------------------------------------
def _sidecar(csv_path: Path) -> Path:
    return csv_path.with_suffix(".json")


def _cached(csv_path: Path, rows: int) -> bool:
    side = _sidecar(csv_path)
    if not (csv_path.exists() and side.exists()):
        return False
    try:
        meta = json.loads(side.read_text())
    except ValueError:
        return False
    return (
        meta.get("rows") == rows
        and meta.get("seed") == SEED
        and meta.get("bytes") == csv_path.stat().st_size
    )


def generate(csv_path: Path, rows: int, chunk: int = 100_000, n_users: int | None = None,
             n_items: int | None = None) -> dict[str, object]:
    """Write ``rows`` reviews resampled from SOURCE with fresh, unique (user, item) pairs.

    Users are drawn from ``n_users`` fresh ids (default rows / 3) and items from
    ``n_items`` (default rows / 20), each new item copying a source item's category and
    title; each review copies a real review's text, rating and timestamp.
    """
    import numpy as np
    import pandas as pd

    src = pd.read_csv(SOURCE, dtype={"user_id": str, "item_id": str}, keep_default_na=False)
    items = src.drop_duplicates("item_id")[["category", "item_title"]].reset_index(drop=True)
    rng = np.random.default_rng(SEED)
    n_users = max(1, n_users or rows // 3)
    n_items = max(1, n_items or rows // 20)
    item_src = rng.integers(0, len(items), n_items)  # each new item copies a source item

    users = np.empty(0, dtype=np.int64)
    itms = np.empty(0, dtype=np.int64)
    while len(users) < rows:  # draw, drop repeated (user, item) pairs, top up
        need = rows - len(users) + 16
        users = np.concatenate([users, rng.integers(0, n_users, need)])
        itms = np.concatenate([itms, rng.integers(0, n_items, need)])
        _, first = np.unique(users * n_items + itms, return_index=True)
        keep = np.sort(first)
        users, itms = users[keep], itms[keep]
    users, itms = users[:rows], itms[:rows]
    review_src = rng.integers(0, len(src), rows)  # text, rating, timestamp of a real review

    tmp = csv_path.with_suffix(".csv.part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        for start in range(0, rows, chunk):
            sl = slice(start, min(rows, start + chunk))
            r = src.iloc[review_src[sl]]
            it = items.iloc[item_src[itms[sl]]]
            frame = pd.DataFrame({
                "user_id": [f"u{u}" for u in users[sl]],
                "item_id": [f"i{i}" for i in itms[sl]],
                "text": r["text"].to_numpy(),
                "rating": r["rating"].to_numpy(),
                "timestamp": r["timestamp"].to_numpy(),
                "category": it["category"].to_numpy(),
                "item_title": it["item_title"].to_numpy(),
            })
            frame.to_csv(fh, index=False, header=start == 0, lineterminator="\n")
    tmp.replace(csv_path)
    meta = {
        "rows": rows, "seed": SEED, "bytes": csv_path.stat().st_size, "source": str(SOURCE),
        "n_users_drawn_from": n_users, "n_items_drawn_from": n_items,
        "n_users": len(np.unique(users)), "n_items": len(np.unique(itms)),
    }
    _sidecar(csv_path).write_text(json.dumps(meta, indent=1))
    return meta


# -- workers ------------------------------------------------------------------------------
def _settings_sql(
    threads: int | None, memory_limit: str | None, extra: list[str] | None = None
) -> list[str]:
    out = []
    for item in extra or []:
        key, sep, value = item.partition("=")
        if not (sep and key.strip().replace("_", "").isalnum()):
            raise SystemExit(f"--set wants NAME=VALUE, got {item!r}")
        out.append(f"SET {key.strip()} = '" + value.strip().replace("'", "") + "'")
    if threads:
        out.append(f"SET threads = {int(threads)}")
    if memory_limit:
        out.append("SET memory_limit = '" + memory_limit.replace("'", "") + "'")
    return out


def _fresh(db: Path) -> None:
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)


def worker_mgi(csv_path: Path, db: Path, settings: list[str]) -> dict[str, object]:
    import duckdb  # noqa: F401 - imported before the clock starts, like pandas for plain

    from mgi_core.data.ingest import ingest_file
    from mgi_core.store import Store

    _fresh(db)
    base = _memory()
    c0, t0 = _cpu_seconds(), time.perf_counter()
    store = Store(db)
    for sql in settings:
        store.cursor().execute(sql)
    report = ingest_file(store, csv_path, "bench")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    store.close()
    return {
        "seconds": seconds, "cpu_seconds": cpu, "n_rows": report.n_accepted,
        "n_read": report.n_read, "n_rejected": report.n_rejected,
        "n_users": report.n_users, "n_items": report.n_items,
        "baseline": base, "db_bytes": db.stat().st_size,
    }


def worker_plain(csv_path: Path, db: Path, settings: list[str]) -> dict[str, object]:
    import duckdb
    import pandas as pd

    _fresh(db)
    base = _memory()
    c0, t0 = _cpu_seconds(), time.perf_counter()
    df = pd.read_csv(csv_path)
    t_read = time.perf_counter() - t0
    con = duckdb.connect(str(db))
    for sql in settings:
        con.execute(sql)
    con.execute("CREATE TABLE reviews AS SELECT * FROM df")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    n = con.execute("SELECT count(*) FROM reviews").fetchone()[0]
    con.close()
    df_bytes = int(df.memory_usage(deep=True).sum())  # after the clock: it walks every value
    return {
        "seconds": seconds, "cpu_seconds": cpu, "read_csv_seconds": t_read, "n_rows": int(n),
        "df_bytes": df_bytes, "df_dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "baseline": base, "db_bytes": db.stat().st_size,
    }


def run_worker(kind: str, args: list[str]) -> None:
    if kind == "generate":
        out: dict[str, object] = generate(Path(args[0]), int(args[1]))
    else:
        csv_path, db = Path(args[0]), Path(args[1])
        settings = json.loads(args[2]) if len(args) > 2 else []
        fn = {"mgi": worker_mgi, "plain": worker_plain}[kind]
        out = fn(csv_path, db, settings)
    out["memory"] = _memory()  # read last: the peak of the whole worker
    print(RESULT_TAG + json.dumps(out), flush=True)


def spawn(kind: str, *args: str, timeout: float | None = None) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        else:
            print(line, file=sys.stderr)
    if proc.returncode != 0 or result is None:
        raise SystemExit(f"worker {kind} failed (exit {proc.returncode})")
    result["ru_children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result


# -- driver -------------------------------------------------------------------------------
def _warm(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        while fh.read(16 * MIB):
            pass
    return time.perf_counter() - t0


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated CSV")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mgi-bench"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    ap.add_argument("--threads", type=int, default=None, help="SET threads in both paths")
    ap.add_argument("--memory-limit", default=None,
                    help="SET memory_limit (e.g. 2GB) in both paths' DuckDB")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="any other DuckDB setting for both paths, e.g. "
                    "preserve_insertion_order=false (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per path; the median counts")
    ap.add_argument("--only", choices=["mgi", "plain"], default=None, help="measure one path")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per worker")
    ap.add_argument("--_worker", nargs="+", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns._worker:
        run_worker(ns._worker[0], ns._worker[1:])
        return 0

    out = sys.stderr if ns.json else sys.stdout

    def say(*a: object) -> None:
        print(*a, file=out, flush=True)

    settings = _settings_sql(ns.threads, ns.memory_limit, ns.set)
    ns.workdir.mkdir(parents=True, exist_ok=True)
    csv_path = ns.workdir / f"reviews_{ns.rows}.csv"
    if _cached(csv_path, ns.rows):
        meta = json.loads(_sidecar(csv_path).read_text())
        say(f"data: {csv_path} (cached)")
    else:
        say(f"data: generating {ns.rows:,} rows from {SOURCE.name} into {csv_path} …")
        t0 = time.perf_counter()
        meta = spawn("generate", str(csv_path), str(ns.rows))
        meta.pop("memory", None)
        meta.pop("ru_children_maxrss_kib", None)
        say(f"data: generated in {time.perf_counter() - t0:.1f} s")
    size = csv_path.stat().st_size
    say(f"data: {ns.rows:,} rows, {meta['n_users']:,} users, {meta['n_items']:,} items, "
        f"{size:,} bytes ({size / MIB:,.1f} MiB)")
    say(f"data: warm read of the file (page cache) {_warm(csv_path):.2f} s")

    say("duckdb settings: " + ("; ".join(settings) if settings else "defaults") +
        f"; CPUs: {os.cpu_count()}")
    load_before = os.getloadavg()[0]
    paths = [ns.only] if ns.only else ["mgi", "plain"]
    runs: dict[str, list[dict[str, object]]] = {p: [] for p in paths}
    for i in range(ns.repeat):
        for p in paths:
            db = ns.workdir / f"bench_{p}.duckdb"
            r = spawn(p, str(csv_path), str(db), json.dumps(settings), timeout=ns.timeout)
            r["peak_rss_kib"] = _peak_kib(r["memory"])  # type: ignore[arg-type]
            r["rows_per_s"] = r["n_rows"] / r["seconds"]  # type: ignore[operator]
            runs[p].append(r)
            say(f"run {i + 1}/{ns.repeat} {p}: {r['seconds']:.2f} s "
                f"(CPU {r['cpu_seconds']:.1f} s), peak RSS {r['peak_rss_kib'] / 1024:,.0f} MiB")
            _fresh(db)

    summary: dict[str, dict[str, object]] = {}
    for p, rs in runs.items():
        med = statistics.median(float(r["seconds"]) for r in rs)  # type: ignore[arg-type]
        rep = min(rs, key=lambda r: abs(float(r["seconds"]) - med))  # type: ignore[arg-type]
        summary[p] = {
            "seconds": med,
            "cpu_seconds": statistics.median(float(r["cpu_seconds"]) for r in rs),  # type: ignore
            "ru_maxrss_mib": max(int(r["memory"]["ru_maxrss_kib"]) for r in rs) / 1024,  # type: ignore
            "after_imports_mib": max(_peak_kib(r["baseline"]) for r in rs) / 1024,  # type: ignore
            "rows_per_s": float(rep["n_rows"]) / med,  # type: ignore[arg-type]
            "peak_rss_mib": max(int(r["peak_rss_kib"]) for r in rs) / 1024,  # type: ignore
            "runs": rs,
        }

    say("")
    load_after = os.getloadavg()[0]
    say(f"{'path':<8}{'seconds':>10}{'rows/s':>12}{'CPU s':>9}{'peak RSS MiB':>14}"
        f"{'ru_maxrss MiB':>15}{'after imports':>15}{'rows stored':>13}{'DB MiB':>8}")
    for p, s in summary.items():
        rep = s["runs"][-1]  # type: ignore[index]
        say(f"{p:<8}{s['seconds']:>10.2f}{_fmt_rate(s['rows_per_s']):>12}"  # type: ignore
            f"{s['cpu_seconds']:>9.1f}{s['peak_rss_mib']:>14,.0f}{s['ru_maxrss_mib']:>15,.0f}"
            f"{s['after_imports_mib']:>15,.0f}{rep['n_rows']:>13,}{rep['db_bytes'] / MIB:>8,.0f}")
    say(f"seconds and CPU s: median of {ns.repeat} run(s), wall-clock / user+sys inside the "
        "worker after imports. peak RSS: max over runs of the worker's /proc/self/status "
        "VmHWM (its own address space since exec); ru_maxrss (getrusage) as a cross-check; "
        "'after imports' = the worker's peak before the clock started.")
    say(f"load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} on "
        f"{os.cpu_count()} CPUs" + ("  — the machine was busy: wall times are contended, "
                                    "compare CPU s too" if max(load_before, load_after)
                                    > (os.cpu_count() or 1) else ""))

    result: dict[str, object] = {
        "rows": ns.rows, "csv": str(csv_path), "csv_bytes": size, "cpus": os.cpu_count(),
        "settings": settings, "repeat": ns.repeat, "paths": summary,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    if "plain" in summary:
        plain = summary["plain"]["runs"][-1]  # type: ignore[index]
        df_mib = plain["df_bytes"] / MIB
        say(f"plain: read_csv {plain['read_csv_seconds']:.2f} s of "
            f"{summary['plain']['seconds']:.2f} s; DataFrame in memory "
            f"(memory_usage(deep=True)) {df_mib:,.0f} MiB")
        result["df_bytes"] = plain["df_bytes"]
    if "mgi" in summary and "plain" in summary:
        speed = summary["mgi"]["rows_per_s"] / summary["plain"]["rows_per_s"]  # type: ignore
        rss_frac = summary["mgi"]["peak_rss_mib"] / df_mib  # type: ignore[operator]
        result.update(speed_ratio=speed, mgi_rss_over_df=rss_frac)
        cpu_ratio = summary["plain"]["cpu_seconds"] / summary["mgi"]["cpu_seconds"]  # type: ignore
        result["cpu_ratio"] = cpu_ratio
        say(f"speed: MGI / plain = {speed:.2f}x by wall time (target >= {SPEED_TARGET:g}x); "
            f"{cpu_ratio:.2f}x by CPU time")
        say(f"memory: MGI peak RSS / DataFrame size = {rss_frac:.2f} "
            f"({summary['mgi']['peak_rss_mib']:,.0f} / {df_mib:,.0f} MiB; "
            f"target <= {RSS_TARGET:g})")
        ok_speed, ok_rss = speed >= SPEED_TARGET, rss_frac <= RSS_TARGET
        result.update(speed_target_met=ok_speed, rss_target_met=ok_rss)
        say(f"{'TARGET MET' if ok_speed else 'TARGET MISSED'}: speed {speed:.2f}x vs "
            f">= {SPEED_TARGET:g}x")
        say(f"{'TARGET MET' if ok_rss else 'TARGET MISSED'}: memory {rss_frac:.2f} of the "
            f"DataFrame vs <= {RSS_TARGET:g}")
    if ns.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
