"""The ranking table of README: NDCG@10 and Recall@10 with 95% CIs per scorer, plus the
paired test of the best MGI configuration against the base-encoder hybrid.

Reads the per-user metrics stored by `python -m mgi_core evaluate` (run it for the base
version and the fine-tuned version first), so every number here is from the same protocol.

    python bench/ranking_table.py --db PATH --dataset dm --finetuned v1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mgi_core.errors import MgiError
from mgi_core.evaluation.compare import compare, per_user_frame
from mgi_core.store import Store

ROWS = [  # (label, version placeholder, scorer)
    ("random", "base", "random"),
    ("popularity", "base", "popularity"),
    ("item-kNN", "base", "item_knn"),
    ("MF (implicit ALS)", "base", "mf"),
    ("base-encoder content", "base", "content"),
    ("base-encoder hybrid, untuned (content + kNN + 0.5 pop)", "base", "untuned_hybrid"),
    ("base-encoder hybrid (tuned on val)", "base", "content_hybrid"),
    ("base-encoder multi-granularity hybrid", "base", "mgi_hybrid"),
    ("fine-tuned content", "FT", "content"),
    ("fine-tuned content, last liked review", "FT", "content_last"),
    ("fine-tuned multi-granularity fusion (content levels only)", "FT", "mg_fusion"),
    ("fine-tuned hybrid (content + kNN + pop)", "FT", "content_hybrid"),
    ("MGI: fine-tuned multi-granularity hybrid", "FT", "mgi_hybrid"),
]


def mean_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    boots = rng.choice(x, size=(n_boot, len(x)), replace=True).mean(axis=1)
    return float(x.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--finetuned", required=True, help="Fine-tuned version id, e.g. v1.")
    parser.add_argument("--best", default="mgi_hybrid", help="Scorer of the best MGI row.")
    args = parser.parse_args()
    store = Store(args.db, read_only=True)
    print("| scorer | NDCG@10 [95% CI] | Recall@10 [95% CI] | users |")
    print("|---|---|---|---|")
    for label, version, scorer in ROWS:
        version = args.finetuned if version == "FT" else version
        try:
            frame = per_user_frame(store, args.dataset, version, scorer)
        except MgiError as exc:  # a scorer not evaluated yet is reported, not fatal
            print(f"| {label} | not evaluated ({exc}) | | |")
            continue
        cells = []
        for metric in ("ndcg@10", "recall@10"):
            m, lo, hi = mean_ci(frame[metric].to_numpy())
            cells.append(f"{m:.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"| {label} (`{version}:{scorer}`) | {cells[0]} | {cells[1]} | {len(frame)} |")
    report = compare(store, "base:content_hybrid", f"{args.finetuned}:{args.best}", args.dataset)
    print()
    print(f"Paired: {report.b} − {report.a}")
    print(report.to_frame()[["diff", "ci_low", "ci_high", "p_value"]].round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
