"""Benchmark MGI's review-embedding path against ``SentenceTransformer.encode``.

    python bench/encode.py [--json] [--n 512] [--threads T] [--rounds 3] [--batch-size 64]
                           [--model bundled|PATH] [--max-length 256] [--data PATH]
                           [--precision auto|fp32] [--no-fp32] [--chunk 128]

Same reviews (the first ``--n`` texts of ``--data``, default the shared Digital Music file),
same model (default the bundled all-MiniLM-L6-v2), same max length (256, as the embed job
uses), same torch threads, in the same process; batch sizes: MGI gets the embed job's 64
(``TrainConfig.embed_batch_size``, which its CPU path caps at 16), ST its default 32
(``--st-batch-size``):

- **MGI**: ``load_encoder(...).encode(texts, batch_size, path=encode_path_here("cpu"))``,
  what the embed job runs (``mgi_core.jobs.worker.run_job``): length buckets, and bf16
  autocast where the CPU computes in bf16 (``mgi_core.encoder.fast.choose_encode_path``).
- **MGI fp32** (unless ``--no-fp32``): the same with the path pinned to fp32 (the fallback
  on CPUs without bf16): shows what length buckets alone give.
- **ST**: ``SentenceTransformer(model).encode(texts, batch_size, normalize_embeddings=True)``
  in fp32, the reference for the cosines.

The contenders take turns ``--chunk`` reviews at a time (each call embeds that chunk, sorted
by length inside it; the order of turns alternates), after one warm-up pass each; a round
sums each contender's turns over all N reviews and the figure is the median over rounds.
Fine-grained turns matter on a shared machine whose load swings within a minute. Printed:
reviews/s of each, the ratio MGI / ST, ``min_cos`` and ``mean_cos`` of MGI's vectors against
ST's fp32 vectors (every review), the achieved FLOP/s of MGI's path (useful FLOPs, counted
on each review's real token count: 2 x params x tokens for the linear layers plus 4 x
tokens² x d per layer for attention) against the machine's peak fp32 FLOP/s (cores x max GHz
x FLOPs/cycle from the CPU flags), and the path used. Figures are reported, never asserted
(exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "amazon_digital_music.csv"


def load_texts(path: Path, n: int) -> list[str]:
    """The first ``n`` non-empty review texts of a CSV with a ``text`` column."""
    import pandas as pd

    df = pd.read_csv(path, usecols=["text"], nrows=max(n * 2, n + 100))
    texts = [t for t in df["text"].astype(str) if t.strip()]
    return texts[:n]


def flops_per_text(config, n_tokens: int) -> float:
    """Matmul FLOPs of one encoder forward over ``n_tokens`` real tokens (no padding)."""
    d, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = 2 * n_tokens * (4 * d * d + 2 * d * ffn)  # Q, K, V, output; FFN in and out
    attention = 2 * 2 * n_tokens * n_tokens * d  # scores QKᵀ and the weighted sum of V
    return float(layers * (linear + attention))


def cpu_peak() -> dict[str, float | int | str]:
    """The machine's peak fp32 FLOP/s: cores x max GHz x FLOPs per cycle per core."""
    from mgi_core.encoder.fast import read_cpu_flags

    flags = read_cpu_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mhz = 0.0
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.exists():
        mhz = int(max_freq.read_text()) / 1000
    else:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("cpu MHz"):
                    mhz = max(mhz, float(line.split(":")[1]))
        except OSError:
            pass
    # fp32 FLOPs per cycle per core with FMA: AVX-512 32 (as two 256-bit FMA pipes on AMD
    # Zen 4; Intel parts with two 512-bit FMA units reach 64), AVX2 16, SSE 8.
    if "avx512f" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX-512 + FMA"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 16, "AVX2 + FMA"
    else:
        per_cycle, isa = 8, "SSE"
    return {"cores": int(cores or 1), "ghz": round(mhz / 1000, 3), "flops_per_cycle": per_cycle,
            "isa": isa, "peak_flops": (cores or 1) * mhz * 1e6 * per_cycle,
            "bf16_flags": ",".join(sorted(f for f in flags if "bf16" in f or "amx" in f))}


