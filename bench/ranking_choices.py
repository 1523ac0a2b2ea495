"""The two ranking choices made on the validation split, measured on it alone.

1. MF hyper-parameters: implicit ALS over a grid, NDCG@10 of the validation items (mean of
   two seeds). The default of ``fit_mf`` is the best cell.
2. Fusion fit: listwise softmax against the earlier pairwise logistic model, 5-fold
   cross-validation over validation users (weights fitted on four folds, NDCG@10 of the
   held-out item among all the fifth fold's candidates).

Nothing here reads the test split.

    python bench/ranking_choices.py --db PATH --dataset dm --versions base v2
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mgi_core.evaluation.metrics import metrics_from_ranks, target_ranks
from mgi_core.ranking.features import fit_mf
from mgi_core.ranking.fusion import METHODS, SCORERS, fit_weights, validation_design
from mgi_core.ranking.model import load_ranking_context
from mgi_core.store import Store

FUSED = ("content_hybrid", "mg_fusion", "mgi_hybrid")


def val_ndcg(scores: np.ndarray, items: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    return metrics_from_ranks(target_ranks(scores, items, exclude), 10)["ndcg@10"]


def mf_grid(ctx, seeds=(0, 1)) -> list[tuple[float, int, float, float]]:
    inter = ctx.inter
    targets = inter.targets["val"]
    users, items = targets["u"].to_numpy(), targets["i"].to_numpy()
    exclude = inter.train[users].toarray() > 0
    rows = []
    for factors, reg, alpha in itertools.product((16, 32, 64), (0.05, 0.5, 5.0), (2.0, 20.0)):
        score = np.mean([
            val_ndcg(uf[users] @ itf.T, items, exclude).mean()
            for uf, itf in (fit_mf(inter.train, factors, reg, alpha, seed) for seed in seeds)
        ])
        rows.append((float(score), factors, reg, alpha))
    return sorted(rows, reverse=True)


def fusion_cv(ctx, scorer: str, folds: int = 5, seed: int = 0) -> dict[str, float]:
    design = validation_design(ctx, SCORERS[scorer].features)
    z, valid = design.z[design.usable], design.valid[design.usable]
    fold = np.random.default_rng(seed).permutation(len(z)) % folds
    out = {}
    for method in METHODS:
        ndcg = np.zeros(len(z))
        for k in range(folds):
            w = fit_weights(z[fold != k], valid[fold != k], method, seed=seed)
            s = np.where(valid[fold == k], z[fold == k] @ w, -np.inf)
            rank = (s[:, 1:] > s[:, :1]).sum(axis=1)  # column 0 is the held-out item
            ndcg[fold == k] = metrics_from_ranks(rank, 10)["ndcg@10"]
        out[method] = float(ndcg.mean())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--versions", nargs="+", default=["base"])
    args = parser.parse_args()
    store = Store(args.db, read_only=True)
    ctx = load_ranking_context(store, args.dataset, args.versions[0])
    print("MF (implicit ALS), validation NDCG@10, best first")
    print("| NDCG@10 | factors | regularization | alpha |")
    print("|---|---|---|---|")
    for score, factors, reg, alpha in mf_grid(ctx)[:6]:
        print(f"| {score:.4f} | {factors} | {reg:g} | {alpha:g} |")
    print()
    print("Fusion fit, 5-fold CV over validation users, NDCG@10")
    print("| version | scorer | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for version in args.versions:
        ctx = load_ranking_context(store, args.dataset, version)
        for scorer in FUSED:
            cv = fusion_cv(ctx, scorer)
            print(f"| {version} | {scorer} | " + " | ".join(f"{cv[m]:.4f}" for m in METHODS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
