"""``jobs.forget.forget`` and ``python -m mgi_core forget``: the rows in one transaction, then
the user's rows in the run folders' files (snapshot, vectors, a Ray stage), refusals (a job
running on the dataset, an unknown user), the versions listed as trained with forgotten
data, and the CLI's confirmation."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgi_core.cli import main
from mgi_core.data.snapshot import export_snapshot
from mgi_core.errors import DatasetNotFoundError, JobError, UnknownUserError
from mgi_core.jobs.forget import find_user, forget
from mgi_core.jobs.run_files import RunFiles, write_json_atomic
from mgi_core.store import Store
from mgi_core.store.embeddings import vector_batches
from mgi_core.store.versions import list_versions
from tests.store.test_forget import USER, build_rich_store, rows_of_user, user_review_ids


@pytest.fixture(scope="module")
def rich_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rich_jobs")
    build_rich_store(work / "rich.duckdb", work)
    return work / "rich.duckdb"


def write_run(store: Store, folder: Path, dataset: str, version: str,
              stage: Path | None = None) -> RunFiles:
    """A finished run's folder as a job leaves it: snapshot, review vectors, head
    probabilities, item vectors (and with ``stage``, a Ray stage's copies and a leftover
    shards folder)."""
    files = RunFiles(folder)
    export_snapshot(store, dataset, files.snapshot)
    engine = {"name": "ray", "stage": str(stage)} if stage else {"name": "local"}
    write_json_atomic(files.job, {"job_id": folder.name, "kind": "train", "version": version,
                                  "dataset": dataset, "engine": engine})
    reviews = pa.Table.from_batches(list(vector_batches(store, version, dataset, "reviews")))
    pq.write_table(reviews, files.review_embeddings)
    pq.write_table(pa.Table.from_batches(list(vector_batches(store, version, dataset, "items"))),
                   files.item_embeddings)
    pq.write_table(pa.table({"review_id": reviews.column("review_id"),
                             "task": pa.array(["category"] * reviews.num_rows),
                             "probs": pa.array([[0.5, 0.5]] * reviews.num_rows,
                                               pa.list_(pa.float32()))}), files.head_probs)
    if stage:
        base = stage / folder.name
        (base / "snapshot").mkdir(parents=True)
        (base / "review_embeddings").mkdir()
        snapshot = pq.read_table(files.snapshot)
        pq.write_table(snapshot, base / "snapshot" / "part-00000.parquet")
        # both by review id, the same reviews: Ray's output columns side by side
        assert snapshot.column("review_id").equals(reviews.column("review_id"))
        pq.write_table(snapshot.select(["review_id", "item_id", "split"]).append_column(
            "embedding", reviews.column("embedding")),
            base / "review_embeddings" / "part-00000.parquet")
        (folder / "shards").mkdir()
        np.savez(folder / "shards" / "rank-0.npz", vecs=np.zeros((2, 3)))
    return files


@pytest.fixture
def rich(rich_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A copy of the rich store with its runs under tmp_path/runs: a 'demo' run with a Ray
    stage, an 'other' run, and the 'demo' job's folder outside the runs folder."""
    shutil.copy(rich_db, tmp_path / "mgi.duckdb")
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    store = Store(tmp_path / "mgi.duckdb")
    write_run(store, tmp_path / "runs" / "v1", "demo", "fake_demo", stage=tmp_path / "stage")
    write_run(store, tmp_path / "runs" / "v2", "other", "fake_other")
    elsewhere = write_run(store, tmp_path / "elsewhere" / "job_demo", "demo", "fake_demo")
    store.cursor().execute("UPDATE jobs SET run_dir = ? WHERE job_id = 'job_demo'",
                           [str(elsewhere.root)])
    yield store
    store.close()


def parquet_rows(folder: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(folder)): pd.read_parquet(p)
            for p in sorted(folder.rglob("*.parquet"))}


