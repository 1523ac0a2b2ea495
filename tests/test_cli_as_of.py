"""``python -m mgi_core profile --as-of DATE``: the profile as of a date and how it moved
since, as text and JSON; bad dates and undated data are refused with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgi_core.cli import main
from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version
from tests.profiles.test_drift import VOCAB, mover_rows


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "mgi.duckdb"
    with Store(path) as store:
        ingest_file(store, write_csv(tmp_path / "mover.csv", mover_rows()), "moves")
        register_fake_version(store, "moves", VOCAB)
    return path


def _profile(db: Path, *args: str) -> list[str]:
    return ["profile", "--db", str(db), "--user", "mover", "--version", "fake", *args]


def test_as_of_prints_the_profile_then_and_the_drift(db: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_profile(db, "--as-of", "2021-12-31")) == 0
    out = capsys.readouterr().out
    assert "mover (6 train reviews) on moves with fake as of 2021-12-31" in out
    assert "l1 Audio" in out and "(5 reviews)" in out  # the profile then
    assert "drift of mover from 2021-12-31 to now (6 -> 10 train reviews)" in out
    assert "Books" in out and "rose" in out and "share 17% -> 50%" in out
    assert "appeared" in out and "plot" in out
    # Without --as-of: the current profile, no drift.
    assert main(_profile(db)) == 0
    out = capsys.readouterr().out
    assert "mover (10 train reviews)" in out and "drift" not in out


def test_as_of_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_profile(db, "--as-of", "2021-12-31", "--json")) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["as_of"] == "2021-12-31"
    assert (got["n_reviews_then"], got["n_reviews_now"]) == (6, 10)
    assert got["then"]["n_train_reviews"] == 6 and got["now"]["n_train_reviews"] == 10
    books = next(c for c in got["l1"] if c["category"] == "Books")
    assert books["change"] == "rose" and books["share_delta"] == pytest.approx(1 / 3)
    assert {i["status"] for i in got["interests"]} == {"persisted", "appeared"}


@pytest.mark.parametrize(("as_of", "message"), [
    ("2021-02-30", "'2021-02-30' is not a date: give it as YYYY-MM-DD"),
    ("yesterday", "'yesterday' is not a date"),
    ("2020-06-01", "no train review on or before 2020-06-01: their first is from 2021-01-15"),
])
def test_bad_dates_exit_2_with_the_reason(db: Path, capsys: pytest.CaptureFixture[str],
                                          as_of: str, message: str) -> None:
    assert main(_profile(db, "--as-of", as_of)) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out
