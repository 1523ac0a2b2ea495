"""Benchmark top-10 content match for every user: MGI's batched path against two peers.

    python bench/rank.py [--json] [--users 100000] [--items 50000] [--dim 384]
                         [--batch B] [--sample 200] [--seed 0] [--quick]
                         [--threads N] [--loop-threads N]
                         [--only mgi|duckdb|numpy_loop ...]

Data (synthetic, seeded, the same in every worker): ``--users`` user vectors and ``--items``
item vectors, float32, ``--dim`` wide, L2-normalised (so cosine = dot product), and a
sparse CSR matrix of "seen" items, ``SEEN_PER_USER`` distinct random items per user, that
must never be recommended. ``--quick`` is 10,000 users × 5,000 items (the options given
explicitly win over it).

Four paths, each in its own worker process so that its peak memory is its own:

1. ``mgi``: MGI's batched path. Users in batches of ``--batch`` (default: as many as fit
   ``BATCH_BYTES`` of float32 scores), ``scores = U_batch @ Vᵀ`` (float32, batch × items)
   into one reused buffer, then ``mgi_core.evaluation.metrics.top_k(scores, 10, seen)``:
   seen items excluded, partition-based selection of the 10 best, those 10 sorted (score
   descending, lower item index first on ties). Every user is ranked; the time is measured.
   ``top_k`` bounds each row's k-th score from below by the k-th largest of its block
   maxima, so only the few items at or above it are sorted instead of partitioning every
   row (the ``mgi_threshold`` path of earlier runs, now ``top_k`` itself).
2. ``duckdb``: one query per user over an in-memory DuckDB table ``items(item INTEGER, vec
   FLOAT[dim])`` with the core ``array_cosine_similarity`` (no extension), the user's seen
   items excluded, ``ORDER BY sim DESC, item LIMIT 10``. ``--sample`` users are timed and
   the time is extrapolated to all users (marked ``"extrapolated": true``).
3. ``numpy_loop``: one user at a time, ``V @ u``, seen items set to -inf,
   ``np.argpartition`` then a sort of the 10. Sampled and extrapolated likewise.

Printed per path: seconds (measured or extrapolated), users/s, CPU seconds (user + sys of
the worker over the timed span: the steadier figure on a shared machine), peak RSS of the
worker (``VmHWM`` from ``/proc/self/status``, ``ru_maxrss`` where that is missing) and the
RSS the data alone take; for MGI also the matmul and the selection seconds apart and the
achieved GFLOP/s of the matmul. Then the ratio of each peer's seconds to each MGI path's
(``ratio_<peer>_over_<mgi path>``: how many times faster MGI is) and whether the paths agree on the
sampled users' top-10 (same item sets; a difference counts as a tie, not a disagreement,
when every differing item's score is within ``TIE_TOLERANCE`` of the 10th score and the
two 10th scores agree to that tolerance).

Target (reported, never asserted; the exit status is 0 whatever the figures): MGI ranks
all users at 100k × 50k in under ``TARGET_SECONDS``. The numpy loop runs with
``--loop-threads`` BLAS threads (default one: on a busy machine two threads made each
matrix-vector product up to 10× slower); DuckDB with ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

K = 10
SEEN_PER_USER = 5
BATCH_BYTES = 256 * 2**20  # float32 scores of one batch (top_k's temporaries come on top)
TIE_TOLERANCE = 1e-5  # float32 cosines from different kernels agree to ~1e-7
TARGET_SECONDS = 60.0
DEFAULTS = {"users": 100_000, "items": 50_000, "dim": 384}
QUICK = {"users": 10_000, "items": 5_000, "dim": 384}
PATHS = ("mgi", "duckdb", "numpy_loop")
MGI_PATHS = ("mgi",)
RESULT_TAG = "BENCH-RESULT "
MIB = 1024 * 1024
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "amx_tile", "amx_bf16")


# -- machine and memory readings ------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``), Linux only."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_mib() -> float:
    kib = _proc_status_kib("VmHWM")
    if kib is None:  # ru_maxrss is KiB on Linux, bytes on macOS
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = ru // 1024 if sys.platform == "darwin" else ru
    return kib / 1024


def _rss_mib() -> float | None:
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib / 1024


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine() -> dict[str, Any]:
    """Cores, CPU model, the SIMD flags that matter for float32 matmul, load average."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("unknown", "", "x86_64"):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": model,
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


