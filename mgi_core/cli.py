"""Command line: ``python -m mgi_core COMMAND``. The CLI and the pages call the same code.

Exit status: 0 on success, 2 when MGI rejects the input (the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mgi_core.config import IngestConfig, TrainConfig
from mgi_core.config_cli import add_config_options, config_from_args
from mgi_core.errors import ConfigError, MgiError
from mgi_core.progress import PolledProgress, ProgressBar, ProgressView

DEMO_DIR = Path(__file__).resolve().parent / "demo"  # package data: ships in the wheel
DEMO_DATASET = "demo"
# Older option spellings of config fields (every field also has --its-name).
INGEST_ALIASES = {"category_separator": ("--separator",)}
TRAIN_ALIASES = {"task_weights": ("--weights",), "learning_rate": ("--lr",)}
FULL_LEARNING_RATE = 3e-5  # the encoder's default learning rate for strategies other than LoRA
ADAPTER_STRATEGIES = ("lora", "adalora")  # they train small adapters: TrainConfig's rate


def _db_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db", default=None, help="DuckDB file (default: $MGI_DB or data/mgi.duckdb)."
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgi",
        description="MGI: multi-granularity user interests from review text.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = _db_parent()

    ingest = sub.add_parser("ingest", parents=[db], help="Validate and store a review file.")
    ingest.add_argument("file", type=Path, help="CSV or Parquet file of reviews.")
    ingest.add_argument("--name", required=True, help="Dataset name to store it under.")
    ingest.add_argument(
        "--mapping", nargs="*", default=[], metavar="SRC=DST",
        help="Map a file column to an MGI column, e.g. reviewerID=user_id overall=rating.",
    )
    ingest.add_argument("--json", action="store_true", help="Print the report as JSON.")
    add_config_options(ingest, IngestConfig, INGEST_ALIASES)

    datasets = sub.add_parser("datasets", parents=[db], help="List stored datasets.")
    datasets.add_argument("--json", action="store_true", help="Print JSON.")

    append = sub.add_parser(
        "append", parents=[db],
        help="Add a review file to a stored dataset, then embed only the new reviews with "
             "the dataset's current version and update the profiles they touch.")
    append.add_argument("file", type=Path, help="CSV or Parquet file of reviews.")
    append.add_argument("--dataset", required=True, help="The stored dataset to add to.")
    append.add_argument("--mapping", nargs="*", default=[], metavar="SRC=DST",
                        help="Map a file column to an MGI column, as for ingest.")
    append.add_argument("--version", default=None,
                        help="Version to update (default: the newest that embedded it).")
    append.add_argument("--no-update", action="store_true",
                        help="Only store the reviews; update versions later (mgi update).")
    append.add_argument("--json", action="store_true", help="Print the report as JSON.")

    update = sub.add_parser(
        "update", parents=[db],
        help="Embed the reviews a version has not embedded yet (appended since) and update "
             "its item vectors and the touched users' profiles, without retraining.")
    update.add_argument("--dataset", required=True, help="Dataset.")
    update.add_argument("--version", default=None,
                        help="Version (default: the newest that embedded the dataset).")

    half_life = sub.add_parser(
        "half-life", parents=[db],
        help="Set the recency half-life of a dataset's profiles (days, or 'off'): a review "
             "this much older than its user's latest counts half. Profiles are rebuilt.")
    half_life.add_argument("--dataset", required=True, help="Dataset.")
    half_life.add_argument("days", help="Days (> 0), or 'off' for no decay.")

    train = sub.add_parser(
        "train", parents=[db],
        help="Fine-tune the encoder on a dataset (multi-task) and register a new version.",
    )
    train.add_argument("--dataset", required=True, help="Dataset to train on.")
    train.add_argument("--json", action="store_true", help="Print the version as JSON.")
    add_config_options(train, TrainConfig, TRAIN_ALIASES, defaults={
        "learning_rate": f"{TrainConfig.default('learning_rate'):g} for (Ada)LoRA, "
                         f"{FULL_LEARNING_RATE:g} otherwise"})

    search = sub.add_parser(
        "search", parents=[db],
        help="Search the fine-tune's hyper-parameters (Optuna, TPE) on the validation split; "
             "running a study again continues it. --register trains the best as a version.",
    )
    search.add_argument("--dataset", required=True, help="Dataset to search on.")
    search.add_argument("--study", default=None,
                        help="Study name (default: DATASET-search). A study that exists is "
                             "continued, with the settings it began with.")
    search.add_argument("--trials", type=int, default=None, metavar="N",
                        help="Complete trials the study should have (default 10); a run "
                             "adds the missing ones.")
    search.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="Start no new trial after S seconds (the trial running ends).")
    search.add_argument("--space", default=None, metavar="JSON",
                        help='Search space as JSON, or a .json file: {"FIELD": {"low": L, '
                             '"high": H, "log": true} or {"choices": [...]}, ...}; fields '
                             "are TrainConfig's. Default: learning_rate, head_learning_rate "
                             "(log), dropout, lora_rank, adversarial, task_weighting.")
    search.add_argument("--register", action="store_true",
                        help="Then train a version with the best trial's config (a normal "
                             "train job) and print it.")
    search.add_argument("--json", action="store_true",
                        help="Print the trials, the best config and the version as JSON.")
    add_config_options(search, TrainConfig, TRAIN_ALIASES, defaults={
        "learning_rate": f"{TrainConfig.default('learning_rate'):g} for (Ada)LoRA, "
                         f"{FULL_LEARNING_RATE:g} otherwise"})

    embed = sub.add_parser(
        "embed", parents=[db],
        help="Embed a dataset with the pre-trained encoder (version base) or a trained version.",
    )
    embed.add_argument("--dataset", required=True)
    embed.add_argument("--version", default=None,
                       help="A ready version to embed with (default: base, the pre-trained "
                            "encoder).")
    embed.add_argument("--max-seq-length", type=int,
                       default=TrainConfig().embed_max_seq_length,
                       help="Tokens per review (default %(default)s; with --version, that "
                            "version's own length unless given).")
    embed.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process (default). ray: Ray Data, one encoder per "
                            "actor (GPU actors where the cluster has GPUs).")
    embed.add_argument("--address", default=None,
                       help="Ray cluster to join (ray://HOST:10001, or 'auto'); default: "
                            "start a local one on this machine's CPUs.")
    embed.add_argument("--actors", type=int, default=None,
                       help="Ray actors (encoders) to run; default: one per CPU, or per GPU "
                            "where the cluster has GPUs.")
    embed.add_argument("--stage", default=None,
                       help="Where the Parquet snapshot and embeddings go for the cluster to "
                            "read and write: a folder every node sees, or s3://… / gs://… "
                            "where credentials are configured. Default: the run folder "
                            "(fine for a one-machine cluster).")

    export = sub.add_parser(
        "export", parents=[db],
        help="Write a dataset (and a version's vectors) as Parquet folders that DuckDB, Ray "
             "and pandas read.")
    export.add_argument("--dataset", required=True)
    export.add_argument("--version", default=None,
                        help="Also write this version's review and item vectors.")
    export.add_argument("--to", required=True,
                        help="A new or empty folder, or s3://… / gs://… where credentials are "
                             "configured.")
    export.add_argument("--json", action="store_true", help="Print the row counts as JSON.")

    versions = sub.add_parser("versions", parents=[db], help="List model versions.")
    versions.add_argument("--json", action="store_true", help="Print JSON.")

    evaluate = sub.add_parser(
        "evaluate", parents=[db],
        help="Rank held-out items with each scorer; store per-user metrics.",
    )
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--version", required=True, help="Model version (e.g. base, v1).")
    evaluate.add_argument("--scorers", nargs="*", default=None,
                          help="Scorers to run (default: all).")
    evaluate.add_argument("--split", default="test", choices=("test", "val"))
    evaluate.add_argument("--json", action="store_true")

    compare = sub.add_parser(
        "compare", parents=[db], help="Paired A/B comparison of two VERSION[:SCORER] specs."
    )
    compare.add_argument("a", help="System A, e.g. base:content_hybrid")
    compare.add_argument("b", help="System B, e.g. v1 (scorer mgi_hybrid by default)")
    compare.add_argument("--dataset", default=None, help="Default: the version's dataset.")
    compare.add_argument("--split", default="test", choices=("test", "val"))
    compare.add_argument("--json", action="store_true")

    ablate = sub.add_parser(
        "ablate", parents=[db],
        help="What each feature group is worth: the full system against variants with one "
             "group removed and against CF + overall content, paired over users. With "
             "--training: what each training option is worth (one fine-tune per option on "
             "the same budget, each against the reference).",
    )
    ablate.add_argument("--dataset", default=None,
                        help="Default: the version's dataset (required with --training).")
    ablate.add_argument("--version", default=None,
                        help="Model version (e.g. base, v1); required without --training.")
    ablate.add_argument("--split", default="test", choices=("test", "val"))
    ablate.add_argument("--stored", action="store_true",
                        help="Report the stored ablation without evaluating (or training) "
                             "again.")
    ablate.add_argument("--json", action="store_true")
    ablate.add_argument(
        "--training", action="store_true",
        help="Ablate the training options: one version per variant, trained on the train "
             "options given here (the budget every variant shares), resumable by --name.")
    ablate.add_argument("--name", default=None,
                        help="With --training: the ablation's name (default: training-"
                             "DATASET); a second run of it trains only what is missing.")
    ablate.add_argument(
        "--variants", type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        default=None, metavar="A,B,...",
        help="With --training: the variants to run (default: all of reference, adalora, fgm, "
             "pgd, augment, uncertainty, pretrained); the reference is always included.")
    add_config_options(ablate, TrainConfig, TRAIN_ALIASES, defaults={
        "learning_rate": f"{TrainConfig.default('learning_rate'):g} for (Ada)LoRA, "
                         f"{FULL_LEARNING_RATE:g} otherwise"})

    rec = sub.add_parser("recommend", parents=[db], help="Top items for a user, with reasons.")
    rec.add_argument("--user", required=True)
    rec.add_argument("--version", required=True)
    rec.add_argument("--dataset", default=None, help="Default: the version's dataset.")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--scorer", default="mgi_hybrid")
    rec.add_argument("--json", action="store_true")

    prof = sub.add_parser("profile", parents=[db], help="A user's interest profile.")
    prof.add_argument("--user", required=True)
    prof.add_argument("--version", required=True)
    prof.add_argument("--dataset", default=None, help="Default: the version's dataset.")
    prof.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                      help="The profile as of the end of that day (train reviews up to it) "
                      "and how it moved since (needs review dates).")
    prof.add_argument("--json", action="store_true")

    forget = sub.add_parser(
        "forget", parents=[db],
        help="Remove every row of a user (reviews, vectors, profiles, per-user metrics, run "
             "folder copies) in one transaction; versions trained on them are listed as "
             "trained with forgotten data.")
    forget.add_argument("--user", required=True, help="The user id (as in the file).")
    forget.add_argument("--dataset", default=None,
                        help="Only in this dataset (default: every dataset holding the user).")
    forget.add_argument("--yes", action="store_true",
                        help="Do not ask for confirmation (needed when not on a terminal).")
    forget.add_argument("--json", action="store_true", help="Print the report as JSON.")

    jobs = sub.add_parser(
        "jobs", parents=[db],
        help="List jobs, newest first (a job whose process has ended shows as failed).",
    )
    jobs.add_argument("--json", action="store_true", help="Print JSON.")

    cancel = sub.add_parser(
        "cancel", parents=[db],
        help="Stop the running job of a version (or mark it cancelled if its process ended).",
    )
    cancel.add_argument("version", help="The version the job makes, e.g. v3 (see 'jobs').")
    cancel.add_argument("--grace", type=float, default=30.0,
                        help="Seconds to wait after SIGTERM before SIGKILL (default 30).")

    run_job = sub.add_parser("run-job", help=argparse.SUPPRESS)
    run_job.add_argument("run_dir", type=Path)

    demo = sub.add_parser(
        "load-demo", parents=[db], help="Ingest the bundled demo dataset if the store is empty."
    )
    demo.add_argument("--force", action="store_true", help="Load it even if data exists.")
    return parser


def _open_store(db: str | None):
    from mgi_core.store import Store

    return Store(db)


def _dataset_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "file_name": row["file_name"],
        "reviews": row["n_reviews"],
        "users": row["n_users"],
        "items": row["n_items"],
        "distinct_l1": row["n_l1"],
        "distinct_l2": row["n_l2"],
        "distinct_l3": row["n_l3"],
        "rejected": row["n_rejected"],
        "has_timestamp": row["has_timestamp"],
        "created_at": str(row["created_at"]),
    }


class IngestStages:
    """The ingest's current stage, for a progress bar: told by the ingest, polled by a
    thread. A stage shows its elapsed time, and its statement's percentage and ETA when
    DuckDB reports them."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.fraction: Callable[[], float | None] = lambda: None

    def enter(self, stage: str, fraction: Callable[[], float | None]) -> None:
        self.stage, self.fraction = stage, fraction

    def view(self) -> ProgressView | None:
        stage = self.stage
        if stage is None:
            return None
        fraction = self.fraction()
        if not fraction:  # unknown, or nothing to tell yet
            return ProgressView(stage, stage, unit=None)
        return ProgressView(stage, stage, round(100 * fraction), 100, unit=None)