def test_forget_removes_the_users_rows_and_their_copies_in_run_folders(
        rich: Store, tmp_path: Path) -> None:
    store = rich
    runs, stage = tmp_path / "runs", tmp_path / "stage"
    demo_ids = [r for (r,) in store.cursor().execute(
        "SELECT review_id FROM reviews WHERE dataset = 'demo' AND user_id = ?",
        [USER]).fetchall()]
    train_items = {i for (i,) in store.cursor().execute(
        "SELECT item_id FROM reviews WHERE dataset = 'demo' AND user_id = ? "
        "AND split = 'train'", [USER]).fetchall()}
    before = {name: parquet_rows(folder) for name, folder in (
        ("v1", runs / "v1"), ("stage", stage), ("elsewhere", tmp_path / "elsewhere"))}
    other_run = {p.name: p.read_bytes() for p in (runs / "v2").iterdir()}

    report = forget(store, USER, "demo")

    assert report.datasets == ("demo",) and report.n_reviews == len(demo_ids)
    assert report.deleted["reviews"] == len(demo_ids) and report.deleted["ingest_rejects"] == 1
    # what is left of the user is in the 'other' dataset (review ids: none at all)
    left = rows_of_user(store, USER, demo_ids)
    assert left and all(where.endswith(".user_id") for where in left)
    for where in left:
        table = where.split(".")[0]
        assert store.cursor().execute(
            f"SELECT count(*) FROM {table} WHERE user_id = ? AND dataset <> 'other'",
            [USER]).fetchone()[0] == 0, table
    # every file of the demo runs and the stage is without the user's rows, others intact
    for name, folder in (("v1", runs / "v1"), ("stage", stage),
                         ("elsewhere", tmp_path / "elsewhere")):
        for path, frame in parquet_rows(folder).items():
            old = before[name][path]
            if "user_id" in old:
                drop = old["user_id"] == USER
            elif "review_id" in old:
                drop = old["review_id"].isin(demo_ids)
            else:  # item vectors: means that held the user's train vectors
                drop = old["item_id"].isin(train_items)
            assert drop.sum() > 0, path
            expected = old[~drop].reset_index(drop=True)
            pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected)
            shown = str(folder / path)
            assert report.files_rewritten[shown] == int(drop.sum())
    assert len(report.files_rewritten) == 4 + 2 + 4  # v1, the stage, the job folder
    assert not (runs / "v1" / "shards").exists()
    assert report.files_removed == (str((runs / "v1" / "shards").resolve()),)
    # the 'other' dataset's run is untouched (the same id there is not forgotten)
    assert {p.name: p.read_bytes() for p in (runs / "v2").iterdir()} == other_run
    # no temporary file is left behind
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert any("not tracked" in n for n in report.notices)


def test_forget_in_every_dataset_by_default(rich: Store, tmp_path: Path) -> None:
    store = rich
    mine = user_review_ids(store, USER)
    assert find_user(store, USER) == {"demo": 12, "other": 2}
    report = forget(store, USER)
    assert report.datasets == ("demo", "other")
    assert rows_of_user(store, USER, mine) == {}
    snapshot = pd.read_parquet(tmp_path / "runs" / "v2" / "data.parquet")
    assert len(snapshot) > 0 and USER not in set(snapshot["user_id"])


