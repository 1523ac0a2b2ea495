"""What each training option is worth: the ablation of the fine-tune.

Every variant is the same fine-tune on the same budget (one base ``TrainConfig``: the data
cap, epochs, lengths, seed) with one option switched (``VARIANTS``): AdaLoRA, adversarial
training (FGM, PGD), augmentation, automatic task weighting, and ``pretrained``, no
fine-tuning at all (the pre-trained encoder's ``base`` embeddings: the strongest system
without fine-tuning). Each variant's version is evaluated by the same protocol with the full
system (``mgi_hybrid``, its fusion learned on validation as ``evaluate`` does) and compared
with the ``reference`` variant (the budget's own config) per user, paired: Δ = variant −
reference, its bootstrap 95% CI and the Wilcoxon p-value (``mgi_core.evaluation.compare``),
on the ranking metrics and next-interest read from the list (``ABLATION_METRICS``). Beside
them each variant carries the fine-tune's own validation objective (``Σ λ_k · val_loss_k``
with the fixed λ, lower is better) and headline validation metrics.

An ablation has a name; its variants' versions are recorded in ``training_ablations`` as
soon as each is ready, so a run that stops resumes where it stopped and a second run of
the same name trains nothing. ``run_training_ablation`` trains (through a job runner the
caller gives: the CLI runs each job inline, like ``train``), evaluates and compares;
``load_training_ablation`` reads what is stored and never trains.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from mgi_core.config import PRETRAINED, REFERENCE, TRAINING_VARIANTS, TrainConfig
from mgi_core.errors import ConfigError, MgiError, ModelVersionNotFound
from mgi_core.evaluation.ablation import ABLATION_METRICS, metric_frame
from mgi_core.evaluation.compare import compare, format_p, metric_verdict, per_user_frame
from mgi_core.evaluation.protocol import evaluate
from mgi_core.ranking.fusion import FULL_SCORER
from mgi_core.store import Store
from mgi_core.store.embeddings import embedded_datasets
from mgi_core.store.evaluations import is_evaluated
from mgi_core.store.training_ablations import ablation_names, ablation_variants, record_variant
from mgi_core.store.versions import BASE_VERSION, get_version

log = logging.getLogger(__name__)

# The fine-tune's validation numbers each variant carries (from its version's metrics).
VAL_METRICS = ("objective", "overall/auc", "category/macro_f1", "subcategory/macro_f1",
               "match/recall@10")


# In table order; the reference first (defined with the config, so that tools without
# DuckDB, such as bench/strategies.py, share them).
VARIANTS = TRAINING_VARIANTS

# Runs one job to the end and returns the ready version it made: (kind 'train' or 'embed',
# config, what it is for) → version. The CLI's runs the job inline, like ``train``/``embed``.
JobRunner = Callable[[str, TrainConfig, str], str]


def default_name(dataset: str) -> str:
    """The ablation's name when none is given."""
    return f"training-{dataset}"


def choose_variants(names: Sequence[str] | None = None) -> list[str]:
    """The variants to run, in ``VARIANTS`` order, the reference always among them.

    Raises:
        ConfigError: a name that is not a variant (the message lists them).
    """
    if names is None:
        return list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"Unknown training variant(s) {unknown}; choose from "
                          f"{list(VARIANTS)} (the reference is always included).")
    asked = {REFERENCE, *names}
    return [n for n in VARIANTS if n in asked]


def variant_config(base: TrainConfig, variant: str) -> TrainConfig:
    """The budget's config with ``variant``'s fields set."""
    return dataclasses.replace(base, **dict(VARIANTS[variant].overrides))


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _config_conflicts(stored: Mapping[str, Any] | None, wanted: TrainConfig) -> list[str]:
    """'field: stored → wanted' for the fields a stored version's config differs in (fields
    a newer MGI added, absent from the stored config, do not count)."""
    stored = stored or {}
    out = []
    for key, value in _as_json(wanted.to_dict()).items():
        if key in stored and stored[key] != value:
            out.append(f"{key}: {stored[key]!r} → {value!r}")
    return out


@dataclass
class VariantSummary:
    """One variant's version, its full system's means and its fine-tune's validation."""

    variant: str
    changes: str
    version: str
    overrides: dict[str, Any]
    means: dict[str, float]  # metric → mean over the split's users (full system)
    val_objective: float | None  # Σ fixed λ_k · val_loss_k, lower is better; None: no fine-tune
    val_metrics: dict[str, float] = field(default_factory=dict)  # VAL_METRICS present
    message: str | None = None  # the training run's notices


@dataclass
class TrainingAblationRow:
    """One variant against the reference on one metric (Δ = variant − reference)."""

    variant: str
    changes: str
    version: str
    metric: str
    mean_reference: float
    mean_variant: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_users: int
    verdict: str  # metric_verdict of the variant against the reference
    val_objective: float | None


