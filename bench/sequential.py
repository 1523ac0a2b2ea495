"""Sequential baselines from Cornac (SASRec, GRU4Rec) under MGI's evaluation protocol.

    python bench/sequential.py --db PATH --dataset NAME [--models sasrec,gru4rec]
        [--variants train,train+val] [--against base:mgi_hybrid,base:content_hybrid]
        [--grid small|tiny] [--seed 0] [--json]

What practitioners would use instead of MGI for "what will this user review next": a
sequence model from a maintained recommender package. This script runs Cornac's SASRec and
GRU4Rec (``pip install -r bench/requirements.txt``; Cornac is not an MGI dependency and is
imported only when a model is trained) on the split MGI stored, and ranks exactly as
``mgi_core.evaluation.protocol.evaluate`` does:

* Data: the store (opened read-only) through ``mgi_core.ranking.interactions
  .load_interactions``, so users, items and their indices are MGI's. Each user's ``train``
  reviews, in MGI's order (timestamp, no timestamp first, then the row in the file), form
  one training sequence; users with fewer than 3 reviews have only train reviews and train
  too. Nothing of ``val`` or ``test`` is trained on.
* Model selection: every configuration of the grid (``GRIDS``) is trained on the train
  sequences and scored on ``val``: history = the user's train sequence, target = the val
  item. The configuration with the best mean val NDCG@10 is kept (then Recall@10, then
  grid order). The test split is never looked at to choose.
* Test: the chosen model (trained on train only, as MGI's scorers are) ranks each user's
  test item, with one of two input histories:
  - ``train``: the train sequence only: the same information MGI's scorers see;
  - ``train+val``: the train sequence followed by the val item, the usual protocol of
    sequential recommenders (SASRec, RecBole). The val item is not the test item, and a
    next-item model that does not see the latest known interaction is handicapped; but MGI's
    scorers do not use it, so this variant knows one review more per user than MGI.
* Ranking: every item is scored; the user's train items are excluded (not the val item,
  as in MGI), and ``target_ranks`` / ``metrics_from_ranks`` (MGI's own functions, same tie
  rule) give the per-user NDCG@10, Recall@10, NDCG@20, Recall@20, HitRate and MRR. Means
  come with a 95% percentile-bootstrap CI over users.
* ``--against version:scorer``: the stored per-user test metrics of an MGI system (run
  ``python -m mgi_core evaluate`` on the same store first) are paired with the sequence
  model's on the same users (``compare_paired``: mean Δ = sequence − MGI, bootstrap CI,
  Wilcoxon signed-rank p). Nothing is written to the store.

Numbers depend on the seed (one training run per configuration); the printed Cornac and
torch versions say what produced them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mgi_core.evaluation.compare import per_user_frame  # noqa: E402
from mgi_core.evaluation.metrics import metrics_from_ranks, target_ranks  # noqa: E402
from mgi_core.evaluation.stats import compare_paired, paired_bootstrap_ci  # noqa: E402
from mgi_core.ranking.interactions import Interactions, load_interactions  # noqa: E402
from mgi_core.systems import parse_spec  # noqa: E402

KS = (10, 20)  # as mgi_core.evaluation.protocol
HEADLINE = ("ndcg@10", "recall@10")
VARIANTS = ("train", "train+val")
MODELS = ("sasrec", "gru4rec")

# Configuration grids, chosen on val. Fixed: Cornac's defaults scaled to small review data
# (thousands of reviews, a few per user, a few hundred items): smaller batches so an epoch
# has more than a handful of steps, fewer shared negatives than the catalogue is large,
# SASRec's history cut at 20 (the 99th percentile of train sequences in the Digital Music
# sample is 18) and a 64-wide embedding. Varied: the epochs and the dropout, what matters
# most on so little data. 4 configurations per model keep a CPU run under an hour on two
# busy cores; "tiny" is for a smoke run.
_SASREC = {"embedding_dim": 64, "max_len": 20, "num_blocks": 2, "num_heads": 1,
           "batch_size": 128, "learning_rate": 1e-3, "loss": "ce", "n_sample": 512}
_GRU4REC = {"layers": [100], "loss": "cross-entropy", "batch_size": 64, "n_sample": 512,
            "learning_rate": 0.05}
GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "small": {
        "sasrec": [
            {**_SASREC, "n_epochs": 10, "dropout": 0.2},
            {**_SASREC, "n_epochs": 10, "dropout": 0.5},
            {**_SASREC, "n_epochs": 30, "dropout": 0.2},
            {**_SASREC, "n_epochs": 30, "dropout": 0.5},
        ],
        "gru4rec": [
            {**_GRU4REC, "n_epochs": 10, "dropout_p_hidden": 0.0},
            {**_GRU4REC, "n_epochs": 10, "dropout_p_hidden": 0.3},
            {**_GRU4REC, "n_epochs": 30, "dropout_p_hidden": 0.0},
            {**_GRU4REC, "n_epochs": 30, "dropout_p_hidden": 0.3},
        ],
    },
    "tiny": {
        "sasrec": [{**_SASREC, "n_epochs": 2, "dropout": 0.2}],
        "gru4rec": [{**_GRU4REC, "n_epochs": 2, "dropout_p_hidden": 0.0}],
    },
}

# history -> (n_items,) scores of every item; the user index is MGI's
ScoreFn = Callable[[int, Sequence[int]], np.ndarray]


# -- data: sequences and histories from MGI's split -------------------------------------------
def train_sequences(inter: Interactions) -> list[np.ndarray]:
    """Each user's train items in MGI's order (``load_interactions`` keeps the store's order:
    timestamp, no timestamp first, then the row in the file), indexed by MGI's user index."""
    reviews = inter.train_reviews  # (n_train,) rows, each user's in time order
    seqs = [np.empty(0, dtype=np.int64) for _ in range(inter.n_users)]
    for u, items in reviews.groupby("u", sort=False)["i"]:
        seqs[int(u)] = items.to_numpy(dtype=np.int64)
    return seqs