# -- data -----------------------------------------------------------------------------------
def make_data(n_users: int, n_items: int, dim: int, seed: int):
    """Seeded synthetic vectors and seen items.

    Returns:
        ``(users, items, seen)``: (n_users, dim) and (n_items, dim) float32 unit rows, and
        a (n_users, n_items) bool CSR array with up to ``SEEN_PER_USER`` distinct items
        per user (sorted column indices).
    """
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)  # (n_items, dim)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    users = rng.standard_normal((n_users, dim), dtype=np.float32)  # (n_users, dim)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    per_user = min(SEEN_PER_USER, max(0, n_items - K))  # always leave K candidates
    draws = np.sort(rng.integers(0, n_items, (n_users, per_user), dtype=np.int32), axis=1)
    keep = np.ones(draws.shape, dtype=bool)
    keep[:, 1:] = draws[:, 1:] != draws[:, :-1]  # drop repeats within a row
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
    indices = draws[keep]
    seen = sp.csr_array(
        (np.ones(indices.size, dtype=bool), indices, indptr), shape=(n_users, n_items)
    )
    return users, items, seen


def sample_users(n_users: int, n_sample: int, seed: int):
    """The users every path reports a top-10 for (sorted, distinct, seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    return np.sort(rng.choice(n_users, size=min(n_sample, n_users), replace=False))


def default_batch(n_items: int, budget_bytes: int = BATCH_BYTES) -> int:
    """Users per batch so that one float32 (batch, n_items) score array fits the budget."""
    return max(1, budget_bytes // (4 * max(1, n_items)))


# -- the three paths ------------------------------------------------------------------------
def rank_mgi(users, items, seen, batch: int) -> tuple[Any, dict]:
    """MGI's batched path: top-``K`` item indices for every user.

    Args:
        users: (n_users, dim) float32.
        items: (n_items, dim) float32.
        seen: (n_users, n_items) bool CSR.
        batch: users per batch.

    Returns:
        ``(top, timings)``: (n_users, K) int64 item indices, best first, and the seconds
        spent in the matmul and in the selection.
    """
    import numpy as np

    from mgi_core.evaluation.metrics import top_k

    n_users, n_items = users.shape[0], items.shape[0]
    top = np.empty((n_users, K), dtype=np.int64)
    buffer = np.empty((min(batch, n_users), n_items), dtype=np.float32)  # (batch, n_items)
    items_t = items.T  # (dim, n_items), a view
    matmul = selection = 0.0
    for start in range(0, n_users, batch):
        stop = min(start + batch, n_users)
        scores = buffer[: stop - start]
        t0 = time.perf_counter()
        np.matmul(users[start:stop], items_t, out=scores)
        t1 = time.perf_counter()
        top[start:stop] = top_k(scores, K, seen[start:stop])
        selection += time.perf_counter() - t1
        matmul += t1 - t0
    return top, {"matmul_seconds": matmul, "select_seconds": selection}


def rank_one_numpy(user_vec, items, seen_items) -> Any:
    """One user's top-``K`` with a matrix-vector product and ``argpartition``."""
    import numpy as np

    scores = items @ user_vec  # (n_items,)
    scores[seen_items] = -np.inf
    part = np.argpartition(scores, -K)[-K:]
    return part[np.lexsort((part, -scores[part]))]  # score descending, index ascending


def duckdb_connection(items, seen, threads: int):
    """In-memory DuckDB with ``items(item, vec FLOAT[dim])`` and ``seen(user_idx, item)``."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    dim = items.shape[1]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    items_arrow = pa.table({
        "item": pa.array(np.arange(items.shape[0], dtype=np.int32)),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(items.ravel()), dim),
    })
    seen_arrow = pa.table({
        "user_idx": pa.array(np.repeat(np.arange(seen.shape[0], dtype=np.int32),
                                       np.diff(seen.indptr))),
        "item": pa.array(seen.indices.astype(np.int32)),
    })
    con.register("items_arrow", items_arrow)
    con.register("seen_arrow", seen_arrow)
    con.execute(f"CREATE TABLE items AS SELECT item, vec::FLOAT[{dim}] AS vec FROM items_arrow")
    con.execute("CREATE TABLE seen AS SELECT user_idx, item FROM seen_arrow ORDER BY user_idx")
    con.unregister("items_arrow")
    con.unregister("seen_arrow")
    return con


def duckdb_query(dim: int) -> str:
    """One user's top-``K`` by ``array_cosine_similarity``, seen items excluded."""
    return (
        f"SELECT item, array_cosine_similarity(vec, ?::FLOAT[{dim}]) AS sim FROM items "
        "WHERE item NOT IN (SELECT item FROM seen WHERE user_idx = ?) "
        f"ORDER BY sim DESC, item LIMIT {K}"
    )


# -- workers --------------------------------------------------------------------------------
def _exact_scores(users, items, sample, tops) -> list[list[float]]:
    """float64 cosine of each sampled user with each item of its list (for the tie check)."""
    import numpy as np

    out = []
    for u, row in zip(sample, tops, strict=True):
        vecs = items[np.asarray(row)].astype(np.float64)
        out.append([float(x) for x in vecs @ users[u].astype(np.float64)])
    return out