def cmd_ingest(args: argparse.Namespace) -> int:
    from mgi_core.data.columns import parse_mapping_args
    from mgi_core.data.ingest import ingest_file

    config = config_from_args(IngestConfig, args)
    mapping = parse_mapping_args(args.mapping)
    stages = IngestStages()
    follower = PolledProgress(stages.view, enabled=False if args.json else None,
                              complete_on_change=True)
    with _open_store(args.db) as store, follower:
        report = ingest_file(store, args.file, args.name, mapping=mapping, config=config,
                             on_stage=stages.enter)
    if args.json:
        out = report.to_dict()
        out["rejected_rows"] = out["rejected_rows"][:100]
        print(json.dumps(out, default=str, indent=2))
        return 0
    print(report.summary())
    for notice in report.notices:
        print(f"note: {notice}")
    for row in report.rejected_rows[:10]:
        print(f"  line {row['line']}: {row['reason']} ({row['detail']})")
    if report.n_rejected > 10:
        print(f"  … {report.n_rejected - 10:,} more; see the Data page to download them all.")
    return 0


def cmd_append(args: argparse.Namespace) -> int:
    from mgi_core.data.append import append_file
    from mgi_core.data.columns import parse_mapping_args
    from mgi_core.profiles.incremental import current_version

    stages = IngestStages()
    follower = PolledProgress(stages.view, enabled=False if args.json else None,
                              complete_on_change=True)
    with _open_store(args.db) as store:
        with follower:
            result = append_file(store, args.file, args.dataset,
                                 mapping=parse_mapping_args(args.mapping),
                                 on_stage=stages.enter)
        version = args.version or current_version(store, args.dataset)
        updated = None
        if version is not None and not args.no_update:
            updated = _update_version(store, args.dataset, version, show=not args.json)
    if args.json:
        out = result.to_dict()
        out["rejected_rows"] = out["rejected_rows"][:100]
        out["updated"] = updated
        print(json.dumps(out, default=str, indent=2))
        return 0
    print(result.summary())
    for notice in [*result.report.notices, *result.notices]:
        print(f"note: {notice}")
    for row in result.report.rejected_rows[:10]:
        print(f"  line {row['line']}: {row['reason']} ({row['detail']})")
    if updated:
        print(f"{version}: {updated}")
    elif version is None:
        print("note: no version has embedded this dataset yet; embed it to get profiles.")
    else:
        print(f"note: {version} not updated (--no-update); run: mgi update --dataset "
              f"{args.dataset} --version {version}")
    return 0


