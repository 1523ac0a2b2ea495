"""Measure the distributed engines against the one-process paths they scale out.

    python bench/scaling.py embed [--n 2000] [--actors 2] [--model bundled|PATH] [--json]
    python bench/scaling.py train [--processes 1 2] [--reviews 512] [--model bundled|PATH]
                                  [--json]

- **embed**: the same ``--n`` reviews of the shared Digital Music file, the same model and
  length (256 tokens, as the embed job), embedded by the local path
  (``Encoder.encode`` with ``encode_path_here``: what ``embed`` runs) and by Ray Data
  (``mgi_core.encoder.ray_embed.embed_with_ray`` on a local Ray cluster with ``--actors``
  actors, each one encoder). Printed: reviews/s of each, the ratio Ray / local, Ray's fixed
  cost (starting the cluster, loading the encoder in each actor: the wall time of a run on
  ``--actors`` reviews) and the largest difference between the two sets of vectors.
- **train**: ``python -m mgi_core train`` on the bundled demo data (``--reviews`` training
  reviews, one epoch, the default LoRA config) in one process, and under
  ``torchrun --nproc_per_node N`` for each other ``--processes`` value. Printed: training
  samples/s (what ``fine_tune`` reports: all processes together), the wall time of the
  command, the ratio to one process and the validation objective of each.

Figures are reported, never asserted (exit status 0). On a machine with C cores, N
processes get C/N threads each (torchrun sets OMP_NUM_THREADS=1; this script gives each
C // N): data parallelism pays where each process has its own accelerator or its own cores
that one process cannot use well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "amazon_digital_music.csv"


def _texts(n: int) -> pd.DataFrame:
    """The first ``n`` reviews of the shared file with text, as a snapshot the engines read."""
    frame = pd.read_csv(SHARED, nrows=max(n * 2, 100), usecols=["item_id", "text"])
    frame = frame[frame["text"].fillna("").astype(str).str.strip() != ""].head(n)
    return pd.DataFrame({
        "review_id": np.arange(1, len(frame) + 1, dtype=np.int64),
        "item_id": frame["item_id"].astype(str).to_numpy(),
        "split": "train", "text": frame["text"].astype(str).to_numpy(),
    })


def bench_embed(n: int, actors: int, model: str) -> dict:
    import ray

    from mgi_core.data import lake
    from mgi_core.encoder.fast import encode_path_here
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.ray_embed import embed_with_ray

    snapshot = _texts(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.parquet"
        snapshot.to_parquet(path)
        encoder = load_encoder(model, 256, "cpu")
        route = encode_path_here("cpu")
        started = time.perf_counter()
        local = encoder.encode(snapshot["text"].tolist(), 64, path=route)
        local_s = time.perf_counter() - started

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - started
        try:
            small = Path(tmp) / "small.parquet"
            snapshot.head(actors).to_parquet(small)
            started = time.perf_counter()
            embed_with_ray(str(small), str(Path(tmp) / "small_out"), model=model,
                           max_seq_length=256, batch_size=64, actors=actors)
            fixed_s = time.perf_counter() - started
            started = time.perf_counter()
            result = embed_with_ray(str(path), str(Path(tmp) / "out"), model=model,
                                    max_seq_length=256, batch_size=64, actors=actors)
            ray_s = time.perf_counter() - started
        finally:
            ray.shutdown()
        ids, vecs = [], []
        for batch in lake.iter_batches(str(Path(tmp) / "out"), ["review_id", "embedding"]):
            ids.append(batch.column("review_id").to_numpy())
            emb = batch.column("embedding")
            vecs.append(emb.values.to_numpy(zero_copy_only=False).reshape(len(emb), -1))
        order = np.argsort(np.concatenate(ids))
        remote = np.concatenate(vecs)[order]
    return {
        "reviews": len(snapshot), "actors": actors, "model": model, "path": route.describe(),
        "local_reviews_per_s": len(snapshot) / local_s,
        "ray_reviews_per_s": len(snapshot) / ray_s, "ratio_ray_local": local_s / ray_s,
        "ray_cluster_start_s": init_s, "ray_fixed_cost_s": fixed_s,
        "ray_device": result.device,
        "max_abs_diff": float(np.abs(remote - local).max()),
    }


def _train_once(processes: int, reviews: int, model: str, tmp: Path) -> dict:
    folder = tmp / f"p{processes}"
    folder.mkdir()
    db = folder / "mgi.duckdb"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    subprocess.run([sys.executable, "-m", "mgi_core", "load-demo", "--db", str(db)],
                   check=True, capture_output=True, cwd=ROOT, env=env)
    threads = max(1, (os.cpu_count() or 1) // processes)
    env["OMP_NUM_THREADS"] = str(threads)
    args = ["-m", "mgi_core", "train", "--db", str(db), "--dataset", "demo", "--base-model",
            model, "--max-train-reviews", str(reviews), "--epochs", "1", "--json"]
    cmd = [sys.executable, *args] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", *args]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{out.stderr[-3000:]}")
    info = json.loads(out.stdout)
    return {"processes": processes, "threads_each": threads,
            "samples_per_s": info["metrics"]["samples_per_s"], "wall_s": wall,
            "val_objective": info["metrics"]["objective"], "device": info["device"]}


def bench_train(processes: list[int], reviews: int, model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_train_once(p, reviews, model, Path(tmp)) for p in processes]
    base = next((r for r in runs if r["processes"] == 1), runs[0])
    for r in runs:
        r["ratio_to_one"] = r["samples_per_s"] / base["samples_per_s"]
    return {"reviews": reviews, "model": model, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    embed = sub.add_parser("embed")
    embed.add_argument("--n", type=int, default=2000)
    embed.add_argument("--actors", type=int, default=os.cpu_count() or 1)
    train = sub.add_parser("train")
    train.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    train.add_argument("--reviews", type=int, default=512)
    for p in (embed, train):
        p.add_argument("--model", default="bundled:all-MiniLM-L6-v2")
        p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "embed":
        out = bench_embed(args.n, args.actors, args.model)
    else:
        out = bench_train(args.processes, args.reviews, args.model)
    if args.json:
        print(json.dumps(out, indent=2))
    elif args.what == "embed":
        print(f"{out['reviews']} reviews, {out['path']}: local {out['local_reviews_per_s']:.1f}"
              f" reviews/s, Ray ({out['actors']} actors) {out['ray_reviews_per_s']:.1f} "
              f"reviews/s, ratio Ray/local {out['ratio_ray_local']:.2f}; cluster start "
              f"{out['ray_cluster_start_s']:.1f} s, fixed cost per run "
              f"{out['ray_fixed_cost_s']:.1f} s; max |Δ| {out['max_abs_diff']:.1e}")
    else:
        for r in out["runs"]:
            print(f"{r['processes']} process(es) × {r['threads_each']} thread(s): "
                  f"{r['samples_per_s']:.1f} samples/s ({r['ratio_to_one']:.2f}× one), "
                  f"wall {r['wall_s']:.0f} s, val objective {r['val_objective']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