def test_versions_trained_with_the_user_are_listed(rich: Store, capsys) -> None:
    store = rich
    report = forget(store, USER, "demo")
    assert [(v.version, v.dataset, v.n_reviews) for v in report.versions] == [
        ("fake_demo", "demo", 12)]
    listed = {v["version"]: v["forgotten_reviews"] for v in list_versions(store)}
    assert listed["fake_demo"] == 1 + 12  # the fixture's record, then this forget
    assert listed["old"] == listed["base"] == 0
    assert any("fake_demo on demo: 12 of the user's reviews" in line
               for line in report.lines())
    store.close()
    assert main(["versions", "--db", str(store.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    [line] = [x for x in out if x.startswith("fake_demo")]
    assert "trained with forgotten data: 13 reviews" in line
    [line] = [x for x in out if x.startswith("old")]
    assert "forgotten" not in line


def test_refused_while_a_job_runs_on_the_dataset(rich: Store) -> None:
    store = rich
    # A job just prepared (no pid yet) counts as running.
    store.cursor().execute(
        "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
        "VALUES ('j2', 'embed', 'base', 'demo', '/nowhere', 'running')")
    mine = user_review_ids(store, USER)
    held = rows_of_user(store, USER, mine)
    with pytest.raises(JobError, match=r"embed job \(base\) is running on dataset 'demo'"):
        forget(store, USER, "demo")
    with pytest.raises(JobError, match="running on dataset 'demo'"):
        forget(store, USER)  # every dataset: demo among them
    assert rows_of_user(store, USER, mine) == held
    assert forget(store, USER, "other").n_reviews == 2  # another dataset's job: no matter


def test_unknown_user_or_dataset(rich: Store) -> None:
    store = rich
    with pytest.raises(UnknownUserError, match="No user 'nobody' in any dataset"):
        forget(store, "nobody")
    with pytest.raises(UnknownUserError, match="No user 'u1' in dataset 'demo'"):
        forget(store, "u1", "demo")  # u1 is a user of 'other' only
    with pytest.raises(UnknownUserError, match="No user id given"):
        forget(store, "  ")
    with pytest.raises(DatasetNotFoundError):
        forget(store, USER, "missing")
    forget(store, USER, "demo")
    with pytest.raises(UnknownUserError):
        forget(store, USER, "demo")  # forgotten already


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_forget_confirms_or_refuses(rich: Store, monkeypatch, capsys) -> None:
    store = rich
    db = str(store.path)
    store.close()
    # not on a terminal and no --yes: refused, nothing removed
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["forget", "--user", USER, "--db", db]) == 2
    assert "confirm with --yes" in capsys.readouterr().err
    # on a terminal, a wrong answer removes nothing either
    monkeypatch.setattr("sys.stdin", _Terminal("U9999\n"))
    assert main(["forget", "--user", USER, "--dataset", "demo", "--db", db]) == 2
    assert "Not confirmed" in capsys.readouterr().err
    with Store(db) as check:
        assert len(user_review_ids(check, USER)) == 14
    # the id typed again confirms
    monkeypatch.setattr("sys.stdin", _Terminal(f"{USER}\n"))
    assert main(["forget", "--user", USER, "--dataset", "demo", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "Forgot 12 review(s) in demo." in out and "rows of reviews" in out
    assert "fake_demo on demo: 12 of the user's reviews" in out
    assert "rows removed from" in out and "data.parquet" in out
    # --yes --json: every dataset left, as JSON
    assert main(["forget", "--user", USER, "--yes", "--json", "--db", db]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["datasets"] == ["other"] and report["reviews"] == 2
    assert report["trained_with_forgotten_data"] == [
        {"version": "fake_other", "dataset": "other", "reviews": 2}]
    assert main(["forget", "--user", USER, "--yes", "--db", db]) == 2
    assert "No user 'U0042' in any dataset" in capsys.readouterr().err
    with Store(db) as check:
        assert rows_of_user(check, USER, []) == {}
    assert os.environ["MGI_RUNS"]  # the run folders were those of this test


def test_a_dataset_of_hashed_user_ids_forgets_the_raw_id_and_the_stored_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mgi_core.config import IngestConfig
    from mgi_core.data.ingest import ingest_file
    from mgi_core.data.privacy import SALT_ENV, stored_user_id
    from mgi_core.errors import ConfigError
    from tests.conftest import small_rows, write_csv

    monkeypatch.setenv(SALT_ENV, "a salt of the test, long enough")
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    path = write_csv(tmp_path / "r.csv", [*small_rows(), ["u1", "i9", "x", "five", 1, "A", "t"]])
    with Store(tmp_path / "mgi.duckdb") as store:
        ingest_file(store, path, "hashed", config=IngestConfig(hash_user_ids=True))
        hashed = stored_user_id(store, "hashed", "u1")
        assert hashed != "u1" and user_review_ids(store, hashed)
        assert find_user(store, "u1") == {"hashed": 4}  # the raw id, as the file had it
        report = forget(store, "u1", "hashed")
        assert report.n_reviews == 4 and report.deleted["ingest_rejects"] == 1
        assert rows_of_user(store, hashed, []) == {} and rows_of_user(store, "u1", []) == {}
        # the stored form (what the Profiles page shows) is accepted too
        assert forget(store, stored_user_id(store, "hashed", "u2"), "hashed").n_reviews == 3
        monkeypatch.setenv(SALT_ENV, "another salt, not the dataset's")
        # another salt would give the user another id: said, before anything is looked up
        with pytest.raises(ConfigError, match="not the one dataset 'hashed' was hashed with"):
            forget(store, "u3", "hashed")


def test_after_a_forget_every_profile_equals_a_rebuild_keywords_included(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forgotten user's texts leave the keyword corpus: every other user's labels are
    ranked again, so the stored profiles equal a build from scratch, labels and all."""
    from mgi_core.cli import DEMO_DIR
    from mgi_core.data.ingest import ingest_file
    from mgi_core.profiles.service import compute_profiles, ensure_profiles, stored_profiles
    from tests.fake_encoder import DEMO_VOCAB, register_fake_version

    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    with Store(tmp_path / "mgi.duckdb") as store:
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", DEMO_VOCAB)
        ensure_profiles(store, "demo", "fake")
        # the most active user: the most texts leave the corpus
        user = store.cursor().execute(
            "SELECT user_id FROM reviews GROUP BY user_id ORDER BY count(*) DESC, user_id "
            "LIMIT 1").fetchall()[0][0]
        forget(store, user, "demo")
        got, want = stored_profiles(store, "demo", "fake"), compute_profiles(store, "demo", "fake")
        assert got is not None and user not in set(got.rows["user_id"])
        np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-5)
        cols = ["user_id", "level", "key", "n_reviews"]
        pd.testing.assert_frame_equal(got.rows[cols], want.rows[cols])
        def labels(rows: pd.DataFrame) -> list[list[str] | None]:
            return [list(k) if isinstance(k, (list, np.ndarray)) else None
                    for k in rows["keywords"]]

        assert labels(got.rows) == labels(want.rows)
