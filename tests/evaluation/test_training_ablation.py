"""The ablation of the training options (``ablate --training``) on the tiny BERT and corpus:
each variant a version trained on the same budget, compared per user with the reference,
resumable by name, readable without training."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import wilcoxon

from mgi_core import cli
from mgi_core.cli import main
from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.ablation import ABLATION_METRICS
from mgi_core.evaluation.training_ablation import (
    PRETRAINED,
    REFERENCE,
    VARIANTS,
    choose_variants,
    load_training_ablation,
    run_training_ablation,
    variant_config,
)
from mgi_core.ranking.fusion import FULL_SCORER
from mgi_core.store import Store
from mgi_core.store.evaluations import per_user_metrics
from mgi_core.store.training_ablations import ablation_variants, record_variant
from mgi_core.store.versions import get_version

NAME = "training-tiny"  # the default name of an ablation of dataset 'tiny'


def _options(tiny_bert: Path) -> list[str]:
    """The tiny budget every variant shares: 16 training reviews, one epoch, short texts."""
    return ["--base-model", str(tiny_bert), "--max-train-reviews", "16", "--epochs", "1",
            "--head-warmup-epochs", "1", "--batch-size", "8", "--max-seq-length", "16",
            "--embed-max-seq-length", "16", "--embed-batch-size", "32", "--lora-rank", "2",
            "--lora-targets", "query,value", "--device", "cpu"]


def _run(db: Path, *args: str) -> SimpleNamespace:
    """``python -m mgi_core ablate --training ARGS`` in this process, counting the jobs it
    runs (their kinds, in order): rc, out, err, jobs."""
    jobs: list[str] = []
    run_inline = cli._run_inline

    def counting(store, kind, *rest, **kw):
        jobs.append(kind)
        return run_inline(store, kind, *rest, **kw)

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        mp.setattr(cli, "_run_inline", counting)
        rc = main(["ablate", "--training", "--dataset", "tiny", "--db", str(db), *args])
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue(), jobs=jobs)


@pytest.fixture(scope="module")
def ablated(tmp_path_factory: pytest.TempPathFactory, snapshot, tiny_bert) -> SimpleNamespace:
    """The tiny corpus as 'tiny'; the ablation run three times under its default name: with
    fgm, then fgm and pretrained (resumed), then the same again (nothing left to do)."""
    folder = tmp_path_factory.mktemp("training_ablation")
    csv_path = folder / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}).to_csv(csv_path, index=False)
    db = folder / "mgi.duckdb"
    with Store(db) as store:
        ingest_file(store, csv_path, "tiny")
    options = _options(tiny_bert)
    first = _run(db, "--variants", "fgm", "--json", *options)
    second = _run(db, "--variants", "fgm,pretrained", "--json", *options)
    third = _run(db, "--variants", "fgm,pretrained", *options)
    for run in (first, second, third):
        assert run.rc == 0, run.err
    return SimpleNamespace(db=db, options=options, first=first, second=second, third=third,
                           report=json.loads(second.out))


def test_the_reference_is_always_run_and_unknown_variants_are_named():
    assert choose_variants(["pretrained", "fgm"]) == [REFERENCE, "fgm", PRETRAINED]
    assert choose_variants(None) == list(VARIANTS)
    assert {"reference", "adalora", "fgm", "pgd", "augment", "uncertainty",
            "pretrained"} <= set(VARIANTS)
    with pytest.raises(ConfigError, match=r"Unknown training variant\(s\) \['bogus'\]; "
                                          r"choose from \['reference', 'adalora'"):
        choose_variants(["fgm", "bogus"])


def test_a_variant_sets_only_its_own_fields_over_the_budget():
    base = TrainConfig(max_train_reviews=16, epochs=2, seed=5)
    for name, spec in VARIANTS.items():
        config = variant_config(base, name).to_dict()
        changed = {k for k, v in config.items() if v != base.to_dict()[k]}
        assert changed == set(spec.overrides), name
    assert variant_config(base, "augment").augment == ("delete", "swap", "synonym")
    assert variant_config(base, "adalora").strategy == "adalora"


def test_each_variant_is_a_ready_version_of_the_same_budget_with_its_overrides(ablated):
    with Store(ablated.db) as store:
        rows = {r["variant"]: r for r in ablation_variants(store, NAME)}
        assert set(rows) == {REFERENCE, "fgm", PRETRAINED}
        assert {v: r["overrides"] for v, r in rows.items()} == {
            REFERENCE: {}, "fgm": {"adversarial": "fgm"}, PRETRAINED: {}}
        assert rows[PRETRAINED]["version"] == "base"  # the pre-trained encoder, embedded
        reference = get_version(store, rows[REFERENCE]["version"])
        fgm = get_version(store, rows["fgm"]["version"])
    assert reference["status"] == fgm["status"] == "ready"
    assert reference["dataset"] == fgm["dataset"] == "tiny"
    assert fgm["config"]["adversarial"] == "fgm" and reference["config"]["adversarial"] == "none"
    # The budget is shared: the configs differ in the variant's field only.
    differ = {k for k in reference["config"] if reference["config"][k] != fgm["config"][k]}
    assert differ == {"adversarial"}
    assert (reference["config"]["max_train_reviews"], reference["config"]["epochs"],
            reference["config"]["max_seq_length"]) == (16, 1, 16)


def test_a_second_run_of_the_same_name_trains_only_what_is_missing(ablated):
    assert ablated.first.jobs == ["train", "train"]  # reference, fgm
    assert ablated.second.jobs == ["embed"]  # pretrained: 'tiny' had no base embeddings
    assert ablated.third.jobs == []
    with Store(ablated.db) as store:
        n_versions = store.cursor().execute(
            "SELECT count(*) FROM model_versions").fetchone()[0]
    assert n_versions == 3  # v1, v2, base


def test_the_report_pairs_each_variant_with_the_reference_from_per_user_metrics(ablated):
    report = ablated.report
    assert [v["variant"] for v in report["variants"]] == [REFERENCE, "fgm", PRETRAINED]
    pairs = {(r["variant"], r["metric"]) for r in report["rows"]}
    assert pairs == {(v, m) for v in ("fgm", PRETRAINED) for m in ABLATION_METRICS}
    versions = {v["variant"]: v["version"] for v in report["variants"]}
    with Store(ablated.db) as store:
        frames = {v: per_user_metrics(store, "tiny", version, FULL_SCORER).pivot(
            index="user_id", columns="metric", values="value")
            for v, version in versions.items()}
    for row in report["rows"]:
        # Recomputed by hand: users in both, Δ = mean(variant − reference), Wilcoxon with
        # the ties split (a p of 1 when no user differs).
        a, b = frames[REFERENCE][row["metric"]], frames[row["variant"]][row["metric"]]
        both = a.notna() & b.notna()
        diff = (b[both] - a[both]).to_numpy()
        assert row["n_users"] == both.sum() > 0
        assert row["diff"] == pytest.approx(diff.mean())
        assert row["ci_low"] <= row["diff"] <= row["ci_high"]
        p = wilcoxon(diff, zero_method="zsplit").pvalue if np.any(diff) else 1.0
        assert row["p_value"] == pytest.approx(p)
        assert row["mean_reference"] == pytest.approx(a[both].mean())
    assert report["variants"][0]["means"]["ndcg@10"] == pytest.approx(
        frames[REFERENCE]["ndcg@10"].mean())


def test_each_variant_carries_its_fine_tunes_validation(ablated):
    variants = {v["variant"]: v for v in ablated.report["variants"]}
    with Store(ablated.db) as store:
        for name in (REFERENCE, "fgm"):
            stored = get_version(store, variants[name]["version"])["metrics"]
            assert variants[name]["val_objective"] == pytest.approx(stored["objective"])
            assert variants[name]["val_metrics"]["overall/auc"] == pytest.approx(
                stored["overall/auc"])
    assert variants[PRETRAINED]["val_objective"] is None  # nothing was fine-tuned
    fgm_rows = [r for r in ablated.report["rows"] if r["variant"] == "fgm"]
    assert {r["val_objective"] for r in fgm_rows} == {variants["fgm"]["val_objective"]}


def test_the_table_has_a_row_per_variant_with_each_metrics_delta_and_p(ablated):
    lines = ablated.third.out.splitlines()
    header = next(line for line in lines if "val objective" in line and "ndcg@10" in line)
    for metric in ABLATION_METRICS:
        assert metric in header
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 2:]
            if line.split() and line.split()[0] in VARIANTS}
    assert set(rows) == {REFERENCE, "fgm", PRETRAINED}
    assert "mean " in rows[REFERENCE] and " p " in rows[PRETRAINED]
    assert rows[PRETRAINED].split()[1] == "base" and "—" in rows[PRETRAINED]


def test_stored_reads_the_ablation_without_training(ablated):
    stored = _run(ablated.db, "--stored", "--json")
    assert stored.rc == 0, stored.err
    assert stored.jobs == []
    assert json.loads(stored.out)["rows"] == ablated.report["rows"]
    with Store(ablated.db) as store:
        report = load_training_ablation(store, "tiny", variants=["fgm"])
    assert [v.variant for v in report.variants] == [REFERENCE, "fgm"]
    assert report.metric_table("ndcg@10").index.tolist() == ["fgm"]


def test_stored_says_what_to_run_when_there_is_nothing(ablated):
    missing = _run(ablated.db, "--stored", "--name", "nope")
    assert missing.rc == 2
    assert "No training ablation 'nope' on tiny (stored: training-tiny)" in missing.err
    assert "python -m mgi_core ablate --training --dataset tiny --name nope" in missing.err
    untrained = _run(ablated.db, "--stored", "--variants", "pgd")
    assert untrained.rc == 2 and "has no pgd yet" in untrained.err


def test_unknown_variants_and_another_budget_are_refused_before_training(ablated):
    unknown = _run(ablated.db, "--variants", "fgm,bogus", *ablated.options)
    assert unknown.rc == 2 and unknown.jobs == []
    assert "Unknown training variant(s) ['bogus']" in unknown.err
    options = list(ablated.options)
    options[options.index("--epochs") + 1] = "2"
    longer = _run(ablated.db, *options)
    assert longer.rc == 2 and longer.jobs == []
    assert "trained reference as v1 with another config (epochs: 1 → 2)" in longer.err


def test_ablate_without_training_still_needs_a_version(ablated, capsys):
    assert main(["ablate", "--db", str(ablated.db)]) == 2
    assert "ablate needs --version" in capsys.readouterr().err
    assert main(["ablate", "--db", str(ablated.db), "--version", "v1", "--epochs", "2"]) == 2
    assert "--epochs: option(s) of ablate --training only" in capsys.readouterr().err


def test_a_name_belongs_to_one_dataset_and_a_variant_to_one_version(store):
    record_variant(store, "x", "other", REFERENCE, "v1", {})
    record_variant(store, "x", "other", REFERENCE, "v4", {})  # trained again: replaced
    assert [(r["variant"], r["version"]) for r in ablation_variants(store, "x")] == [
        (REFERENCE, "v4")]

    def no_jobs(kind: str, config: TrainConfig, label: str) -> str:
        raise AssertionError("nothing may run")

    with pytest.raises(ConfigError, match="'x' was run on other, not tiny"):
        run_training_ablation(store, "tiny", TrainConfig(), ["fgm"], "x", run_job=no_jobs)
