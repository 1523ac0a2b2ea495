"""A run folder that says 'finished' but is damaged (embeddings missing) fails its job
cleanly on refresh: no exception escapes, the next job can start."""

from __future__ import annotations

from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.jobs.manager import active_job, prepare_job, refresh_jobs
from mgi_core.jobs.run_files import RunFiles, write_json_atomic
from tests.conftest import small_rows, write_csv


def test_a_finished_run_without_embeddings_fails_its_job(store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    ingest_file(store, write_csv(tmp_path / "s.csv", small_rows()), "s")
    _version, run_dir = prepare_job(store, "embed", "s", TrainConfig())
    write_json_atomic(RunFiles(run_dir).status, {"state": "finished", "dim": 8})
    refresh_jobs(store)  # must not raise
    status, message = store.cursor().execute("SELECT status, message FROM jobs").fetchone()
    assert status == "failed" and message.startswith("Registering the run failed")
    assert active_job(store) is None