def _update_version(store, dataset: str, version: str, show: bool = True) -> str:
    """Run the update job of ``version`` on ``dataset`` here; its summary line."""
    from mgi_core.store.jobs import list_jobs

    _run_inline(store, "update", dataset, TrainConfig(), show_progress=show,
                version=version)
    job = next(j for j in list_jobs(store) if j["kind"] == "update"
               and j["version"] == version and j["dataset"] == dataset)
    return job.get("message") or "updated"


def cmd_update(args: argparse.Namespace) -> int:
    from mgi_core.profiles.incremental import current_version

    with _open_store(args.db) as store:
        version = args.version or current_version(store, args.dataset)
        if version is None:
            raise MgiError(f"No version has embedded {args.dataset!r}: nothing to update.")
        print(f"{version}: {_update_version(store, args.dataset, version)}")
    return 0


def cmd_half_life(args: argparse.Namespace) -> int:
    from mgi_core.store.datasets import set_profile_half_life

    text = str(args.days).strip().lower()
    try:
        days = None if text in ("off", "none", "0") else float(text)
    except ValueError:
        days = -1.0
    if days is not None and not days > 0:
        raise MgiError(f"half-life must be a number of days above 0, or 'off' (got "
                       f"{args.days!r}).")
    with _open_store(args.db) as store:
        dropped = set_profile_half_life(store, args.dataset, days)
    what = "no recency decay" if days is None else f"a half-life of {days:g} days"
    print(f"{args.dataset}: profiles use {what}; {dropped} stored profile set(s) will be "
          "rebuilt on next use.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from mgi_core.data.datasets import list_datasets

    with _open_store(args.db) as store:
        rows = [_dataset_json(r) for r in list_datasets(store)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No datasets yet: python -m mgi_core ingest FILE --name NAME")
        return 0
    header = f"{'name':<20} {'reviews':>9} {'users':>8} {'items':>8} {'l1':>4} {'l2':>4} " \
        f"{'l3':>4} {'rejected':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['name']:<20} {r['reviews']:>9,} {r['users']:>8,} {r['items']:>8,} "
            f"{r['distinct_l1']:>4} {r['distinct_l2']:>4} {r['distinct_l3']:>4} "
            f"{r['rejected']:>9,}"
        )
    return 0


def cmd_load_demo(args: argparse.Namespace) -> int:
    from mgi_core.data.datasets import dataset_names
    from mgi_core.data.ingest import ingest_file

    with _open_store(args.db) as store:
        n = len(dataset_names(store))
        if n and not args.force:
            print(f"{store.path} already holds {n} dataset(s); demo not loaded.")
            return 0
        report = ingest_file(store, DEMO_DIR / "reviews.csv", DEMO_DATASET)
    print(report.summary())
    return 0


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``train`` command's config: the options given, the rest TrainConfig's defaults.

    Without ``--lr`` the encoder's learning rate suits the strategy: TrainConfig's default
    for the adapters (LoRA, AdaLoRA), ``FULL_LEARNING_RATE`` for 'full' and 'freeze'.
    """
    strategy = getattr(args, "strategy", TrainConfig.default("strategy"))
    lr = args.learning_rate if hasattr(args, "learning_rate") else (
        TrainConfig.default("learning_rate") if strategy in ADAPTER_STRATEGIES
        else FULL_LEARNING_RATE)
    return config_from_args(TrainConfig, args, learning_rate=lr)


def job_progress_view(status: dict[str, Any] | None, epochs: int) -> ProgressView | None:
    """What a job's ``status.json`` says to show: its phase, with counts when it has them.

    Training counts optimiser steps over all epochs, embedding counts reviews; the other
    phases (preparing, loading encoder, saving) show their elapsed time. After the last
    phase the embedding's counts stay in the file, so the last bar ends on them.
    """
    if not status:
        return None
    phase = status.get("phase", "")
    if phase == "training":
        if "step" not in status:
            return ProgressView("training", "training")
        return ProgressView("training", f"training epoch {status['epoch']}/{epochs}",
                            int(status["step"]), int(status["total_steps"]), "steps")
    if phase in ("embedding", "done") and "total" in status:
        return ProgressView("embedding", "embedding reviews", int(status.get("done", 0)),
                            int(status["total"]), "reviews")
    if phase in ("done", "cancelled", "failed"):
        return None
    return ProgressView(phase, phase)


def _run_inline(store, kind: str, dataset: str, config: TrainConfig,
                show_progress: bool = True, world=None, version: str | None = None,
                engine: dict[str, Any] | None = None) -> str:
    """Run a job in this process (Ctrl-C or SIGTERM cancels it cleanly); register the result.

    The job's row names this process, so if it is killed outright the next refresh (any
    later command, or the dashboard) closes the job as failed. With ``show_progress`` (and
    stderr a terminal) a thread follows the run folder's ``status.json`` and draws a bar.
    Under torchrun (``world``: rank 0) the run folder is sent to the other processes, which
    train beside this one (:func:`_follow_rank0`).
    """
    from mgi_core.jobs.manager import prepare_job, refresh_jobs
    from mgi_core.jobs.run_files import RunFiles, read_json

    try:
        version, run_dir = prepare_job(store, kind, dataset, config,
                                       world.size if world is not None else 1,
                                       version=version, engine=engine)
    except BaseException:
        _send_run_dir(None, world)  # the other processes stop too (this one says why)
        raise
    _send_run_dir(run_dir, world)
    status_file = RunFiles(run_dir).status
    follower = PolledProgress(lambda: job_progress_view(read_json(status_file), config.epochs),
                              enabled=None if show_progress else False)
    with follower:
        state = _run_job_cancellable(run_dir)
    refresh_jobs(store)
    if state != "finished":
        message = (read_json(RunFiles(run_dir).status) or {}).get("message", "")
        raise MgiError(f"The {kind} job {state}: {message} (log: {run_dir / 'job.log'})")
    return version


def _run_job_cancellable(run_dir: Path) -> str:
    """``run_job`` here, with Ctrl-C and SIGTERM asking it to stop after the current step."""
    import signal

    from mgi_core.jobs.worker import run_job

    stop = {"requested": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["requested"] = True
        print("stopping after this step …", file=sys.stderr)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_job(run_dir, should_stop=lambda: stop["requested"])
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _send_run_dir(run_dir: Path | None, world) -> None:
    if world is not None:
        from mgi_core.encoder import distributed

        distributed.broadcast_object(None if run_dir is None else str(run_dir), world)


def _follow_rank0(world) -> int:
    """A torchrun process other than rank 0: it never opens the database. It waits for rank
    0's run folder, then trains its share of each batch (rank 0 saves and registers)."""
    from mgi_core.encoder import distributed

    run_dir = distributed.broadcast_object(None, world)
    if run_dir is None:
        return 2  # rank 0 could not prepare the job and says why
    state = _run_job_cancellable(Path(run_dir))
    return 0 if state in ("finished", "cancelled") else 1


