"""The Data page's "Add reviews to this dataset" under AppTest: a file appended through the
uploader is stored, the append is listed, and a version that cannot be updated here (the
fake encoder has no model to embed with) is listed as behind, with the reason shown."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dashboard import background
from dashboard.resources import _open_store
from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from tests.app.pages import open_page, run
from tests.app.pages import texts as _texts
from tests.conftest import HEADER, small_rows, write_csv
from tests.fake_encoder import register_fake_version

VOCAB = ["headphones", "speaker", "lens", "camera", "tripod", "sound"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    store = _open_store(str(path))
    ingest_file(store, write_csv(tmp_path / "small.csv", small_rows()), "small")
    register_fake_version(store, "small", VOCAB)
    yield path
    store.close()
    _open_store.clear()
    background.wait_all()
    background.clear_all()


def _csv(rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows, columns=HEADER).to_csv(buf, index=False)
    return buf.getvalue().encode()


def test_a_file_appended_on_the_data_page_is_stored_and_the_version_is_behind(db) -> None:
    store: Store = _open_store(str(db))
    at = open_page("app_pages/data.py")
    assert "Add reviews to this dataset" in _texts(at.subheader)
    uploader = next(u for u in at.file_uploader if u.key.startswith("append_file_small"))
    uploader.set_value(("more.csv", _csv([
        ["u3", "i1", "Loud sound, great speaker.", 5, 1_700_000_000, "Audio > Speakers", "B"],
        ["u3", "i2", "Fine headphones.", 4, 1_700_000_100, "Audio > Speakers", "Boom"],
        ["u1", "i1", "Already reviewed this one.", 5, 1_700_000_000, "", ""],  # stored pair
    ]), "text/csv"))
    run(at)
    at.button(key="append_go").click()
    run(at)
    shown = _texts(at.success) + "\n" + _texts(at.info)
    assert "small: 2 of 3 rows appended" in shown
    assert "already stored (user_id, item_id) (1)" in shown
    assert "fake was not updated" in shown and "no model folder" in shown
    n = store.cursor().execute(
        "SELECT count(*) FROM reviews WHERE dataset = 'small'").fetchall()[0][0]
    assert n == len(small_rows()) + 2
    assert "Version fake has not embedded 2 review(s)" in _texts(at.caption)
    appends = at.dataframe[-1].value
    assert appends["file_name"].tolist() == ["more.csv"]
    assert appends["n_reviews"].tolist() == [2]
    # the uploader was reset (a new key): the same bytes are not appended twice by a rerun
    assert all(u.value is None for u in at.file_uploader)