def run(ns: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from mgi_core.encoder.fast import EncodePath, choose_encode_path, encode_path_here
    from mgi_core.encoder.model import load_encoder, resolve_model_source

    if ns.threads:
        torch.set_num_threads(ns.threads)
    texts = load_texts(Path(ns.data), ns.n)
    source = resolve_model_source(ns.model)
    mgi = load_encoder(source, ns.max_length, "cpu")
    if ns.precision == "fp32":
        path = choose_encode_path("cpu", (), precision="fp32")
    else:
        path = encode_path_here("cpu")
    st = SentenceTransformer(source, device="cpu")
    st.max_seq_length = mgi.max_length

    contenders = {
        "mgi": lambda t: mgi.encode(t, ns.batch_size, path=path),
        "st": lambda t: st.encode(t, batch_size=ns.st_batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False),
    }
    fp32 = EncodePath("cpu", None, max_batch=path.max_batch)
    if not ns.no_fp32 and path != fp32:
        contenders["mgi_fp32"] = lambda t: mgi.encode(t, ns.batch_size, path=fp32)
    for fn in contenders.values():  # warm-up: weights, kernels, allocator
        fn(texts[: min(16, len(texts))])
    seconds: dict[str, list[float]] = {k: [] for k in contenders}
    vectors: dict[str, np.ndarray] = {}
    names = list(contenders)
    chunk = ns.chunk or len(texts)
    turn = 0
    for _ in range(ns.rounds):
        spent = dict.fromkeys(names, 0.0)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            for name in names if turn % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                parts[name].append(contenders[name](part))
                spent[name] += time.perf_counter() - t0
            turn += 1
        for name in names:
            seconds[name].append(spent[name])
            vectors[name] = np.concatenate(parts[name])
    rate = {k: len(texts) / statistics.median(v) for k, v in seconds.items()}
    cos = np.sum(vectors["mgi"] * vectors["st"], axis=1) / (
        np.linalg.norm(vectors["mgi"], axis=1) * np.linalg.norm(vectors["st"], axis=1))
    lengths = [len(ids) for ids in mgi.tokenizer(texts, truncation=True,
                                                  max_length=mgi.max_length)["input_ids"]]
    flops = sum(flops_per_text(mgi.transformer.config, n) for n in lengths)
    peak = cpu_peak()
    achieved = flops * rate["mgi"] / len(texts)
    out = {
        "n": len(texts), "threads": torch.get_num_threads(),
        "batch_size": min(ns.batch_size, path.max_batch or ns.batch_size),
        "st_batch_size": ns.st_batch_size,
        "max_length": mgi.max_length, "model": ns.model, "path": path.describe(),
        "mean_tokens": float(np.mean(lengths)), "max_tokens": int(max(lengths)),
        "rounds": ns.rounds, "chunk": chunk,
        "mgi_reviews_per_s": round(rate["mgi"], 2), "st_reviews_per_s": round(rate["st"], 2),
        "ratio": round(rate["mgi"] / rate["st"], 3),
        "min_cos": float(cos.min()), "mean_cos": float(cos.mean()),
        "mgi_gflops": round(achieved / 1e9, 2),
        "st_gflops": round(flops * rate["st"] / len(texts) / 1e9, 2),
        "peak_fp32_gflops": round(peak["peak_flops"] / 1e9, 1),
        # avx512_bf16's dot product does two bf16 products per fp32 lane: twice the peak.
        "peak_bf16_gflops": round(2 * peak["peak_flops"] / 1e9, 1) if peak["bf16_flags"]
        else None,
        "mgi_fraction_of_fp32_peak": round(achieved / peak["peak_flops"], 3),
        "cpu": {k: v for k, v in peak.items() if k != "peak_flops"},
        "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
    }
    if "mgi_fp32" in rate:
        out["mgi_fp32_reviews_per_s"] = round(rate["mgi_fp32"], 2)
        out["fp32_ratio"] = round(rate["mgi_fp32"] / rate["st"], 3)
        c32 = np.sum(vectors["mgi_fp32"] * vectors["st"], axis=1)
        out["fp32_min_cos"] = float(c32.min())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--n", type=int, default=512, help="reviews to embed (the first N)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    ap.add_argument("--batch-size", type=int, default=64,
                    help="MGI's batch size (the embed job's; the path may cap it)")
    ap.add_argument("--st-batch-size", type=int, default=32,
                    help="SentenceTransformer.encode's batch size (its default: 32)")
    ap.add_argument("--chunk", type=int, default=128,
                    help="reviews per turn (0: all): the contenders take turns chunk by chunk, "
                         "so a shared machine's changing load falls on all of them alike")
    ap.add_argument("--max-length", type=int, default=256, help="tokens per review")
    ap.add_argument("--model", default="bundled", help="'bundled' (MiniLM) or a model folder")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="CSV with a 'text' column")
    ap.add_argument("--precision", choices=("auto", "fp32"), default="auto",
                    help="MGI's path: chosen from the CPU flags, or pinned to fp32")
    ap.add_argument("--no-fp32", action="store_true", help="skip the MGI fp32 contender")
    ns = ap.parse_args(argv)
    out = run(ns)
    if ns.json:
        print(json.dumps(out))
        return 0
    print(f"{out['n']} reviews (mean {out['mean_tokens']:.0f} tokens, max "
          f"{out['max_tokens']}), max length {out['max_length']}, batch MGI "
          f"{out['batch_size']} / ST {out['st_batch_size']}, "
          f"{out['threads']} threads, {out['rounds']} rounds of turns of {out['chunk']} (median)")
    print(f"MGI ({out['path']}): {out['mgi_reviews_per_s']:.1f} reviews/s")
    if "mgi_fp32_reviews_per_s" in out:
        print(f"MGI (fp32, same buckets): {out['mgi_fp32_reviews_per_s']:.1f} reviews/s"
              f" (ratio {out['fp32_ratio']:.2f}, min cos {out['fp32_min_cos']:.6f})")
    print(f"SentenceTransformer.encode (fp32): {out['st_reviews_per_s']:.1f} reviews/s")
    print(f"ratio MGI / ST: {out['ratio']:.2f}")
    print(f"cosine to fp32 ST: min {out['min_cos']:.6f}, mean {out['mean_cos']:.6f}")
    cpu = out["cpu"]
    print(f"achieved: MGI {out['mgi_gflops']:.1f} GFLOP/s, ST {out['st_gflops']:.1f} GFLOP/s; "
          f"peak fp32 {out['peak_fp32_gflops']:.1f} GFLOP/s = {cpu['cores']} cores x "
          f"{cpu['ghz']} GHz x {cpu['flops_per_cycle']} FLOP/cycle ({cpu['isa']}; bf16 flags: "
          f"{cpu['bf16_flags'] or 'none'}); MGI at {out['mgi_fraction_of_fp32_peak']:.1%}"
          + (f" (bf16 peak {out['peak_bf16_gflops']:.1f} GFLOP/s)"
             if out["peak_bf16_gflops"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
