"""The Train page under AppTest: empty state, a tiny fine-tuning job, a bad config, cancel.

Jobs run in real child processes on the tiny local BERT. The app's cached store holds the
DuckDB file in this process, so the tests follow the jobs through that same store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from dashboard.train_form import HYPER_FIELDS, form_input
from mgi_core.data.ingest import ingest_file
from mgi_core.jobs.manager import active_job, job_progress, refresh_jobs
from mgi_core.store import Store
from mgi_core.store.versions import list_versions
from tests.app.pages import open_page
from tests.app.pages import run as _run
from tests.app.pages import texts as _texts

PAGE = "app_pages/train.py"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh database file for the app (via $MGI_DB); the cached store is released after."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.delenv("MGI_RUNS", raising=False)  # run folders go beside the database
    yield path
    store = _open_store(str(path))
    refresh_jobs(store)
    job = active_job(store)
    if job is not None:  # a test that failed half-way must not leave a job running
        from mgi_core.jobs.manager import cancel_job

        cancel_job(store, job["version"], grace_s=5)
    store.close()
    _open_store.clear()


@pytest.fixture
def tiny_dataset(db: Path, tmp_path: Path, snapshot: pd.DataFrame) -> str:
    """The tiny corpus (every word in the tiny BERT's vocabulary) ingested as 'tiny'."""
    csv = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}
    ).to_csv(csv, index=False)
    ingest_file(_app_store(db), csv, "tiny")
    return "tiny"


def _app_store(db: Path) -> Store:
    """The store the app uses for ``db`` (the same cached root connection)."""
    return _open_store(str(db))


def _open_page() -> AppTest:
    return open_page(PAGE)


def _fill_tiny(at: AppTest, tiny_bert: Path, epochs: int = 1) -> AppTest:
    """A run small enough for a 2-core CPU: 16 reviews, 16 tokens, batch 8."""
    at.text_input(key="train_base_model").set_value(str(tiny_bert))
    at.number_input(key="train_max_reviews").set_value(16)
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_batch_size").set_value(8)
    at.number_input(key="train_max_seq_length").set_value(16)
    at.number_input(key="train_embed_max_seq_length").set_value(16)  # tiny BERT: 64 positions
    at.number_input(key="train_lora_rank").set_value(2)
    if epochs > 1:  # a long job must not stop early (a fast machine finishes it otherwise)
        at.number_input(key="train_patience").set_value(100)
    return _run(at)