def targets(inter: Interactions, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the held-out ``split`` reviews, in MGI's target order."""
    frame = inter.targets[split]
    return frame["u"].to_numpy(dtype=np.int64), frame["i"].to_numpy(dtype=np.int64)


def histories(inter: Interactions, seqs: list[np.ndarray], split: str,
              variant: str = "train") -> list[np.ndarray]:
    """The input sequence of each ``split`` target user (same order as ``targets``).

    ``val`` always gets the train sequence. ``test`` gets the train sequence (``train``) or
    the train sequence followed by the user's val item (``train+val``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    users, _ = targets(inter, split)
    if split == "val" or variant == "train":
        return [seqs[u] for u in users]
    val = dict(zip(*targets(inter, "val"), strict=True))  # user -> val item
    return [np.append(seqs[u], val[u]) for u in users]


def usit_rows(seqs: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """Cornac USIT rows (user, session, item, time): one session per user, its train
    sequence, time = position in it (MGI's order; timestamps can be missing)."""
    return [(u, u, int(i), t) for u, seq in enumerate(seqs) for t, i in enumerate(seq)]


# -- ranking and metrics with MGI's functions ---------------------------------------------------
def rank_targets(score: ScoreFn, inter: Interactions, split: str,
                 hist: list[np.ndarray], batch_users: int = 1024) -> np.ndarray:
    """0-based rank of each ``split`` target among the items not in the user's train, with
    ``target_ranks`` (MGI's tie rule); ``batch_users`` users' scores in memory at a time."""
    users, items = targets(inter, split)
    ranks = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), batch_users):
        stop = min(start + batch_users, len(users))
        scores = np.empty((stop - start, inter.n_items), dtype=np.float64)  # (batch, n_items)
        for row in range(start, stop):
            s = np.asarray(score(int(users[row]), hist[row]), dtype=np.float64).ravel()
            if s.shape != (inter.n_items,):
                raise ValueError(f"score returned shape {s.shape}, expected "
                                 f"({inter.n_items},)")
            scores[row - start] = s
        exclude = inter.train[users[start:stop]]  # (batch, n_items) sparse: seen in train
        ranks[start:stop] = target_ranks(scores, items[start:stop], exclude)
    return ranks


