"""Crash scenarios of jobs: a job whose process died is closed as failed, never stuck.

Every job row records the process that runs it and that process's start time (from the
moment the row is inserted): the CLI process for ``train``/``embed``, the app until
``spawn`` hands the job to its child. A job whose process is gone, or whose pid now belongs
to another process, is failed on the next refresh, and the next job can start.

DuckDB lets one process write the file: while a CLI job runs it holds the database, so the
tests open the store only after that process has ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import JobError
from mgi_core.jobs.manager import active_job, prepare_job, refresh_jobs, start_job
from mgi_core.jobs.run_files import TERMINAL, read_json
from mgi_core.jobs.worker import run_job
from mgi_core.store import Store
from mgi_core.store.schema import MIGRATIONS
from mgi_core.store.versions import get_version
from tests.conftest import ROOT

LINUX = Path("/proc/self/stat").exists()
WAIT_S = 180  # every wait below gives up after this long


@pytest.fixture
def tiny_db(tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A closed database file holding the tiny corpus as dataset 'tiny'; runs go beside it."""
    monkeypatch.delenv("MGI_RUNS", raising=False)
    monkeypatch.delenv("MGI_DB", raising=False)
    csv = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}
    ).to_csv(csv, index=False)
    db = tmp_path / "mgi.duckdb"
    with Store(db) as store:
        ingest_file(store, csv, "tiny")
    return db


