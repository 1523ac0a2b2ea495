"""Salted hashing of user ids: where the salt comes from, the hash DuckDB stores, and that
neither the salt nor a raw id reaches the database."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import duckdb
import pytest

from mgi_core.config import IngestConfig
from mgi_core.data import privacy
from mgi_core.data.ingest import ingest_file, registered_report
from mgi_core.data.privacy import hash_user_id, stored_user_id, user_id_salt
from mgi_core.errors import ConfigError, DatasetNotFoundError
from mgi_core.store import Store
from tests.conftest import write_csv

SALT = "test-salt-5f0c2a9e7b1d4c3a"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No salt from the environment, and a home folder of the test's own."""
    monkeypatch.delenv(privacy.SALT_ENV, raising=False)
    monkeypatch.delenv(privacy.SALT_FILE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_hash_matches_duckdb_sha256() -> None:
    con = duckdb.connect()
    for raw, salt in [("u1", SALT), ("用户甲", "盐-ü"), ("", "s")]:
        db = con.execute("SELECT sha256(? || ?)", [salt, raw]).fetchone()[0]
        assert hash_user_id(raw, salt) == db
        assert len(db) == 64 and db == db.lower()
    assert hash_user_id("u1", SALT) != hash_user_id("u1", SALT + "x")


def test_salt_file_is_made_once_owner_only(home: Path) -> None:
    salt = user_id_salt()
    path = home / ".config" / "mgi" / "user_id_salt"
    assert path.read_text().strip() == salt
    assert len(salt) == 64 and int(salt, 16) >= 0  # 32 random bytes as hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert user_id_salt() == salt  # read back, not made again
    assert privacy.salt_source() == str(path)


def test_environment_salt_wins_then_the_named_file(tmp_path, monkeypatch, home) -> None:
    named = tmp_path / "elsewhere" / "salt"
    monkeypatch.setenv(privacy.SALT_FILE_ENV, str(named))
    made = user_id_salt()
    assert named.read_text().strip() == made
    assert not (home / ".config" / "mgi" / "user_id_salt").exists()
    monkeypatch.setenv(privacy.SALT_ENV, SALT)
    assert user_id_salt() == SALT
    assert privacy.salt_source() == "$MGI_USER_ID_SALT"


def test_empty_salt_file_is_an_error(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "salt"
    empty.write_text("\n")
    monkeypatch.setenv(privacy.SALT_FILE_ENV, str(empty))
    with pytest.raises(ConfigError, match=r"salt file .* is empty"):
        user_id_salt()


def _rows() -> list[list[object]]:
    return [
        ["user-alice", "i1", "good", 5, 1_600_000_000, "A > B", "T1"],
        ["user-alice", "i2", "fine", 4, 1_600_100_000, "A > B", "T2"],
        ["user-alice", "i3", "meh", 3, 1_600_200_000, "A > C", "T3"],
        [" user-bob ", "i1", "nice", 5, 1_600_000_500, "A > B", "T1"],
        ["user-bob", "i1", "again", 2, 1_600_000_600, "A > B", "T1"],  # duplicate pair
        ["user-dave", "i2", "bad rating", "five", 1_600_000_700, "A > B", "T2"],
    ]


def _every_value_containing(store: Store, needle: str) -> list[str]:
    """Tables (from DuckDB's catalog, not a list kept here) with a row whose text holds
    ``needle``."""
    cur = store.cursor()
    tables = [r[0] for r in cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()]
    return [t for t in tables if cur.execute(
        f'SELECT count(*) FROM "{t}" AS r WHERE contains(CAST(r AS VARCHAR), ?)',
        [needle]).fetchone()[0]]


def test_hashed_ingest_stores_no_raw_id_and_no_salt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(privacy.SALT_ENV, SALT)
    path = write_csv(tmp_path / "r.csv", _rows())
    with open(path, "a", encoding="utf-8") as fh:  # a malformed record: its line holds an id
        fh.write("user-carol,i9,too,many,fields,1,2,3\n")
    store = Store(tmp_path / "mgi.duckdb")
    report = ingest_file(store, path, "hashed", config=IngestConfig(hash_user_ids=True))
    # Alice's 3 reviews and Bob's first are stored; Bob's repeat of i1 is still found to be
    # a duplicate (same hash), Dave's rating and Carol's record are rejected.
    assert (report.n_accepted, report.n_users, report.n_rejected) == (4, 2, 3)
    users = [r[0] for r in store.cursor().execute(
        "SELECT DISTINCT user_id FROM reviews ORDER BY user_id").fetchall()]
    assert users == sorted([hash_user_id("user-alice", SALT), hash_user_id("user-bob", SALT)])
    rejected_users = {r[0] for r in store.cursor().execute(
        "SELECT user_id FROM ingest_rejects").fetchall()}
    assert rejected_users == {hash_user_id("user-bob", SALT), hash_user_id("user-dave", SALT),
                              None}
    assert report.user_id_hashing == "sha256-salted"
    assert registered_report(store, "hashed").user_id_hashing == "sha256-salted"
    assert store.cursor().execute(
        "SELECT user_id_hashing FROM datasets").fetchone() == ("sha256-salted",)
    assert any("salted SHA-256" in n and "$MGI_USER_ID_SALT" in n for n in report.notices)
    assert SALT not in json.dumps(report.to_dict(), default=str)
    for needle in (SALT, "user-alice", "user-bob", "user-carol", "user-dave"):
        assert _every_value_containing(store, needle) == [], needle
    # The forget command's look-up: from the raw id (spaces as in the file) to the stored.
    bob = stored_user_id(store, "hashed", " user-bob ")
    assert store.cursor().execute(
        "SELECT count(*) FROM reviews WHERE user_id = ?", [bob]).fetchone() == (1,)
    store.close()
    # Nor is the salt anywhere in the database file's bytes.
    assert SALT.encode() not in (tmp_path / "mgi.duckdb").read_bytes()


def test_the_check_finds_a_value_where_it_is(store, tmp_path) -> None:
    # The scan above can fail: without hashing, the raw ids are found (reviews, rejects).
    ingest_file(store, write_csv(tmp_path / "r.csv", _rows()), "plain")
    assert sorted(_every_value_containing(store, "user-alice")) == ["reviews"]
    assert sorted(_every_value_containing(store, "user-dave")) == ["ingest_rejects"]
    assert stored_user_id(store, "plain", " user-bob ") == "user-bob"
    with pytest.raises(DatasetNotFoundError):
        stored_user_id(store, "nope", "user-bob")


def test_hashing_needs_a_readable_salt(tmp_path, monkeypatch, store) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(privacy.SALT_FILE_ENV, str(blocker / "salt"))
    with pytest.raises(ConfigError, match="Cannot read or create the user-id salt file"):
        ingest_file(store, write_csv(tmp_path / "r.csv", _rows()), "h",
                    config=IngestConfig(hash_user_ids=True))
    assert store.cursor().execute("SELECT count(*) FROM datasets").fetchone() == (0,)