@dataclass
class TrainingAblationReport:
    """The ablation ``name`` of the training options on ``dataset``'s ``split``."""

    dataset: str
    name: str
    split: str
    variants: list[VariantSummary]  # the reference first
    rows: list[TrainingAblationRow]
    notices: list[str] = field(default_factory=list)

    @property
    def reference(self) -> VariantSummary:
        return self.variants[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per (variant, metric), variants in ``VARIANTS`` order."""
        columns = list(TrainingAblationRow.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)

    def metrics(self) -> list[str]:
        """The metrics compared, in ``ABLATION_METRICS`` order (L2 only where items have one)."""
        present = {r.metric for r in self.rows} | set(self.reference.means)
        return [m for m in ABLATION_METRICS if m in present]

    def metric_table(self, metric: str) -> pd.DataFrame:
        """One metric for people: per variant (index) what it changes, its mean, Δ vs the
        reference with the 95% CI as text, p as text (``format_p``) and the users."""
        return metric_frame(self.to_frame(), metric, "changes")

    def table(self) -> pd.DataFrame:
        """The whole ablation for people, one row per variant (index): its version, its
        fine-tune's validation objective, and per metric Δ vs the reference with the 95% CI
        and p (the reference's row holds its means)."""
        cells: dict[tuple[str, str], str] = {
            (r.variant, r.metric): f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] "
                                   f"p {format_p(r.p_value)}"
            for r in self.rows
        }
        for metric, mean in self.reference.means.items():
            cells[(REFERENCE, metric)] = f"mean {mean:.4f}"
        records = []
        for v in self.variants:
            record: dict[str, Any] = {
                "version": v.version,
                "val objective": "—" if v.val_objective is None else f"{v.val_objective:.4f}",
            }
            record.update({m: cells.get((v.variant, m), "—") for m in self.metrics()})
            records.append(record)
        return pd.DataFrame(records, index=pd.Index([v.variant for v in self.variants],
                                                    name="variant"))

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "name": self.name, "split": self.split,
                "reference": REFERENCE, "full": FULL_SCORER,
                "variants": [asdict(v) for v in self.variants],
                "rows": [asdict(r) for r in self.rows], "notices": list(self.notices)}


def _stored_by_variant(store: Store, dataset: str, name: str) -> dict[str, dict[str, Any]]:
    rows = ablation_variants(store, name)
    other = {r["dataset"] for r in rows} - {dataset}
    if other:
        raise ConfigError(f"The training ablation {name!r} was run on {', '.join(other)}, not "
                          f"{dataset}: give this one another --name.")
    return {r["variant"]: r for r in rows}


def _ready_version(store: Store, version: str) -> dict[str, Any] | None:
    try:
        return get_version(store, version)
    except ModelVersionNotFound:
        return None


def _train_variant(store: Store, dataset: str, base_config: TrainConfig, name: str,
                   variant: str, done: dict[str, Any] | None, run_job: JobRunner,
                   notices: list[str]) -> str:
    """The version of ``variant``: the recorded one when it is still ready, else trained
    (or, for ``pretrained``, embedded when the dataset has no base embeddings) and recorded."""
    spec = VARIANTS[variant]
    label = f"{variant}: {spec.changes}"
    if not spec.fine_tune:
        if dataset not in embedded_datasets(store).get(BASE_VERSION, []):
            run_job("embed", base_config, label)
        base = get_version(store, BASE_VERSION)
        if base.get("base_model") and base["base_model"] != base_config.base_model:
            notices.append(f"{PRETRAINED}: the base embeddings come from {base['base_model']}, "
                           f"the fine-tunes start from {base_config.base_model}.")
        if done is None or done["version"] != BASE_VERSION:
            record_variant(store, name, dataset, variant, BASE_VERSION, {})
        return BASE_VERSION
    config = variant_config(base_config, variant)
    if variant != REFERENCE and config == base_config:
        notices.append(f"{variant} changes nothing: the budget's config already sets "
                       f"{dict(spec.overrides)}.")
    overrides = _as_json(dict(spec.overrides))
    if done is not None:
        info = _ready_version(store, done["version"])
        if info is not None:
            conflicts = _config_conflicts(info.get("config"), config)
            if conflicts:
                raise ConfigError(
                    f"The training ablation {name!r} trained {variant} as {done['version']} "
                    f"with another config ({'; '.join(conflicts)}). Run this budget under "
                    "another --name, or repeat the options it was run with."
                )
            return done["version"]
        log.info("%s of %s: %s is no longer usable; training it again", variant, name,
                 done["version"])
    version = run_job("train", config, label)
    record_variant(store, name, dataset, variant, version, overrides)
    return version