def cmd_train(args: argparse.Namespace) -> int:
    from mgi_core.encoder import distributed
    from mgi_core.encoder.device import choose_device
    from mgi_core.store.versions import get_version

    config = train_config_from_args(args)
    world = distributed.world_from_env()  # torchrun sets RANK / WORLD_SIZE
    if world.active:
        distributed.init(world, choose_device(config.device).type)
        if not world.is_main:
            return _follow_rank0(world)
    with _open_store(args.db) as store:
        version = _run_inline(store, "train", args.dataset, config,
                              show_progress=not args.json,
                              world=world if world.active else None)
        info = get_version(store, version)
    if args.json:
        print(json.dumps({k: info[k] for k in ("version", "dataset", "status", "metrics",
                                               "dim", "device", "artefact_dir")},
                         default=str, indent=2))
    else:
        print(version)
    return 0


def search_progress_view(status: dict[str, Any] | None) -> ProgressView | None:
    """What a search job's ``status.json`` says to show: the trial running, with its
    training steps, and how many trials are complete."""
    if not status:
        return None
    phase = status.get("phase", "")
    if phase in ("done", "cancelled", "failed"):
        return None
    if phase != "searching" or "trial" not in status:
        return ProgressView(phase, phase)
    label = (f"trial {status['trial']} ({status.get('trials_done', 0)} of "
             f"{status.get('trials_target', '?')} complete)")
    return ProgressView(f"trial {status['trial']}", label, int(status["step"]),
                        int(status["total_steps"]), "steps")


