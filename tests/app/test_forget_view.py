"""The "Forget this user" section under AppTest, in a tiny script that calls it as the
Profiles page does: the button opens a confirmation, the id typed again enables Forget, the
report shows what went and the versions now trained with forgotten data; Cancel and a wrong
id remove nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from mgi_core.store import Store
from tests.app.pages import run_once, texts
from tests.store.test_forget import USER, build_rich_store, user_review_ids


def forget_script(dataset: str, user: str) -> None:
    from dashboard.forget_view import show_forget, show_last_forget
    from dashboard.resources import get_store

    store = get_store()
    show_last_forget(dataset)
    show_forget(store, dataset, user)


@pytest.fixture(scope="module")
def rich_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rich_app")
    build_rich_store(work / "rich.duckdb", work)
    return work / "rich.duckdb"


@pytest.fixture
def db(rich_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    shutil.copy(rich_db, path)
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    yield path
    _open_store(str(path)).close()
    _open_store.clear()


def app(dataset: str = "demo", user: str = USER) -> AppTest:
    return AppTest.from_function(forget_script, args=(dataset, user), default_timeout=120)


def demo_reviews(path: Path) -> int:
    store: Store = _open_store(str(path))
    return sum(1 for r in user_review_ids(store, USER) if store.cursor().execute(
        "SELECT dataset FROM reviews WHERE review_id = ?", [r]).fetchone()[0] == "demo")


def test_forget_asks_for_the_id_then_forgets_and_reports(db: Path) -> None:
    at = run_once(app())
    assert not at.text_input and not at.dataframe
    at.button(key="forget_open").click()
    run_once(at)
    assert f"Forget user {USER} (12 review(s) in demo)?" in texts(at.warning)
    assert at.button(key="forget_confirm").disabled
    at.text_input(key="forget_typed").input("U0043")
    run_once(at)
    assert at.button(key="forget_confirm").disabled  # another user's id does not confirm
    assert demo_reviews(db) == 12
    at.text_input(key="forget_typed").input(USER)
    run_once(at)
    assert not at.button(key="forget_confirm").disabled
    at.button(key="forget_confirm").click()
    run_once(at)
    assert "Forgot 12 review(s) in demo." in texts(at.success)
    removed = at.dataframe[0].value.set_index("from")["rows"]
    assert removed["reviews"] == 12 and removed["ingest_rejects"] == 1
    versions = at.dataframe[1].value
    assert versions.to_dict("records") == [
        {"version": "fake_demo", "dataset": "demo", "reviews": 12}]
    assert demo_reviews(db) == 0
    # the next run still shows the report; the user is gone, so a second forget says so
    run_once(at)
    assert "Forgot 12 review(s) in demo." in texts(at.success)
    at.button(key="forget_open").click()
    run_once(at)
    assert f"No user '{USER}' in dataset 'demo'" in texts(at.error)


def test_cancel_removes_nothing(db: Path) -> None:
    at = run_once(app())
    at.button(key="forget_open").click()
    run_once(at)
    at.text_input(key="forget_typed").input(USER)
    at.button(key="forget_cancel").click()
    run_once(at)
    assert not at.text_input and not at.success
    assert demo_reviews(db) == 12


def test_a_running_job_is_shown_as_an_error_and_nothing_goes(db: Path) -> None:
    _open_store(str(db)).cursor().execute(
        "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
        "VALUES ('j2', 'embed', 'base', 'demo', '/nowhere', 'running')")
    at = run_once(app())
    at.button(key="forget_open").click()
    run_once(at)
    at.text_input(key="forget_typed").input(USER)
    run_once(at)
    at.button(key="forget_confirm").click()
    run_once(at)
    assert "is running on dataset 'demo'" in texts(at.error)
    assert not at.success and demo_reviews(db) == 12


def test_versions_tables_say_which_versions_were_trained_with_forgotten_data() -> None:
    from dashboard.metrics_view import validation_table
    from dashboard.training import versions_frame

    versions = [{"version": "v2", "kind": "fine-tuned", "dataset": "d", "status": "ready",
                 "forgotten_reviews": 0},
                {"version": "v1", "kind": "fine-tuned", "dataset": "d", "status": "ready",
                 "forgotten_reviews": 12},
                {"version": "v0", "kind": "fine-tuned", "dataset": "d", "status": "failed",
                 "forgotten_reviews": 1}]
    frame = versions_frame(versions).set_index("version")["forgotten data"]
    assert frame.to_dict() == {"v2": "", "v1": "trained with forgotten data (12 reviews)",
                               "v0": "trained with forgotten data (1 review)"}
    table = validation_table(versions).set_index("version")["forgotten data"]
    assert table["v1"] == frame["v1"] and table["v2"] == ""