def per_user_metrics(inter: Interactions, split: str, ranks: np.ndarray) -> pd.DataFrame:
    """Per-user metrics indexed by user_id, the columns MGI stores."""
    users, _ = targets(inter, split)
    per_user: dict[str, np.ndarray] = {}
    for k in KS:
        per_user.update(metrics_from_ranks(ranks, k))
    return pd.DataFrame(per_user, index=pd.Index(inter.users[users], name="user_id"))


def mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean with a 95% percentile-bootstrap CI over users: ``paired_bootstrap_ci`` against
    zeros, the same resampling as MGI's comparisons."""
    values = np.asarray(values, dtype=np.float64)
    return paired_bootstrap_ci(np.zeros_like(values), values, n_boot=n_boot, seed=seed)


def summarise(frame: pd.DataFrame, metrics: Sequence[str] = HEADLINE) -> dict[str, dict]:
    out = {}
    for m in metrics:
        mean, low, high = mean_ci(frame[m].to_numpy())
        out[m] = {"mean": mean, "ci_low": low, "ci_high": high}
    return out


def pair_against(store, dataset: str, spec: str, frame: pd.DataFrame,
                 metrics: Sequence[str] = HEADLINE) -> dict[str, dict]:
    """Paired test results of the sequence model (B) against the stored MGI system ``spec``
    (A, 'version:scorer') on their common users."""
    version, scorer = parse_spec(spec)
    stored = per_user_frame(store, dataset, version, scorer, "test")
    return {r.metric: asdict(r) for r in compare_paired(stored, frame, list(metrics))}


# -- Cornac models (imported only here) ---------------------------------------------------------
def fit_cornac(model_name: str, params: dict[str, Any], seqs: list[np.ndarray], n_items: int,
               seed: int = 0, device: str = "cpu") -> ScoreFn:
    """Train Cornac's ``model_name`` on the train sequences; a score function over MGI's
    item indices."""
    from cornac.data import SequentialDataset
    from cornac.models import GRU4Rec, SASRec

    # Cornac maps ids to indices in order of appearance; seeding the item map with every
    # MGI item index makes Cornac's item index MGI's, including items never in train.
    iid_map = OrderedDict((i, i) for i in range(n_items))
    train_set = SequentialDataset.build(usit_rows(seqs), fmt="USIT", global_iid_map=iid_map,
                                        seed=seed)
    if list(train_set.iid_map.values()) != list(range(n_items)):
        raise RuntimeError("Cornac's item indices differ from MGI's")
    cls = {"sasrec": SASRec, "gru4rec": GRU4Rec}[model_name]
    model = cls(**params, device=device, seed=seed)
    model.fit(train_set)
    uid_map = train_set.uid_map

    def score(u: int, history: Sequence[int]) -> np.ndarray:
        return model.score(uid_map.get(u, 0), [int(i) for i in history])

    return score


def library_versions() -> dict[str, str]:
    import cornac
    import torch

    return {"cornac": cornac.__version__, "torch": torch.__version__}


# -- the run --------------------------------------------------------------------------------
@dataclass
class Trial:
    params: dict[str, Any]
    val: dict[str, float]  # mean val metrics
    seconds: float


def select_on_val(model_name: str, grid: list[dict[str, Any]], inter: Interactions,
                  seqs: list[np.ndarray], seed: int, device: str,
                  fit: Callable[..., ScoreFn] = fit_cornac,
                  ) -> tuple[list[Trial], Trial, ScoreFn]:
    """Train every configuration and score val: the trials, the chosen one and its score
    function (best val NDCG@10, then Recall@10; the earlier configuration on a tie)."""
    val_hist = histories(inter, seqs, "val")
    trials: list[Trial] = []
    best: tuple[tuple[float, float], Trial, ScoreFn] | None = None
    for params in grid:
        started = time.monotonic()
        score = fit(model_name, params, seqs, inter.n_items, seed=seed, device=device)
        frame = per_user_metrics(inter, "val", rank_targets(score, inter, "val", val_hist))
        trial = Trial(params, {m: float(frame[m].mean()) for m in HEADLINE},
                      time.monotonic() - started)
        trials.append(trial)
        _note(f"{model_name} {params}: val NDCG@10 {trial.val['ndcg@10']:.4f} "
              f"Recall@10 {trial.val['recall@10']:.4f} ({trial.seconds:.0f} s)")
        key = (trial.val["ndcg@10"], trial.val["recall@10"])
        if best is None or key > best[0]:  # strictly better: earlier configs win ties
            best = (key, trial, score)
    if best is None:
        raise ValueError(f"the grid of {model_name} is empty")
    return trials, best[1], best[2]


