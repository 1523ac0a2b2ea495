"""The Data page's privacy options: redaction (on by default, counted in the result) and
hashed user ids, under AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.data import privacy
from mgi_core.data.privacy import hash_user_id
from tests.app.pages import texts as _texts
from tests.app.test_data_page import _app_store, _csv_bytes, _ingest, _run, _upload, db
from tests.conftest import small_rows

__all__ = ["db"]  # the fixture, shared with the Data page's tests
SALT = "page-test-salt-0123456789"


def _rows_with_pii() -> list[list[object]]:
    rows = small_rows()
    rows[0][2] = "Great, mail me at fan@example.com"
    rows[1][2] = "电话13800138000，see https://example.com/x"
    return rows


def test_redaction_is_on_by_default_and_counted(db: Path) -> None:
    at = _upload(_run(), "pii.csv", _csv_bytes(_rows_with_pii()))
    assert at.checkbox(key="data_redact").value is True
    assert at.checkbox(key="data_hash_ids").value is False
    at = _ingest(at)
    assert ("Personal data redacted: e-mail addresses in 1 review, phone numbers in 1 "
            "review, URLs in 1 review.") in _texts(at.success)
    texts = [r[0] for r in _app_store(db).cursor().execute(
        "SELECT text FROM reviews ORDER BY row_number LIMIT 2").fetchall()]
    assert texts == ["Great, mail me at [email]", "电话[phone]，see [url]"]


def test_both_options_can_be_switched(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.SALT_ENV, SALT)
    at = _upload(_run(), "pii.csv", _csv_bytes(_rows_with_pii()))
    at.checkbox(key="data_redact").uncheck()
    at.checkbox(key="data_hash_ids").check()
    at = _ingest(at)
    assert "8 of 8 rows stored" in _texts(at.success)
    assert "Redaction is off" in _texts(at.info)
    assert "salted SHA-256" in _texts(at.info)
    cur = _app_store(db).cursor()
    assert cur.execute("SELECT text FROM reviews ORDER BY row_number LIMIT 1").fetchone() == (
        "Great, mail me at fan@example.com",)
    users = {r[0] for r in cur.execute("SELECT DISTINCT user_id FROM reviews").fetchall()}
    assert users == {hash_user_id(u, SALT) for u in ("u1", "u2", "u3")}
