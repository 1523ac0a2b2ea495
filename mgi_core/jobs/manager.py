"""Start, follow, cancel and register background jobs (app side; owns the database).

A job runs ``python -m mgi_core run-job RUN_DIR`` in its own session, so closing the
browser tab or restarting a page does not stop it. The app polls its run folder
(:func:`refresh_jobs`) and registers a finished run as a model version in one transaction.
One job runs at a time per database.

Every job row names the process that runs it, from the moment it is inserted: the process
that prepared it (the CLI runs the job inline; the app until :func:`spawn` hands it to a
child), with that process's start time. A job whose process is gone, or whose pid now
belongs to another process, is closed as failed by :func:`refresh_jobs`, so a killed job
never blocks the next one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import duckdb

from mgi_core.config import TrainConfig
from mgi_core.data.snapshot import export_snapshot
from mgi_core.errors import JobError
from mgi_core.jobs.run_files import TERMINAL, RunFiles, read_events, read_json, write_json_atomic
from mgi_core.store import Store
from mgi_core.store import embedding_updates as update_rows
from mgi_core.store import jobs as job_rows
from mgi_core.store import search as search_rows
from mgi_core.store.datasets import get_dataset
from mgi_core.store.embeddings import embedding_dim
from mgi_core.store.jobs import FinishedRun, TrainingVersion
from mgi_core.store.versions import BASE_VERSION, get_version, next_version_id

log = logging.getLogger(__name__)


def runs_root(store: Store) -> Path:
    """Where run folders go: $MGI_RUNS, else a ``runs`` folder beside the database file."""
    env = os.environ.get("MGI_RUNS")
    if env:
        return Path(env)
    parent = Path(".") if str(store.path) == ":memory:" else store.path.parent
    return parent / "runs"


_HAVE_PROC = Path("/proc/self/stat").exists()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of ``pid`` from /proc/PID/stat, or None (no /proc, no process).

    The start time is field 22, clock ticks after boot: it tells a process from a later
    one given the same pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "pid (comm)": fields[0] is field 3
    return fields[0], int(fields[19])


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot); None where there is no /proc."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def owner_alive(pid: int | None, started: int | None) -> bool:
    """Whether the process recorded as running a job still runs.

    It must exist, not be a zombie and, when its start time was recorded, have started
    then (so a pid reused by another process does not count). Without /proc (macOS,
    Windows) only the pid is checked.
    """
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap our own finished child
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child (the CLI, or another app process, started it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _proc_stat(pid)
    if stat is None:
        return not _HAVE_PROC  # with /proc: it ended meanwhile; without: pid-only
    state, start = stat
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return started is None or start == started


def active_job(store: Store) -> dict[str, Any] | None:
    """The running job, if any: job_id, kind, version, dataset, pid, run_dir, started_at.

    A pure read of the states as last refreshed: call :func:`refresh_jobs` first for the
    current state (a job whose process ended is then no longer running).
    """
    return job_rows.running_job(store)


# Serialises, within this process, every check-then-write on the jobs table: several browser
# sessions refresh jobs and start them from their own threads. Without it two sessions could
# register the same finished run twice, or both pass "no job is running" and start two.
_JOBS_LOCK = threading.RLock()


def prepare_job(store: Store, kind: str, dataset: str, config: TrainConfig,
                processes: int = 1, version: str | None = None,
                engine: dict[str, Any] | None = None,
                search: dict[str, Any] | None = None) -> tuple[str, Path]:
    """Register a new job and write its run folder; return (version, run_dir).

    ``processes`` > 1 (training only): :func:`spawn` starts it under torchrun, that many
    data-parallel processes on this machine. ``version`` (embedding only): embed with that
    ready version's encoder instead of the pre-trained one (``base``). ``engine`` (embedding
    only): ``{"name": "ray", "address": …, "stage": …, "actors": …}`` embeds on Ray Data
    (``mgi_core.jobs.worker``); default: in the job's own process.

    Kind ``search`` (``mgi_core.jobs.search``): ``search`` is a ``SearchRequest`` as a dict
    (study, n_trials, timeout_s, space; ``config`` is the trials' base). Its snapshot holds
    the train and validation reviews only, its study continues in
    ``<runs>/studies/<study>.journal``, and the returned "version" is the study's name: a
    search makes no model version (``cancel STUDY`` stops it).

    Raises:
        JobError: another job is running on this database, a bad ``processes``, a version
            that cannot embed, or a study started with other settings.
        ConfigError: a bad search request (study name, trials, space).
        DatasetNotFoundError: unknown dataset.
        ModelVersionNotFound: no such version.
    """
    with _JOBS_LOCK:
        return _prepare_job(store, kind, dataset, config, processes, version, engine, search)


MAX_PROCESSES = 64


def _prepare_job(store: Store, kind: str, dataset: str, config: TrainConfig,
                 processes: int = 1, version: str | None = None,
                 engine: dict[str, Any] | None = None,
                 search: dict[str, Any] | None = None) -> tuple[str, Path]:
    if kind not in ("train", "embed", "search", "update"):
        raise JobError(f"Unknown job kind {kind!r}; use train, embed, search or update.")
    if not 1 <= int(processes) <= MAX_PROCESSES or (kind != "train" and processes != 1):
        raise JobError(f"processes must be 1 to {MAX_PROCESSES}, and 1 for an embed or "
                       f"search job (got {processes}).")
    if (kind == "search") != (search is not None):
        raise JobError("A search job needs its search settings, and only a search job "
                       "takes them.")
    get_dataset(store, dataset)
    refresh_jobs(store)  # a job whose process has ended does not block this one
    running = active_job(store)
    if running is not None:
        raise JobError(
            f"A {running['kind']} job ({running['version']} on {running['dataset']}) is "
            "running. One job runs at a time: wait for it to finish or cancel it."
        )
    if kind == "train" and (version is not None or engine):
        raise JobError("A training job makes a new version, on this machine's processes: "
                       "version and engine are options of an embedding job.")
    if kind == "search":
        if version is not None or engine:
            raise JobError("A search job trains in its own process: version and engine are "
                           "options of an embedding job.")
        return _prepare_search(store, dataset, config, search or {})
    if kind == "update":
        if engine:
            raise JobError("An update embeds the appended reviews in its own process: "
                           "engine is an option of an embedding job.")
        return _prepare_update(store, dataset, config, version)
    if kind == "train":
        version = next_version_id(store)
        name = version
    else:
        version = version or BASE_VERSION
        if version != BASE_VERSION:
            config = _embed_with_version(store, version, config)
        name = f"{version}-{dataset}-{uuid.uuid4().hex[:6]}"
    run_dir = _make_run_dir(store, name)
    files = RunFiles(run_dir)
    data_hash = export_snapshot(store, dataset, files.snapshot)
    job_id = uuid.uuid4().hex[:12]
    write_json_atomic(files.job, {
        "job_id": job_id, "kind": kind, "version": version, "dataset": dataset,
        "config": config.to_dict(), "data_hash": data_hash, "processes": int(processes),
        "engine": dict(engine or {"name": "local"}),
    })
    training = TrainingVersion(config.base_model, config.strategy, config.to_json(),
                               data_hash) if kind == "train" else None
    # Until spawn() hands the job to a child, this process runs it (the CLI runs it
    # inline): if this process dies, refresh_jobs fails the job instead of waiting.
    job_rows.insert_job(store, job_id=job_id, kind=kind, version=version, dataset=dataset,
                        run_dir=run_dir, pid=os.getpid(),
                        pid_start=process_start_time(os.getpid()), training=training)
    return version, run_dir


def _make_run_dir(store: Store, name: str) -> Path:
    run_dir = runs_root(store).resolve() / name
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError as exc:
        raise JobError(
            f"The run folder {run_dir} already exists: another database keeps its runs in "
            "the same folder. Give each database its own folder, or set MGI_RUNS."
        ) from exc
    return run_dir


def _prepare_search(store: Store, dataset: str, config: TrainConfig,
                    search: dict[str, Any]) -> tuple[str, Path]:
    """The run folder of a search job (train and validation reviews only) and its row."""
    from mgi_core.jobs import search as searching

    request = searching.SearchRequest.from_dict(search)
    searching.distributions(request.space, config)  # a bad space fails here, not in the job
    stored = search_rows.get_study(store, request.study)
    if stored is not None and stored["dataset"] != dataset:
        raise JobError(f"Study {request.study!r} is a search on dataset {stored['dataset']!r}; "
                       "give the search on this dataset another name (--study NAME).")
    journal = searching.journal_path(runs_root(store).resolve(), request.study)
    data_hash = search_rows.search_data_hash(store, dataset)
    searching.check_continuable(journal, request.study, dataset, config, request.space,
                                data_hash)
    run_dir = _make_run_dir(store, f"search-{request.study}-{uuid.uuid4().hex[:6]}")
    files = RunFiles(run_dir)
    tmp = files.snapshot.with_suffix(".parquet.tmp")
    search_rows.export_search_snapshot(store, dataset, tmp)
    tmp.replace(files.snapshot)
    job_id = uuid.uuid4().hex[:12]
    write_json_atomic(files.job, {
        "job_id": job_id, "kind": "search", "version": request.study, "dataset": dataset,
        "config": config.to_dict(), "data_hash": data_hash, "processes": 1,
        "engine": {"name": "local"},
        "search": {**request.to_dict(), "journal": str(journal)},
    })
    job_rows.insert_job(store, job_id=job_id, kind="search", version=request.study,
                        dataset=dataset, run_dir=run_dir, pid=os.getpid(),
                        pid_start=process_start_time(os.getpid()))
    return request.study, run_dir


def _prepare_update(store: Store, dataset: str, config: TrainConfig,
                    version: str | None) -> tuple[str, Path]:
    """The run folder of an update job: the reviews of ``dataset`` that ``version`` (default:
    the dataset's current version) has not embedded, appended since, and the items among
    theirs that need a title vector (no train review, no vector of the version)."""
    from mgi_core.profiles.incremental import current_version

    version = version or current_version(store, dataset)
    if version is None:
        raise JobError(f"No version has embedded {dataset!r} yet, so there is nothing to "
                       "update: embed it (Train page, or python -m mgi_core embed).")
    d = embedding_dim(store, version, dataset)
    info = get_version(store, version)
    checkpoint = None
    if version != BASE_VERSION or info.get("artefact_dir"):
        config = _embed_with_version(store, version, config)
        checkpoint = str(Path(config.base_model))
    else:
        own = info.get("config") or {}
        own = json.loads(own) if isinstance(own, str) else own
        config = dataclasses.replace(config, base_model=own.get("base_model",
                                                                config.base_model))
    run_dir = _make_run_dir(store, f"update-{version}-{dataset}-{uuid.uuid4().hex[:6]}")
    files = RunFiles(run_dir)
    n = update_rows.export_missing(store, version, dataset, d, files.snapshot)
    if n == 0:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise JobError(f"{version} has embedded every review of {dataset!r}: nothing to "
                       "update.")
    job_id = uuid.uuid4().hex[:12]
    write_json_atomic(files.job, {
        "job_id": job_id, "kind": "update", "version": version, "dataset": dataset,
        "config": config.to_dict(), "data_hash": "", "processes": 1,
        "engine": {"name": "local"}, "checkpoint": checkpoint,
        "cold_items": update_rows.items_needing_title_vectors(store, version, dataset, d),
    })
    job_rows.insert_job(store, job_id=job_id, kind="update", version=version,
                        dataset=dataset, run_dir=run_dir, pid=os.getpid(),
                        pid_start=process_start_time(os.getpid()))
    return version, run_dir


def _embed_with_version(store: Store, version: str, config: TrainConfig) -> TrainConfig:
    """``config`` with the encoder of ready version ``version`` (its checkpoint folder) and,
    unless the caller set one, that version's own embedding length."""
    from mgi_core.encoder.checkpoint import CHECKPOINT_DIR, checkpoint_is_usable

    info = get_version(store, version)  # raises unless it exists and is ready
    if not info.get("artefact_dir"):
        raise JobError(f"Version {version!r} has no model folder to embed with.")
    run_dir = Path(info["artefact_dir"])
    if not checkpoint_is_usable(run_dir):
        raise JobError(f"Version {version!r} has no usable checkpoint in {run_dir}; train "
                       "it again.")
    own_config = info.get("config") or {}
    if isinstance(own_config, str):
        own_config = json.loads(own_config)
    own = own_config.get("embed_max_seq_length")
    length = config.embed_max_seq_length
    if length == TrainConfig().embed_max_seq_length and own:
        length = int(own)
    return dataclasses.replace(config, base_model=str(run_dir / CHECKPOINT_DIR),
                               embed_max_seq_length=length)


def spawn(store: Store, run_dir: Path) -> int:
    """Start the job of ``run_dir`` in a child process in its own session; return its pid."""
    files = RunFiles(run_dir)
    processes = int((read_json(files.job) or {}).get("processes", 1))
    log_fh = open(files.log, "ab")  # noqa: SIM115 - handed to the child
    # The installed package (``pip install -e .`` by make setup, or a wheel) is importable in
    # the child as it is here: no PYTHONPATH, and the caller's working folder, so relative
    # paths in the job mean what they meant to the caller.
    proc = subprocess.Popen(
        job_command(run_dir, processes),
        stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log_fh.close()
    job_rows.set_job_process(store, run_dir, proc.pid, process_start_time(proc.pid))
    return proc.pid


def job_command(run_dir: Path, processes: int = 1) -> list[str]:
    """The child's command line: ``python -m mgi_core run-job RUN_DIR``, under torchrun
    (``torch.distributed.run --standalone``: a rendezvous on this machine, a free port)
    when ``processes`` > 1. torchrun records the workers' exits; a failing worker stops
    the others."""
    job = [sys.executable, "-m", "mgi_core", "run-job", str(run_dir)]
    if processes <= 1:
        return job
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *job[1:]]


def start_job(store: Store, kind: str, dataset: str, config: TrainConfig | None = None,
              processes: int = 1, search: dict[str, Any] | None = None,
              version: str | None = None) -> str:
    """Prepare and spawn a job; return the version it will produce (a search: its study).

    Raises:
        JobError: another job is running, a bad ``processes``, or the child process could
            not be started (the job is then closed as failed).
    """
    with _JOBS_LOCK:
        version, run_dir = prepare_job(store, kind, dataset, config or TrainConfig(),
                                       processes, version=version, search=search)
        try:
            spawn(store, run_dir)
        except OSError as exc:
            job_id = job_rows.job_id_of_run(store, run_dir)
            message = f"The job process could not be started: {exc}"
            job_rows.close_job(store, job_id, kind, version, "failed", message)
            raise JobError(f"{message}. See {run_dir / 'job.log'}.") from exc
    return version


def job_progress(run_dir: str | Path) -> dict[str, Any]:
    """status.json of a run (state, phase, epoch, step, eta, losses) plus its events."""
    files = RunFiles(Path(run_dir))
    status = read_json(files.status) or {"state": "running", "phase": "starting"}
    return {**status, "events": read_events(files.metrics)}


def refresh_jobs(store: Store) -> list[str]:
    """Bring every running job's state up to date; register finished runs.

    Serialised within the process (several browser sessions may call it at once), so a
    finished run is registered exactly once. Returns the versions whose state changed.
    """
    with _JOBS_LOCK:
        return _refresh_jobs(store)


def _refresh_jobs(store: Store) -> list[str]:
    changed = []
    for job_id, kind, version, dataset, pid, pid_start, detached, run_dir in (
        job_rows.running_jobs(store)
    ):
        status = read_json(RunFiles(Path(run_dir)).status) or {}
        state = status.get("state")
        if state not in TERMINAL:
            if pid is None or owner_alive(pid, pid_start):
                continue  # running (no pid: a row written by hand, nothing to check)
            state, status["message"] = "failed", _ended_message(pid, detached, run_dir)
        if state == "finished":
            try:
                register_run(store, job_id, kind, version, dataset, Path(run_dir), status)
            except (OSError, ValueError, duckdb.Error) as exc:  # a damaged run folder
                job_rows.close_job(store, job_id, kind, version, "failed",
                                   f"Registering the run failed: {exc}")
        else:
            job_rows.close_job(store, job_id, kind, version, state, status.get("message"))
        changed.append(version)
    return changed


def _ended_message(pid: int, detached: bool, run_dir: str) -> str:
    if detached:
        return ("The job process ended without finishing (it was killed or crashed); "
                f"see {Path(run_dir) / 'job.log'}.")
    return (f"The process that ran this job (PID {pid}: the command line, or the app before "
            "it started the job) ended without finishing it (it was killed or crashed).")


def register_run(store: Store, job_id: str, kind: str, version: str, dataset: str,
                 run_dir: Path, status: dict[str, Any]) -> None:
    """Make a finished run a usable version: embeddings, training log, metrics (atomic).
    A search stores its study and every trial instead (``store.search``)."""
    if kind == "search":
        from mgi_core.jobs.search import read_study_file

        search_rows.register_search(store, job_id, *read_study_file(run_dir))
        return
    files = RunFiles(run_dir)
    if kind == "update":
        from mgi_core.profiles.incremental import apply_update

        result = apply_update(
            store, version, dataset, files.review_embeddings,
            files.head_probs if files.head_probs.exists() else None,
            files.item_embeddings if files.item_embeddings.exists() else None)
        job_rows.close_job(store, job_id, kind, version, "finished", result.summary())
        return
    from mgi_core.encoder.checkpoint import checkpoint_is_usable  # torch only when needed

    if kind == "train" and not checkpoint_is_usable(run_dir):
        raise ValueError("the run has no complete checkpoint")
    config_info = read_json(files.config) or {}
    job = read_json(files.job) or {}
    if kind == "embed":
        run = FinishedRun(
            job_id, kind, version, dataset, int(status["dim"]), files.review_embeddings_to_load(),
            files.item_embeddings, status.get("device"), _library_versions_light(),
            job_config=job.get("config") or {},
        )
    else:
        manifest = read_json(run_dir / "checkpoint" / "mgi.json") or {}
        run = FinishedRun(
            job_id, kind, version, dataset, int(status["dim"]), files.review_embeddings_to_load(),
            files.item_embeddings, status.get("device"),
            config_info.get("library_versions", {}),
            metrics={**status.get("val_metrics", {}), "best_epoch": status.get("best_epoch"),
                     "samples_per_s": status.get("samples_per_s")},
            message="; ".join(config_info.get("notices", [])) or None,
            heads=manifest.get("vocab", {}),
            head_probs=files.head_probs if files.head_probs.exists() else None,
            log_rows=list(_log_rows(version, read_events(files.metrics))),
        )
    job_rows.register_finished_run(store, run)


def _library_versions_light() -> dict[str, str]:
    import duckdb

    import mgi_core

    return {"mgi": mgi_core.__version__, "duckdb": duckdb.__version__}


def _log_rows(version: str, events: list[dict[str, Any]]):
    for e in events:
        if e["kind"] == "step":
            for task, value in e["loss"].items():
                yield (version, e["step"], e["epoch"], f"loss/{task}", value)
            yield (version, e["step"], e["epoch"], "loss/total", e["loss_total"])
            for task, value in e.get("weights", {}).items():
                yield (version, e["step"], e["epoch"], f"weight/{task}", value)
            if "rank_budget" in e:
                yield (version, e["step"], e["epoch"], "adalora/rank_budget", e["rank_budget"])
            if "adv_loss" in e:
                yield (version, e["step"], e["epoch"], "loss/adversarial", e["adv_loss"])
        elif e["kind"] == "epoch":
            for name, value in e["metrics"].items():
                yield (version, e["step"], e["epoch"], f"val/{name}", value)


def list_jobs(store: Store) -> list[dict[str, Any]]:
    """Every job, newest first: job_id, kind, version, dataset, status, pid, started_at,
    finished_at, message. A pure read: call :func:`refresh_jobs` first so that a job whose
    process ended shows as failed."""
    return job_rows.list_jobs(store)


_LAST_JOB = {"finished": "finished", "failed": "failed", "cancelled": "was cancelled"}


def cancel_job(store: Store, version: str, grace_s: float = 30.0) -> str:
    """Stop the running job of ``version`` and mark it cancelled; return what was done.

    A live job gets SIGTERM (to its process group if it is a child in its own session,
    else to its process alone) and SIGKILL after ``grace_s``. A job whose process has
    ended, or one this process prepared but has not started, is only marked. This process
    and its group are never signalled.

    Raises:
        JobError: no job of ``version`` is running.
    """
    job = job_rows.running_job_of_version(store, version)
    if job is None:
        last = job_rows.last_job_status(store, version)
        why = f"its last job {_LAST_JOB.get(last, last)}" if last else "no job made it"
        raise JobError(f"No running job for version {version!r}: {why}. "
                       "List the jobs with: python -m mgi_core jobs")
    pid, pid_start = job.pid, job.pid_start
    if pid is None:
        done = "No process was recorded for it; marked it cancelled."
    elif not owner_alive(pid, pid_start):
        done = f"Its process (PID {pid}) had already ended; marked it cancelled."
    elif pid == os.getpid():
        done = "It had not started (this process prepared it); marked it cancelled."
    else:
        done = _stop_process(pid, pid_start, job.detached, grace_s)
    job_rows.close_job(store, job.job_id, job.kind, version, "cancelled",
                       "Cancelled by the user.")
    return done


def _stop_process(pid: int, pid_start: int | None, detached: bool, grace_s: float) -> str:
    """SIGTERM, then SIGKILL after ``grace_s``: to the group of a child that leads its own
    session, else to ``pid`` alone (a CLI job shares its shell's group, maybe ours)."""
    try:
        group = detached and os.getpgid(pid) == pid != os.getpgrp()
    except ProcessLookupError:
        return f"Its process (PID {pid}) had already ended; marked it cancelled."
    target = f"process group {pid}" if group else f"process {pid}"

    def send(sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and owner_alive(pid, pid_start):
        time.sleep(0.2)
    if not owner_alive(pid, pid_start):
        return f"Sent SIGTERM to {target}; it stopped."
    send(signal.SIGKILL)
    return f"Sent SIGTERM to {target}; it did not stop within {grace_s:g} s, so sent SIGKILL."