def run(store, dataset: str, models: Sequence[str], variants: Sequence[str],
        against: Sequence[str], grid: Mapping[str, Sequence[dict[str, Any]]], seed: int = 0,
        device: str = "cpu", fit: Callable[..., ScoreFn] = fit_cornac) -> dict[str, Any]:
    """Select each model on val over ``grid[model]``, rank test with each history variant,
    pair with the stored MGI systems ``against``. ``fit(model, params, seqs, n_items, seed=,
    device=)`` trains one configuration (``fit_cornac``; tests pass a stand-in)."""
    inter = load_interactions(store, dataset)
    seqs = train_sequences(inter)
    result: dict[str, Any] = {
        "dataset": dataset, "n_users": inter.n_users, "n_items": inter.n_items,
        "n_train_reviews": int(inter.train.nnz), "n_val_users": len(inter.targets["val"]),
        "n_test_users": len(inter.targets["test"]), "seed": seed, "models": {},
    }
    for name in models:
        trials, best, score = select_on_val(name, grid[name], inter, seqs, seed, device, fit)
        out: dict[str, Any] = {"trials": [asdict(t) for t in trials], "chosen": best.params,
                               "test": {}, "paired": {}}
        for variant in variants:
            hist = histories(inter, seqs, "test", variant)
            frame = per_user_metrics(inter, "test", rank_targets(score, inter, "test", hist))
            out["test"][variant] = summarise(frame)
            out["paired"][variant] = {
                spec: pair_against(store, dataset, spec, frame) for spec in against
            }
        result["models"][name] = out
    return result


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.4f} [{stat['ci_low']:.4f}, {stat['ci_high']:.4f}]"


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['dataset']}: {result['n_users']:,} users, {result['n_items']:,} items, "
        f"{result['n_train_reviews']:,} train reviews; {result['n_val_users']:,} val and "
        f"{result['n_test_users']:,} test users; grid {result.get('grid')}, seed {result['seed']}"
        + (f"; {result['versions']}" if "versions" in result else ""),
    ]
    for name, out in result["models"].items():
        lines.append(f"\n{name}: chosen on val {out['chosen']}")
        for t in out["trials"]:
            lines.append(f"  val NDCG@10 {t['val']['ndcg@10']:.4f} Recall@10 "
                         f"{t['val']['recall@10']:.4f}  {t['params']}")
        for variant, stats in out["test"].items():
            lines.append(f"  test, history={variant}: NDCG@10 {_fmt(stats['ndcg@10'])}  "
                         f"Recall@10 {_fmt(stats['recall@10'])}")
            for spec, paired in out["paired"][variant].items():
                for metric, r in paired.items():
                    lines.append(
                        f"    vs {spec} {metric}: {r['mean_b']:.4f} vs {r['mean_a']:.4f}, "
                        f"Δ {r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}], "
                        f"Wilcoxon p {r['p_value']:.2g}, {r['n_users']:,} users")
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="MGI DuckDB store (opened read-only).")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated: "
                        f"{', '.join(MODELS)}.")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="Test input histories, comma-separated: train, train+val.")
    parser.add_argument("--against", default="", help="Stored MGI systems to pair with, "
                        "comma-separated version:scorer (e.g. base:mgi_hybrid).")
    parser.add_argument("--grid", default="small", choices=tuple(GRIDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    models, variants = _csv(args.models), _csv(args.variants)
    for value, allowed in ((models, MODELS), (variants, VARIANTS)):
        if not value or set(value) - set(allowed):
            parser.error(f"choose from {', '.join(allowed)}; got {', '.join(value)}")

    from mgi_core.store import Store

    store = Store(args.db, read_only=True)
    try:
        result = run(store, args.dataset, models, variants, _csv(args.against),
                     GRIDS[args.grid], args.seed, args.device)
    finally:
        store.close()
    result["grid"] = args.grid
    result["versions"] = library_versions()
    print(json.dumps(result, indent=2, default=str) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