def worker(path: str, n_users: int, n_items: int, dim: int, batch: int | None, n_sample: int,
           seed: int, threads: int) -> dict[str, Any]:
    """Run one path in this process and return its figures and sampled top-10 lists."""
    import numpy as np

    t_data = time.perf_counter()
    users, items, seen = make_data(n_users, n_items, dim, seed)
    sample = sample_users(n_users, n_sample, seed)
    result: dict[str, Any] = {
        "data_seconds": time.perf_counter() - t_data,
        "data_rss_mib": _rss_mib(),
    }
    if path in MGI_PATHS:
        batch = batch or default_batch(n_items)
        c0, t0 = _cpu_seconds(), time.perf_counter()
        top, parts = rank_mgi(users, items, seen, batch)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        flops = 2.0 * n_users * n_items * dim
        result.update(
            seconds=seconds, cpu_seconds=cpu, extrapolated=False, measured_users=n_users,
            batch=batch, n_batches=-(-n_users // batch),
            batch_scores_mib=batch * n_items * 4 / MIB,
            matmul_gflops=flops / parts["matmul_seconds"] / 1e9 if parts["matmul_seconds"]
            else None,
            **parts,
        )
        tops = top[sample]
    else:
        if path == "duckdb":
            t_setup = time.perf_counter()
            con = duckdb_connection(items, seen, threads)
            query = duckdb_query(dim)
            result["setup_seconds"] = time.perf_counter() - t_setup

            def rank_one(u: int) -> list[int]:
                rows = con.execute(query, [users[u].tolist(), int(u)]).fetchall()
                return [int(r[0]) for r in rows]
        elif path == "numpy_loop":
            def rank_one(u: int) -> list[int]:
                seen_u = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
                return [int(i) for i in rank_one_numpy(users[u], items, seen_u)]
        else:
            raise SystemExit(f"unknown path {path!r}; choose one of {', '.join(PATHS)}")
        rank_one(int(sample[0]))  # warm-up (query plan, caches), not timed
        c0, t0 = _cpu_seconds(), time.perf_counter()
        tops = [rank_one(int(u)) for u in sample]
        measured, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        per_user = measured / max(1, len(sample))
        result.update(
            seconds=per_user * n_users, cpu_seconds=cpu / max(1, len(sample)) * n_users,
            extrapolated=True, measured_users=len(sample), measured_seconds=measured,
        )
    tops = [[int(i) for i in row] for row in np.asarray(tops).reshape(len(sample), K)]
    result.update(
        users_per_s=n_users / result["seconds"] if result["seconds"] else None,
        peak_rss_mib=_peak_rss_mib(),
        sample=[int(u) for u in sample],
        top=tops,
        top_scores=_exact_scores(users, items, sample, tops),
    )
    return result


def run_worker(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a fresh interpreter for one path and read back its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", path,
           "--users", str(args.users), "--items", str(args.items), "--dim", str(args.dim),
           "--sample", str(args.sample), "--seed", str(args.seed),
           "--threads", str(args.threads)]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    env = dict(os.environ)
    if path == "numpy_loop":  # the BLAS reads its thread count at import
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.loop_threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise SystemExit(f"{path} worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


# -- comparison -----------------------------------------------------------------------------
def compare_lists(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Same item sets on the sampled users, ties within ``TIE_TOLERANCE`` aside."""
    same = ties = 0
    differ: list[int] = []
    for i, u in enumerate(a["sample"]):
        ta, tb = a["top"][i], b["top"][i]
        if set(ta) == set(tb):
            same += 1
            continue
        sa = dict(zip(ta, a["top_scores"][i], strict=True))
        sb = dict(zip(tb, b["top_scores"][i], strict=True))
        kth_a, kth_b = min(sa.values()), min(sb.values())
        odd = [sa[x] for x in set(ta) - set(tb)] + [sb[x] for x in set(tb) - set(ta)]
        if abs(kth_a - kth_b) <= TIE_TOLERANCE and all(
            min(abs(s - kth_a), abs(s - kth_b)) <= TIE_TOLERANCE for s in odd
        ):
            ties += 1
        else:
            differ.append(u)
    return {"users": len(a["sample"]), "same_sets": same, "tied": ties,
            "differ": len(differ), "differing_users": differ[:10], "agree": not differ}


def summarise(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The one JSON object: sizes, machine, per-path figures, ratios, agreement."""
    out: dict[str, Any] = {
        "users": args.users, "items": args.items, "dim": args.dim, "k": K,
        "seen_per_user": SEEN_PER_USER, "sample": args.sample, "seed": args.seed,
        "threads": args.threads, "loop_threads": args.loop_threads, "machine": machine(),
        "paths": {},
    }
    for name, r in results.items():
        out["paths"][name] = {key: v for key, v in r.items()
                              if key not in ("sample", "top", "top_scores")}
    out["target_seconds"] = TARGET_SECONDS
    for mgi_name in (m for m in MGI_PATHS if m in results):
        mgi = results[mgi_name]
        out[f"{mgi_name}_under_target"] = mgi["seconds"] < TARGET_SECONDS
        for name in (p for p in PATHS if p not in MGI_PATHS and p in results):
            out[f"ratio_{name}_over_{mgi_name}"] = results[name]["seconds"] / mgi["seconds"]
            out[f"cpu_ratio_{name}_over_{mgi_name}"] = (
                results[name]["cpu_seconds"] / mgi["cpu_seconds"]
                if mgi["cpu_seconds"] else None
            )
    names = [p for p in PATHS if p in results]
    out["agreement"] = {
        f"{a}_vs_{b}": compare_lists(results[a], results[b])
        for i, a in enumerate(names) for b in names[i + 1:]
    }
    out["agree"] = all(v["agree"] for v in out["agreement"].values())
    return out


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def print_text(s: dict[str, Any]) -> None:
    m = s["machine"]
    print(f"top-{s['k']} for {s['users']:,} users × {s['items']:,} items, d = {s['dim']}, "
          f"{s['seen_per_user']} seen items per user excluded")
    print(f"machine: {m['usable_cpus']} CPUs ({m['cpu_model']}), flags "
          f"{' '.join(m['cpu_flags']) or 'none'}, load average {m['loadavg']}")
    for name, r in s["paths"].items():
        how = (f"extrapolated from {r['measured_users']} users "
               f"({_fmt(r['measured_seconds'], '.2f')} s)" if r["extrapolated"] else "measured")
        print(f"  {name:<13} {_fmt(r['seconds']):>9} s ({how}), "
              f"{_fmt(r['users_per_s'], ',.0f')} users/s, "
              f"CPU {_fmt(r['cpu_seconds'])} s, peak RSS {_fmt(r['peak_rss_mib'], '.0f')} MiB "
              f"(data {_fmt(r['data_rss_mib'], '.0f')} MiB)")
        if name in MGI_PATHS:
            print(f"                batch {r['batch']} users ({_fmt(r['batch_scores_mib'], '.0f')}"
                  f" MiB of scores) × {r['n_batches']}; matmul {_fmt(r['matmul_seconds'])} s "
                  f"({_fmt(r['matmul_gflops'])} GFLOP/s), selection {_fmt(r['select_seconds'])} s")
    for mgi_name in MGI_PATHS:
        for name in PATHS:
            key = f"ratio_{name}_over_{mgi_name}"
            if key in s:
                print(f"  {name} / {mgi_name}: {s[key]:.1f}× the seconds "
                      f"({_fmt(s[f'cpu_ratio_{name}_over_{mgi_name}'])}× the CPU seconds)")
        if f"{mgi_name}_under_target" in s:
            print(f"  {mgi_name}: all users under {s['target_seconds']:.0f} s "
                  f"(the target at 100k × 50k) -> "
                  f"{'yes' if s[f'{mgi_name}_under_target'] else 'NO'}")
    for pair, a in s["agreement"].items():
        print(f"  {pair}: {a['same_sets']}/{a['users']} same sets, {a['tied']} tied, "
              f"{a['differ']} differ")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['users']:,} users × {QUICK['items']:,} items")
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--items", type=int, default=None)
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--batch", type=int, default=None,
                   help=f"users per batch (default: {BATCH_BYTES // MIB} MiB of float32 scores)")
    p.add_argument("--sample", type=int, default=200,
                   help="users timed for the per-user peers and compared across paths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="DuckDB threads (numpy uses its BLAS default)")
    p.add_argument("--loop-threads", type=int, default=1,
                   help="BLAS threads of the numpy loop (one: faster for one matrix-vector "
                   "product than two, whose start-up costs more than the product)")
    p.add_argument("--only", choices=PATHS, action="append", help="run only these paths")
    p.add_argument("--_worker", choices=PATHS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.users, args.items, args.dim, args.sample) < 1 or (args.batch or 1) < 1:
        p.error("--users, --items, --dim, --sample and --batch must be at least 1")
    if args.items <= K:
        p.error(f"--items must exceed {K}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._worker:
        result = worker(args._worker, args.users, args.items, args.dim, args.batch,
                        args.sample, args.seed, args.threads)
        print(RESULT_TAG + json.dumps(result))
        return 0
    results = {}
    for path in args.only or PATHS:
        if not args.json:
            print(f"running {path} ...", file=sys.stderr, flush=True)
        results[path] = run_worker(path, args)
    summary = summarise(results, args)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_text(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