def run_training_ablation(
    store: Store,
    dataset: str,
    base_config: TrainConfig,
    variants: Sequence[str] | None = None,
    name: str | None = None,
    split: str = "test",
    progress: Callable[[int, int], None] | None = None,
    *,
    run_job: JobRunner,
    seed: int = 0,
) -> TrainingAblationReport:
    """Train each variant not yet done in ablation ``name``, evaluate every version's full
    system on ``split`` (versions already evaluated there are not evaluated again), compare.

    Args:
        base_config: the budget every variant shares (each variant sets its fields over it).
        variants: names from ``VARIANTS`` (default: all); the reference is always run.
        name: the ablation (default ``default_name(dataset)``); a second run of it trains
            only the variants it has no ready version of.
        progress: ``progress(done, total)`` over the users ranked by the evaluations.
        run_job: runs one job to its end and returns the ready version (``JobRunner``).

    Raises:
        ConfigError: an unknown variant or split, a name used on another dataset or with
            another budget.
        MgiError: a job failed (the versions made before it stay recorded).
    """
    if split not in ("val", "test"):
        raise ConfigError("split must be 'val' or 'test'")
    chosen = choose_variants(variants)
    name = name or default_name(dataset)
    done = _stored_by_variant(store, dataset, name)
    notices: list[str] = []
    versions = {v: _train_variant(store, dataset, base_config, name, v, done.get(v), run_job,
                                  notices)
                for v in chosen}
    pending = [v for v in dict.fromkeys(versions.values())
               if not is_evaluated(store, dataset, v, FULL_SCORER, split)]
    offset = 0  # users ranked by the evaluations before this one (each ranks the same users)
    for version in pending:

        def step(done_users: int, total: int, _offset: int = offset) -> None:
            if progress is not None:
                progress(_offset + done_users, total * len(pending))

        result = evaluate(store, dataset, version, (FULL_SCORER,), split=split, seed=seed,
                          progress=step)
        offset += len(result.per_user[FULL_SCORER])
    report = load_training_ablation(store, dataset, name, split, chosen, seed=seed)
    report.notices[:0] = notices
    return report


def _summary(store: Store, dataset: str, split: str, variant: str, row: dict[str, Any],
             metrics: Sequence[str]) -> VariantSummary:
    spec = VARIANTS.get(variant)
    overrides = row["overrides"]
    changes = spec.changes if spec else ", ".join(f"{k}={v}" for k, v in overrides.items())
    frame = per_user_frame(store, dataset, row["version"], FULL_SCORER, split)
    means = {m: float(frame[m].mean()) for m in metrics if m in frame.columns}
    fine_tuned = spec.fine_tune if spec else True
    info = get_version(store, row["version"], usable=False) if fine_tuned else {}
    stored = info.get("metrics") or {}
    val = {m: float(stored[m]) for m in VAL_METRICS
           if isinstance(stored.get(m), int | float) and math.isfinite(stored[m])}
    return VariantSummary(variant, changes, row["version"], dict(overrides), means,
                          val.get("objective"), val, info.get("message"))


def load_training_ablation(
    store: Store, dataset: str, name: str | None = None, split: str = "test",
    variants: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0,
) -> TrainingAblationReport:
    """The ablation ``name`` from what is stored (never trains, never evaluates).

    ``variants``: report only these (and the reference); default: every stored one.

    Raises:
        MgiError: no such ablation, a variant asked for that it has not trained, or a
            version not evaluated on ``split``; the message names the command to run.
    """
    name = name or default_name(dataset)
    stored = _stored_by_variant(store, dataset, name)
    command = (f"python -m mgi_core ablate --training --dataset {dataset} --name {name}"
               + ("" if split == "test" else f" --split {split}"))
    if not stored:
        known = ablation_names(store, dataset)
        raise MgiError(f"No training ablation {name!r} on {dataset}"
                       + (f" (stored: {', '.join(known)})" if known else "")
                       + f". Run it: {command}")
    asked = choose_variants(variants) if variants is not None else None
    order = list(VARIANTS)
    names = asked or sorted(stored, key=lambda v: (order.index(v) if v in order else len(order),
                                                   v))
    missing = [v for v in names if v not in stored]
    if REFERENCE not in names:
        missing.insert(0, REFERENCE)
        names.insert(0, REFERENCE)
    if missing:
        raise MgiError(f"The training ablation {name!r} has no {', '.join(missing)} yet. Run "
                       f"it: {command} --variants {','.join(names)}")
    unevaluated = [f"{v} ({stored[v]['version']})" for v in names
                   if not is_evaluated(store, dataset, stored[v]["version"], FULL_SCORER,
                                       split)]
    if unevaluated:
        raise MgiError(f"The training ablation {name!r} is not evaluated on {split} for "
                       f"{', '.join(unevaluated)}. Run it (nothing trained is trained "
                       f"again): {command}")
    summaries = [_summary(store, dataset, split, v, stored[v], ABLATION_METRICS)
                 for v in names]
    reference = summaries[0]
    rows = []
    for summary in summaries[1:]:
        report = compare(store, f"{reference.version}:{FULL_SCORER}",
                         f"{summary.version}:{FULL_SCORER}", dataset, split,
                         metrics=ABLATION_METRICS, n_boot=n_boot, seed=seed)
        rows.extend(
            TrainingAblationRow(summary.variant, summary.changes, summary.version, r.metric,
                                r.mean_a, r.mean_b, r.diff, r.ci_low, r.ci_high, r.p_value,
                                r.n_users, metric_verdict(r), summary.val_objective)
            for r in report.results
        )
    notices = [f"{s.variant} ({s.version}): {s.message}" for s in summaries if s.message]
    return TrainingAblationReport(dataset, name, split, summaries, rows, notices)
