"""Several browser sessions at once while a job runs and another session ingests: no lock
errors, no exception on any page, no lost or duplicated rows (AppTest sessions in threads
over the app's one cached store, as a Streamlit server runs them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import profiles as prof
from dashboard.resources import _open_store
from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.jobs.manager import refresh_jobs, start_job
from mgi_core.store import Store
from mgi_core.store.embeddings import review_vectors
from tests.app.pages import APP
from tests.conftest import small_rows, table_counts, write_csv
from tests.fake_encoder import register_fake_version

VOCAB = ["headphones", "lens", "plot", "great", "awful", "bass", "zoom", "novel"]
N_BROWSERS = 3


@pytest.fixture
def app_db(tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    csv = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}).to_csv(csv, index=False)
    store = _open_store(str(path))
    ingest_file(store, csv, "tiny")
    register_fake_version(store, "tiny", VOCAB, version="fake")
    yield path
    store.close()
    _open_store.clear()
    for loader in (prof.recommender, prof.item_map):
        loader.clear()


def _browse(page: str, errors: list[str]) -> None:
    """One session: open the app, go to ``page``, rerun it twice."""
    try:
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        at.switch_page(page)
        for _ in range(2):
            at.run()
            errors.extend(f"{page}: {e.value}" for e in at.exception)
    except Exception as exc:  # collected, failed on below
        errors.append(f"{page}: {type(exc).__name__}: {exc}")


def _ingest_in_session(csv_bytes: bytes, errors: list[str]) -> None:
    try:
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        at.file_uploader[0].set_value(("second.csv", csv_bytes, "text/csv"))
        at.run()
        at.button(key="data_ingest").click()
        at.run()
        errors.extend(f"data: {e.value}" for e in at.exception)
        errors.extend(f"data error: {e.value}" for e in at.error)
    except Exception as exc:
        errors.append(f"data: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_sessions_browse_and_ingest_while_a_job_runs(app_db, tmp_path, tiny_bert) -> None:
    store: Store = _open_store(str(app_db))
    before = store.cursor().execute(
        "SELECT count(*), count(DISTINCT review_id) FROM reviews WHERE dataset = 'tiny'"
    ).fetchone()
    config = TrainConfig(base_model=str(tiny_bert), device="cpu", embed_max_seq_length=16)
    start_job(store, "embed", "tiny", config)
    second = write_csv(tmp_path / "second.csv", small_rows()).read_bytes()

    errors: list[str] = []
    threads = [threading.Thread(target=_browse, args=(page, errors))
               for page in ["app_pages/profiles.py", "app_pages/compare.py",
                            "app_pages/train.py"][:N_BROWSERS]]
    threads.append(threading.Thread(target=_ingest_in_session, args=(second, errors)))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 300
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        refresh_jobs(store)  # the job's progress is polled meanwhile, as the Train page does
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=5)
    assert not errors, errors

    # the job finishes and is registered once
    while time.monotonic() < deadline:
        refresh_jobs(store)
        status = store.cursor().execute("SELECT status FROM jobs").fetchall()
        if status[0][0] != "running":
            break
        time.sleep(0.5)
    assert status == [("finished",)]
    ids, _vectors = review_vectors(store, "base", "tiny")
    assert len(ids) == len(set(ids)) == before[0]
    cur = store.cursor()
    # nothing lost or doubled: the first dataset as it was, the second whole
    assert cur.execute(
        "SELECT count(*), count(DISTINCT review_id) FROM reviews WHERE dataset = 'tiny'"
    ).fetchone() == before
    assert cur.execute(
        "SELECT count(*) FROM reviews WHERE dataset = 'second'").fetchone()[0] == 8
    assert table_counts(store)["datasets"] == 2