def _search_space_text(text: str | None) -> str | None:
    """``--space``: JSON text, or the path of a JSON file."""
    if text is not None and not text.lstrip().startswith(("{", "[")) and Path(text).is_file():
        return Path(text).read_text(encoding="utf-8")
    return text


def _trials_table(trials: Sequence[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [["trial", "state", "value", *names]]
    rows += [[str(t["trial"]), t["state"], "-" if t["value"] is None else f"{t['value']:.4f}",
              *(cell(t["params"].get(n, "-")) for n in names)] for t in trials]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def cmd_search(args: argparse.Namespace) -> int:
    from mgi_core.jobs.manager import prepare_job, refresh_jobs
    from mgi_core.jobs.run_files import RunFiles, read_json
    from mgi_core.jobs.search import (
        DEFAULT_TRIALS,
        SearchRequest,
        default_study_name,
        load_space,
        trial_config,
    )
    from mgi_core.store.search import best_trial, get_study, study_trials

    config = train_config_from_args(args)
    request = SearchRequest(args.study or default_study_name(args.dataset),
                            DEFAULT_TRIALS if args.trials is None else args.trials,
                            args.timeout, load_space(_search_space_text(args.space)))
    with _open_store(args.db) as store:
        _study, run_dir = prepare_job(store, "search", args.dataset, config,
                                      search=request.to_dict())
        status_file = RunFiles(run_dir).status
        follower = PolledProgress(lambda: search_progress_view(read_json(status_file)),
                                  enabled=False if args.json else None)
        with follower:
            state = _run_job_cancellable(run_dir)
        refresh_jobs(store)
        if state != "finished":
            message = (read_json(status_file) or {}).get("message", "")
            raise MgiError(f"The search job {state}: {message} (log: {run_dir / 'job.log'})")
        study = get_study(store, request.study)
        trials, best = study_trials(store, request.study), best_trial(store, request.study)
        best_config = None if best is None else trial_config(study["base_config"],
                                                             best["params"])
        version = None
        if args.register:
            if best_config is None:
                raise MgiError(f"No trial of study {request.study} completed: there is no "
                               "best configuration to train.")
            version = _run_inline(store, "train", args.dataset, best_config,
                                  show_progress=not args.json)
    if args.json:
        print(json.dumps({"study": request.study, "dataset": args.dataset,
                          "trials": trials, "best": best, "version": version,
                          "best_config": best_config and best_config.to_dict()},
                         default=str, indent=2))
        return 0
    complete = sum(t["state"] == "complete" for t in trials)
    print(f"Study {request.study} on {args.dataset}: {complete} complete trial(s) of "
          f"{request.n_trials} asked; value = validation objective Σ λ·loss (lower is better)")
    print(_trials_table(trials))
    if best is None:
        print("No complete trial yet: run the search again to continue it.")
    else:
        print(f"best: trial {best['trial']} ({best['value']:.4f}): "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in best["params"].items()))
    if version is not None:
        print(version)
    return 0


def embed_config(args: argparse.Namespace) -> TrainConfig:
    """The ``embed`` command's config: the pre-trained encoder at the length given."""
    return TrainConfig(embed_max_seq_length=args.max_seq_length)


def embed_engine(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``embed`` command's engine options (None: this process)."""
    if args.engine == "local":
        for option in ("address", "actors", "stage"):
            if getattr(args, option) is not None:
                raise MgiError(f"--{option} is an option of --engine ray.")
        return None
    if args.actors is not None and args.actors < 1:
        raise MgiError("--actors must be at least 1.")
    return {"name": "ray", "address": args.address, "actors": args.actors,
            "stage": args.stage}


def cmd_embed(args: argparse.Namespace) -> int:
    config = embed_config(args)
    engine = embed_engine(args)
    with _open_store(args.db) as store:
        print(_run_inline(store, "embed", args.dataset, config, version=args.version,
                          engine=engine))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mgi_core.data.export import export_dataset

    with _open_store(args.db) as store:
        rows = export_dataset(store, args.dataset, args.to, args.version)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for name, n in rows.items():
            print(f"{n:>12,}  {name}/ under {args.to}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from mgi_core.jobs.manager import refresh_jobs
    from mgi_core.store.versions import list_versions

    with _open_store(args.db) as store:
        refresh_jobs(store)
        rows = list_versions(store)
    keys = ("version", "kind", "dataset", "strategy", "status", "dim", "device", "metrics",
            "created_at", "message", "forgotten_reviews")
    rows = [{k: r[k] for k in keys} for r in rows]
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("No model versions yet: python -m mgi_core train --dataset NAME")
    for r in rows:
        m = r["metrics"] or {}
        headline = ", ".join(f"{k}={m[k]:.3f}" for k in ("overall/auc", "category/macro_f1",
                                                         "subcategory/macro_f1",
                                                         "match/recall@10") if k in m)
        forgotten = (f" [trained with forgotten data: {r['forgotten_reviews']:,} reviews]"
                     if r["forgotten_reviews"] else "")
        print(f"{r['version']:<8} {r['kind']:<10} {r['dataset'] or '-':<12} "
              f"{r['strategy'] or '-':<7} {r['status']:<9} {headline}{forgotten}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from mgi_core.jobs.manager import list_jobs, refresh_jobs

    with _open_store(args.db) as store:
        refresh_jobs(store)  # a job whose process ended shows as failed
        rows = list_jobs(store)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("No jobs yet: python -m mgi_core train --dataset NAME")
        return 0
    print(f"{'job':<12} {'kind':<6} {'version':<8} {'dataset':<12} {'status':<9} {'pid':>7} "
          f"{'started':<19} {'finished':<19} message")
    for r in rows:
        started, finished = (f"{t:%Y-%m-%d %H:%M:%S}" if t else "-"
                             for t in (r["started_at"], r["finished_at"]))
        print(f"{r['job_id']:<12} {r['kind']:<6} {r['version']:<8} {r['dataset']:<12} "
              f"{r['status']:<9} {r['pid'] or '-':>7} {started:<19} {finished:<19} "
              f"{r['message'] or ''}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from mgi_core.jobs.manager import cancel_job

    with _open_store(args.db) as store:
        done = cancel_job(store, args.version, grace_s=args.grace)
    print(f"Cancelled {args.version}. {done}")
    return 0


def _dataset_of(store, version: str, dataset: str | None) -> str:
    from mgi_core.data.datasets import dataset_names
    from mgi_core.store.versions import get_version

    if dataset:
        return dataset
    own = get_version(store, version)["dataset"]
    if own:
        return own
    names = dataset_names(store)
    if len(names) == 1:
        return names[0]
    raise ConfigError(f"Version {version} is not tied to one dataset: pass --dataset "
                      f"({', '.join(names)}).")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mgi_core.evaluation.next_interest import next_interest
    from mgi_core.evaluation.protocol import evaluate
    from mgi_core.ranking.fusion import DEFAULT_SCORERS

    bar = ProgressBar(f"evaluating {args.version} on {args.dataset} ({args.split})",
                      unit="users", enabled=False if args.json else None)
    with _open_store(args.db) as store:
        with bar:
            result = evaluate(store, args.dataset, args.version,
                              tuple(args.scorers or DEFAULT_SCORERS), split=args.split,
                              progress=bar)
        interests = next_interest(store, args.dataset, args.version, split=args.split)
    summary = result.summary()
    if args.json:
        print(json.dumps({"dataset": result.dataset, "version": result.version,
                          "split": result.split, "seconds": result.seconds,
                          "scorers": summary.reset_index().to_dict(orient="records"),
                          "weights": result.weights,
                          "next_interest": interests.to_json()}, default=float, indent=2))
        return 0
    cols = [c for c in ("n_users", "ndcg@10", "recall@10", "mrr", "ndcg@20", "coverage@10")
            if c in summary]
    print(summary[cols].round(4).to_string())
    print("\nNext interest: the held-out item's category (interest) ranked from the train "
          "profile, against baselines")
    print(interests.summary().round(4).to_string())
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mgi_core.evaluation.compare import compare, parse_spec

    with _open_store(args.db) as store:
        dataset = _dataset_of(store, parse_spec(args.b)[0], args.dataset)
        report = compare(store, args.a, args.b, dataset, split=args.split)
    if args.json:
        print(json.dumps({**report.to_dict(), "verdict": report.verdict()}, default=float,
                         indent=2))
        return 0
    print(f"{report.b} vs {report.a} on {dataset} ({args.split}), paired over users")
    print(report.to_frame().round(4).to_string())
    for note in report.notes:
        print(f"note: {note}")
    print(report.verdict())
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from mgi_core.evaluation.ablation import load_ablation, run_ablation

    if args.training:
        return _ablate_training(args)
    given = [f"--{f.replace('_', '-')}" for f in TrainConfig.__dataclass_fields__
             if hasattr(args, f)]
    given += [f"--{o}" for o in ("name", "variants") if getattr(args, o) is not None]
    if given:
        raise MgiError(f"{', '.join(given)}: option(s) of ablate --training only.")
    if args.version is None:
        raise MgiError("ablate needs --version (the version whose feature groups to ablate), "
                       "or --training --dataset NAME to ablate the training options.")
    with _open_store(args.db) as store:
        dataset = _dataset_of(store, args.version, args.dataset)
        if args.stored:
            report = load_ablation(store, dataset, args.version, args.split)
        else:
            bar = ProgressBar(f"ablation of {args.version} on {dataset} ({args.split})",
                              unit="users", enabled=False if args.json else None)
            with bar:
                report = run_ablation(store, dataset, args.version, args.split, progress=bar)
    if args.json:
        print(json.dumps(report.to_dict(), default=float, indent=2))
        return 0
    full = report.full_means()
    print(f"Ablation of {args.version} on {dataset} ({args.split}): each variant against the "
          f"full system (mgi_hybrid), paired over users; Δ = variant − full")
    print("full system: " + ", ".join(f"{m} {v:.4f}" for m, v in full.items()))
    for metric in report.metrics():
        print(f"\n{metric}")
        print(report.metric_table(metric).round(4).to_string())
    print("\n" + report.reference.verdict())
    return 0


def _ablate_training(args: argparse.Namespace) -> int:
    """``ablate --training``: train (inline, like ``train``) and evaluate each variant not yet
    done, or with ``--stored`` read the stored ablation; print one table."""
    from mgi_core.evaluation.training_ablation import (
        load_training_ablation,
        run_training_ablation,
    )

    if args.dataset is None or args.version is not None:
        raise MgiError("ablate --training needs --dataset NAME and takes no --version (each "
                       "variant trains its own).")
    with _open_store(args.db) as store:
        if args.stored:
            report = load_training_ablation(store, args.dataset, args.name, args.split,
                                            args.variants)
        else:
            config = train_config_from_args(args)

            def run_job(kind: str, job_config: TrainConfig, label: str) -> str:
                if not args.json:
                    print(f"{kind} {label}", file=sys.stderr)
                return _run_inline(store, kind, args.dataset, job_config,
                                   show_progress=not args.json)

            bars: list[ProgressBar] = []  # started with the evaluations, after training

            def progress(done: int, total: int) -> None:
                if not bars:
                    bars.append(ProgressBar(f"evaluating the variants on {args.dataset} "
                                            f"({args.split})", unit="users",
                                            enabled=False if args.json else None))
                bars[0](done, total)

            try:
                report = run_training_ablation(store, args.dataset, config, args.variants,
                                               args.name, args.split, progress=progress,
                                               run_job=run_job)
            finally:
                for bar in bars:
                    bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), default=float, indent=2))
        return 0
    n_users = max((r.n_users for r in report.rows), default=0)
    print(f"Training ablation {report.name} on {report.dataset} ({report.split}): the full "
          f"system (mgi_hybrid) of each variant against the reference's, paired over "
          f"{n_users:,} users; Δ = variant − reference [95% CI], Wilcoxon p; val objective: "
          "the fine-tune's own (lower is better)")
    for v in report.variants:
        print(f"  {v.variant:<12} {v.changes}")
    print()
    print(report.table().to_string())
    for notice in report.notices:
        print(f"note: {notice}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from mgi_core.ranking.recommend import recommend

    with _open_store(args.db) as store:
        dataset = _dataset_of(store, args.version, args.dataset)
        out = recommend(store, dataset, args.version, args.user, args.k, args.scorer)
    if args.json:
        print(json.dumps(out, default=float, indent=2))
        return 0
    if out["note"]:
        print(f"note: {out['note']}")
    for rank, item in enumerate(out["items"], 1):
        parts = ", ".join(f"{g} {v:+.2f}" for g, v in
                          sorted(item["parts"].items(), key=lambda kv: -abs(kv[1]))[:3])
        print(f"{rank:>2}. {item['title'] or item['item_id']} [{item['category']}] "
              f"score {item['score']:.2f} ({parts})")
        for m in item["matching_reviews"][:1]:
            text = " ".join(m["text"].split())[:100]
            print(f"    because you wrote: \"{text}…\"")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from mgi_core.profiles.drift import drift
    from mgi_core.profiles.service import user_profile

    moved = None
    with _open_store(args.db) as store:
        dataset = _dataset_of(store, args.version, args.dataset)
        if args.as_of is not None:  # then (the profile as of the date) and now, not stored
            moved = drift(store, dataset, args.version, args.user, args.as_of)
            out = moved.then
        else:
            out = user_profile(store, dataset, args.version, args.user)
    if args.json:
        print(json.dumps(moved.to_dict() if moved else out, default=float, indent=2))
        return 0
    print(f"{out['user_id']} ({out['n_train_reviews']} train reviews"
          f"{', cold' if out['cold'] else ''}) on {dataset} with {args.version}"
          f"{f' as of {moved.as_of}' if moved else ''}")
    for level in ("l1", "l2"):
        for c in out[level][:5]:
            print(f"  {level} {c['category']:<40} affinity {c['affinity']:+.2f} "
                  f"({c['n_reviews']} reviews)")
    for i in out["interests"]:
        print(f"  interest {i['interest']}: {', '.join(i['keywords'])} ({i['n_reviews']})")
    if moved is not None:
        print("\n".join(moved.lines()))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from mgi_core.jobs.forget import find_user, forget

    with _open_store(args.db) as store:
        found = find_user(store, args.user, args.dataset)
        if not args.yes:
            where = ", ".join(f"{n:,} review(s) in {name}" for name, n in found.items())
            if not sys.stdin.isatty():
                raise MgiError(f"forget removes the user's rows for good ({where}): confirm "
                               "with --yes when not running on a terminal.")
            answer = input(f"Forget user {args.user!r} ({where})? This cannot be undone. "
                           "Type the user id again to confirm: ")
            if answer.strip() != args.user:
                print("Not confirmed: nothing was removed.", file=sys.stderr)
                return 2
        report = forget(store, args.user, args.dataset)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print("\n".join(report.lines()))
    return 0


def cmd_run_job(args: argparse.Namespace) -> int:
    from mgi_core.jobs.worker import main as worker_main

    return worker_main(str(args.run_dir))


COMMANDS = {
    "ingest": cmd_ingest, "datasets": cmd_datasets, "load-demo": cmd_load_demo,
    "append": cmd_append, "update": cmd_update, "half-life": cmd_half_life,
    "train": cmd_train, "search": cmd_search, "embed": cmd_embed, "export": cmd_export,
    "versions": cmd_versions,
    "run-job": cmd_run_job,
    "evaluate": cmd_evaluate, "compare": cmd_compare, "ablate": cmd_ablate,
    "recommend": cmd_recommend,
    "profile": cmd_profile, "jobs": cmd_jobs, "cancel": cmd_cancel, "forget": cmd_forget,
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except MgiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