def _wait_until_no_job(store: Store, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh_jobs(store)  # registers a finished run
        if active_job(store) is None:
            return
        time.sleep(0.5)
    raise TimeoutError("the job did not finish")


def _wait_phase(store: Store, phase: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh_jobs(store)
        job = active_job(store)
        assert job is not None, "the job ended before reaching " + phase
        if job_progress(job["run_dir"]).get("phase") == phase:
            return
        time.sleep(0.3)
    raise TimeoutError(phase)


def _versions(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "version" in d.value.columns)


def test_no_dataset_points_to_the_data_page(db: Path) -> None:
    at = _open_page()
    assert "No datasets yet" in _texts(at.info)
    links = at.get("page_link")
    assert len(links) == 1 and links[0].proto.label == "Go to the Data page"
    assert links[0].proto.page == ""  # the Data page is the app's default page: its URL is /
    assert not at.button  # no form, no Train button


def test_form_shows_defaults_device_and_the_base_button(tiny_dataset: str) -> None:
    at = _open_page()
    assert at.selectbox(key="train_dataset").value == "tiny"
    assert at.text_input(key="train_base_model").value == "bundled:all-MiniLM-L6-v2"
    assert at.multiselect(key="train_tasks").value == ["overall", "category", "subcategory",
                                                        "match"]
    assert at.number_input(key="train_w_category").value == 0.5
    assert at.number_input(key="train_max_reviews").value == 0  # 0 = all
    assert "Runs on **" in _texts(at.caption)
    assert at.button(key="train_embed_base").label.startswith("Embed with the pre-trained")
    # Strategy parameters follow the strategy.
    assert at.number_input(key="train_lora_rank").value == 8
    at.radio(key="train_strategy").set_value("freeze")
    at = _run(at)
    assert at.number_input(key="train_freeze_layers").value == 4
    assert not [w for w in at.number_input if w.key == "train_lora_rank"]
    # Every hyper-parameter has an input, labelled and explained from its TrainConfig field.
    shown = {w.key: w for w in [*at.number_input, *at.checkbox, *at.selectbox, *at.text_input]}
    for name in HYPER_FIELDS:
        spec = form_input(name)
        assert (shown[spec.key].label, shown[spec.key].help) == (spec.label, spec.help), name
        assert shown[spec.key].value == spec.value, name


def test_no_task_is_an_error_and_starts_nothing(tiny_dataset: str, db: Path) -> None:
    at = _open_page()
    at.multiselect(key="train_tasks").set_value([])
    at = _run(at)
    at.button(key="train_start").click()
    at = _run(at)
    assert "tasks [] not allowed" in _texts(at.error)
    assert list_versions(_app_store(db)) == []
    assert active_job(_app_store(db)) is None


def test_a_training_run_starts_shows_progress_and_lists_a_ready_version(
    tiny_dataset: str, tiny_bert: Path, db: Path
) -> None:
    at = _fill_tiny(_open_page(), tiny_bert)
    at.button(key="train_start").click()
    at = _run(at)
    # The job runs in the background: the progress panel and a running v1 show at once.
    assert "Running job" in _texts(at.header)
    assert at.get("progress")
    # The clock runs from the job's start (the jobs table), before the job reports anything.
    assert re.search(r"elapsed \d+ s", _texts(at.markdown)), _texts(at.markdown)
    assert at.button(key="train_start").disabled
    table = _versions(at)
    assert table[["version", "status"]].values.tolist() == [["v1", "running"]]

    _wait_until_no_job(_app_store(db))
    at = _run(at)
    assert "Version **v1** is ready" in _texts(at.success)
    assert "Running job" not in _texts(at.header)
    table = _versions(at)
    row = table.set_index("version").loc["v1"]
    assert row["status"] == "ready" and row["strategy"] == "lora" and row["dataset"] == "tiny"
    assert 0 <= row["AUC"] <= 1 and 0 <= row["R@10"] <= 1
    # The stored training log draws the curves of the selected version.
    assert at.selectbox(key="train_curves").value == "v1"
    assert len(at.get("plotly_chart")) == 2
    assert not at.button(key="train_start").disabled


def test_two_processes_train_data_parallel_under_torchrun(
    tiny_dataset: str, tiny_bert: Path, db: Path
) -> None:
    at = _fill_tiny(_open_page(), tiny_bert)
    processes = at.number_input(key="train_processes")
    assert processes.value == 1 and "torchrun" in processes.help
    processes.set_value(2)
    at = _run(at)
    at.button(key="train_start").click()
    at = _run(at)
    _wait_until_no_job(_app_store(db))
    at = _run(at)
    assert "Version **v1** is ready" in _texts(at.success), _texts(at.error)
    [info] = list_versions(_app_store(db))
    # Rank 0 describes the run it was part of: two processes joined the process group.
    assert "× 2 processes (torchrun)" in info["device"]
    log = (Path(info["artefact_dir"]) / "job.log").read_text()
    assert "torch.distributed" in log or "OMP_NUM_THREADS" in log  # torchrun's own banner


def test_a_reopened_page_shows_the_running_job_and_cancel_stops_it(
    tiny_dataset: str, tiny_bert: Path, db: Path
) -> None:
    at = _fill_tiny(_open_page(), tiny_bert, epochs=200)
    at.button(key="train_start").click()
    at = _run(at)
    _wait_phase(_app_store(db), "training")  # past loading: SIGTERM stops it at a step
    # A new session (the tab closed and opened again) finds the job still running.
    other = _open_page()
    assert "Running job" in _texts(other.header)
    assert "version **v1**" in _texts(other.markdown)
    other.button(key="train_cancel").click()
    other = _run(other)
    assert active_job(_app_store(db)) is None
    assert "was cancelled" in _texts(other.warning)
    table = _versions(other)
    assert table[["version", "status"]].values.tolist() == [["v1", "cancelled"]]
    assert table["message"].iloc[0] == "Cancelled by the user."
    # The session that started it learns how it ended on its next run.
    at = _run(at)
    assert "The train job for v1 on tiny was cancelled." in _texts(at.warning)


def test_embed_with_the_base_encoder_adds_version_base_once(
    tiny_dataset: str, tiny_bert: Path, db: Path
) -> None:
    at = _fill_tiny(_open_page(), tiny_bert)
    expander, options = at.expander
    assert expander.label == "Hyper-parameters" and not expander.proto.expanded
    assert options.label.startswith("Robustness") and not options.proto.expanded
    at.session_state["train_hyper_open"] = True  # the user opens the hyper-parameters
    at = _run(at)
    assert at.expander[0].proto.expanded
    at.button(key="train_embed_base").click()
    at = _run(at)
    assert "Embedding with the pre-trained encoder" in _texts(at.markdown)
    # The running job's section above it does not fold the hyper-parameters.
    assert at.expander[0].proto.expanded
    # base is registered when the job ends: the versions table says so meanwhile (the run
    # that drew the running job drew this caption).
    assert ("No versions yet: version base appears here when the embedding job above "
            "finishes.") in _texts(at.caption)
    _wait_until_no_job(_app_store(db))
    at = _run(at)
    assert "embedded by the pre-trained encoder (version **base**)" in _texts(at.success)
    table = _versions(at)
    assert table[["version", "kind", "status"]].values.tolist() == [["base", "base", "ready"]]
    # base is not trained on a dataset: it is pre-trained, and lists what it embedded.
    assert table[["dataset", "strategy"]].values.tolist() == [["tiny", "pre-trained"]]
    assert not [c for c in at.caption if str(c.value).startswith("No versions yet")]
    # The dataset has base embeddings now: the button is gone.
    assert not [b for b in at.button if b.key == "train_embed_base"]