def mgi(*args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mgi_core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _model_args(tiny_bert: Path, long: bool = False) -> list[str]:
    """CLI options for the tiny BERT on CPU; ``long`` trains for minutes unless stopped."""
    args = ["--base-model", str(tiny_bert), "--max-seq-length", "16", "--device", "cpu"]
    if long:
        return [*args, "--batch-size", "2", "--epochs", "500"]
    return [*args, "--batch-size", "8", "--epochs", "1", "--max-train-reviews", "16"]


def _config(tiny_bert: Path, long: bool = False) -> TrainConfig:
    base = dict(base_model=str(tiny_bert), batch_size=8, max_seq_length=16, device="cpu",
                lora_rank=2, lora_targets=("query", "value"), max_train_reviews=16)
    if long:
        base.update(epochs=500, patience=500, max_train_reviews=None)
    return TrainConfig(**base)


def _jobs(db: Path) -> list[dict]:
    result = mgi("jobs", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _versions(db: Path) -> dict[str, dict]:
    result = mgi("versions", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return {v["version"]: v for v in json.loads(result.stdout)}


def _wait_training(run_dir: Path, proc: subprocess.Popen | None = None) -> None:
    """Until the run's status.json says it is training (the process must not end first)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        status = read_json(run_dir / "status.json") or {}
        if status.get("phase") == "training":
            return
        assert status.get("state") not in TERMINAL, status
        assert proc is None or proc.poll() is None, f"the job process ended: {proc.returncode}"
        time.sleep(0.05)
    raise TimeoutError(f"{run_dir} did not start training within {WAIT_S} s")


def _wait_closed(store: Store, version: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        refresh_jobs(store)
        status = store.cursor().execute(
            "SELECT status FROM jobs WHERE version = ? ORDER BY started_at DESC", [version]
        ).fetchone()[0]
        if status != "running":
            return status
        time.sleep(0.2)
    raise TimeoutError(version)


def _job_row(store: Store, version: str) -> dict:
    cur = store.cursor().execute(
        "SELECT * FROM jobs WHERE version = ? ORDER BY started_at DESC LIMIT 1", [version]
    )
    return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))


PREPARE_THEN = textwrap.dedent("""
    import os, signal, sys, time
    from mgi_core.config import TrainConfig
    from mgi_core.jobs.manager import prepare_job
    from mgi_core.store import Store

    store = Store(sys.argv[1])
    version, _ = prepare_job(store, "train", "tiny", TrainConfig(base_model=sys.argv[2]))
    store.close()
    print(version, flush=True)
    if sys.argv[3] == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # like an app killed before spawn()
    time.sleep(600)  # like a CLI job busy training (without holding the file here)
""")


def _prepare_and_die(db: Path, tiny_bert: Path) -> str:
    """Register a job from a process that is killed before it starts the job."""
    result = subprocess.run([sys.executable, "-c", PREPARE_THEN, str(db), str(tiny_bert), "die"],
                            cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == -signal.SIGKILL, result.stderr
    return result.stdout.strip()


def test_a_cli_job_killed_with_sigkill_is_failed_and_the_next_job_starts(tiny_db, tiny_bert):
    log = tiny_db.parent / "cli.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mgi_core", "train", "--dataset", "tiny", "--db",
             str(tiny_db), *_model_args(tiny_bert, long=True)],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
        )
    try:
        _wait_training(tiny_db.parent / "runs" / "v1", proc)
    finally:
        proc.kill()  # SIGKILL: no handler, no clean-up, the row stays 'running'
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, log.read_text()

    # The next job starts at once (before, it failed: "A train job (v1 on tiny) is running").
    result = mgi("train", "--dataset", "tiny", "--db", str(tiny_db), *_model_args(tiny_bert))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "v2"

    v2, v1 = _jobs(tiny_db)  # newest first
    assert (v2["version"], v2["status"], v2["kind"], v2["dataset"]) == ("v2", "finished",
                                                                       "train", "tiny")
    assert (v1["version"], v1["status"]) == ("v1", "failed")
    assert "ended without finishing" in v1["message"] and v1["pid"] == proc.pid
    assert v1["finished_at"] and v1["started_at"] <= v2["started_at"]
    versions = _versions(tiny_db)
    assert versions["v1"]["status"] == "failed"  # never offered
    assert versions["v2"]["status"] == "ready"


def test_a_cli_job_stopped_with_sigterm_ends_cancelled(tiny_db, tiny_bert) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mgi_core", "train", "--dataset", "tiny", "--db", str(tiny_db),
         *_model_args(tiny_bert, long=True)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_training(tiny_db.parent / "runs" / "v1", proc)
        proc.terminate()  # what `cancel` sends first: the job stops after this step
        _out, err = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 2 and "The train job cancelled" in err
    [v1] = _jobs(tiny_db)
    assert v1["status"] == "cancelled"
    assert _versions(tiny_db)["v1"]["status"] == "cancelled"


def test_a_dashboard_job_killed_with_sigkill_is_failed_and_the_next_job_starts(
    tiny_db, tiny_bert
) -> None:
    with Store(tiny_db) as store:
        version = start_job(store, "train", "tiny", _config(tiny_bert, long=True))
        job = _job_row(store, version)
        assert job["detached"] and job["pid"] != os.getpid()  # the child, in its own session
        _wait_training(Path(job["run_dir"]))
        os.killpg(job["pid"], signal.SIGKILL)
        assert _wait_closed(store, version) == "failed"
        failed = get_version(store, version, usable=False)
        assert failed["status"] == "failed" and "ended without finishing" in failed["message"]

        following = start_job(store, "train", "tiny", _config(tiny_bert))
        assert following == "v2" and _wait_closed(store, following) == "finished"
        assert get_version(store, following)["status"] == "ready"


def test_a_job_whose_app_died_before_spawning_it_is_failed_not_stuck(tiny_db, tiny_bert):
    version = _prepare_and_die(tiny_db, tiny_bert)
    with Store(tiny_db) as store:
        refresh_jobs(store)
        assert active_job(store) is None  # its owner is gone
        job = _job_row(store, version)
        assert job["status"] == "failed" and "ended without finishing" in job["message"]
        assert get_version(store, version, usable=False)["status"] == "failed"
        # The next job starts and finishes (here in this process, as the CLI runs one).
        _base, run_dir = prepare_job(store, "embed", "tiny", _config(tiny_bert))
        assert run_job(run_dir) == "finished"
        refresh_jobs(store)
        assert get_version(store, "base")["status"] == "ready"


@pytest.mark.skipif(not LINUX, reason="start times come from /proc (pid-only elsewhere)")
@pytest.mark.parametrize("owner", ["this process", "pid 1"])
def test_a_reused_pid_does_not_keep_a_dead_job_running(tiny_db, tiny_bert, owner) -> None:
    with Store(tiny_db) as store:
        version, _ = prepare_job(store, "train", "tiny", _config(tiny_bert))
        job = _job_row(store, version)
        assert (job["pid"], job["detached"]) == (os.getpid(), False)
        assert refresh_jobs(store) == [] and active_job(store)["version"] == version
        # The recorded process ended and its pid went to another (live) process: same pid,
        # another start time.
        pid = os.getpid() if owner == "this process" else 1
        started = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
        store.cursor().execute("UPDATE jobs SET pid = ?, pid_start = ? WHERE job_id = ?",
                               [pid, started + 1, job["job_id"]])
        assert refresh_jobs(store) == [version]
        assert _job_row(store, version)["status"] == "failed"
        assert get_version(store, version, usable=False)["status"] == "failed"
        assert active_job(store) is None


def test_cancel_marks_a_job_whose_process_is_gone(tiny_db, tiny_bert) -> None:
    version = _prepare_and_die(tiny_db, tiny_bert)
    result = mgi("cancel", version, "--db", str(tiny_db))
    assert result.returncode == 0, result.stderr
    assert f"Cancelled {version}" in result.stdout and "already ended" in result.stdout
    [job] = _jobs(tiny_db)
    assert (job["version"], job["status"]) == (version, "cancelled")
    assert _versions(tiny_db)[version]["status"] == "cancelled"
    listing = mgi("jobs", "--db", str(tiny_db))
    assert listing.returncode == 0 and version in listing.stdout and "cancelled" in listing.stdout


def test_cancel_of_an_unknown_or_finished_version_exits_2(tiny_db, tiny_bert) -> None:
    result = mgi("cancel", "v9", "--db", str(tiny_db))
    assert result.returncode == 2
    assert result.stderr.startswith("error: No running job for version 'v9'")
    assert "Traceback" not in result.stderr
    version = _prepare_and_die(tiny_db, tiny_bert)
    assert mgi("cancel", version, "--db", str(tiny_db)).returncode == 0
    again = mgi("cancel", version, "--db", str(tiny_db))
    assert again.returncode == 2 and "its last job was cancelled" in again.stderr


def test_cancel_signals_a_live_cli_job_process_alone(tiny_db, tiny_bert) -> None:
    # The job's process shares this test's process group (as a CLI job shares its shell's):
    # cancel must signal that pid, never its group (which would end the test run too).
    owner = subprocess.Popen([sys.executable, "-c", PREPARE_THEN, str(tiny_db), str(tiny_bert),
                              "live"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        version = owner.stdout.readline().strip()
        assert os.getpgid(owner.pid) == os.getpgrp()
        result = mgi("cancel", version, "--db", str(tiny_db), "--grace", "10")
        owner.wait(timeout=30)
    finally:
        owner.kill()
        owner.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert owner.returncode == -signal.SIGTERM
    assert f"SIGTERM to process {owner.pid}" in result.stdout
    [job] = _jobs(tiny_db)
    assert job["status"] == "cancelled"


def test_cancelling_a_job_of_this_process_signals_nothing(tiny_db, tiny_bert) -> None:
    # The app cancels a job it prepared but has not spawned: the owner is the app itself.
    code = textwrap.dedent("""
        import sys
        from mgi_core.config import TrainConfig
        from mgi_core.jobs.manager import cancel_job, prepare_job
        from mgi_core.store import Store

        store = Store(sys.argv[1])
        version, _ = prepare_job(store, "train", "tiny", TrainConfig(base_model=sys.argv[2]))
        print(cancel_job(store, version, grace_s=2))
        print(store.cursor().execute("SELECT status FROM jobs").fetchone()[0])
    """)
    result = subprocess.run([sys.executable, "-c", code, str(tiny_db), str(tiny_bert)],
                            cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 0, result.stderr  # no signal reached it
    said, status = result.stdout.strip().splitlines()
    assert "this process" in said and status == "cancelled"


def test_a_job_the_app_could_not_spawn_is_failed_not_stuck(
    tiny_db, tiny_bert, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tiny_db.parent / "no-python"))
    with Store(tiny_db) as store:
        with pytest.raises(JobError, match="could not be started"):
            start_job(store, "train", "tiny", _config(tiny_bert))
        assert active_job(store) is None
        assert _job_row(store, "v1")["status"] == "failed"
        assert get_version(store, "v1", usable=False)["status"] == "failed"


def test_a_job_left_running_by_a_cli_before_the_upgrade_is_failed_on_upgrade(tmp_path):
    # Schema 3 did not record the CLI's process: its killed job kept pid NULL for ever.
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
    for migration in MIGRATIONS[:3]:
        con.execute(migration)
    con.execute("INSERT INTO schema_info VALUES (3)")
    con.execute(
        "INSERT INTO model_versions (version, kind, dataset, base_model, config, "
        "library_versions, status) VALUES ('v1', 'fine-tuned', 'd', 'm', '{}', '{}', "
        "'running'), ('v2', 'fine-tuned', 'd', 'm', '{}', '{}', 'running')")
    con.execute(
        "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status, pid) VALUES "
        "('cli', 'train', 'v1', 'd', '/nowhere', 'running', NULL), "
        "('child', 'train', 'v2', 'd', '/nowhere', 'running', 4242)")
    con.close()
    with Store(path) as store:
        rows = dict(store.cursor().execute(
            "SELECT job_id, (status, detached) FROM jobs").fetchall())
        # The CLI held this file while it ran, so it has ended; a dashboard child (pid
        # recorded, own session) may still run and is left to the liveness check.
        assert rows == {"cli": ("failed", False), "child": ("running", True)}
        assert get_version(store, "v1", usable=False)["status"] == "failed"
        assert get_version(store, "v2", usable=False)["status"] == "running"
