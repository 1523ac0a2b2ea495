"""An append splits its users again: two systems evaluated on either side of it ranked
different held-out reviews, so comparing them is refused; evaluated both before it, they
compare on the earlier split, and the report says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.cli import main
from mgi_core.data.append import append_file
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import MgiError
from mgi_core.evaluation.compare import compare
from mgi_core.evaluation.protocol import evaluate
from mgi_core.store import Store
from tests.fake_encoder import DEMO_VOCAB, register_fake_version
from tests.profiles.test_incremental import _cut_demo


def test_a_pair_evaluated_across_an_append_is_refused(tmp_path: Path, capsys) -> None:
    first, more, _ = _cut_demo(tmp_path)
    db = tmp_path / "mgi.duckdb"
    store = Store(db)
    ingest_file(store, first, "demo")
    register_fake_version(store, "demo", DEMO_VOCAB)
    evaluate(store, "demo", "fake", ("popularity", "content"))
    assert compare(store, "fake:popularity", "fake:content", "demo").notes == []

    append_file(store, more, "demo")
    both_before = compare(store, "fake:popularity", "fake:content", "demo")
    assert "evaluated before the latest append" in both_before.notes[0]

    evaluate(store, "demo", "fake", ("content",))
    with pytest.raises(MgiError, match=r"fake:popularity was evaluated on demo before"):
        compare(store, "fake:popularity", "fake:content", "demo")
    store.close()
    assert main(["compare", "fake:popularity", "fake:content", "--dataset", "demo",
                 "--db", str(db)]) == 2
    assert "Evaluate fake:popularity again" in capsys.readouterr().err

    store = Store(db)
    evaluate(store, "demo", "fake", ("popularity",))
    assert compare(store, "fake:popularity", "fake:content", "demo").notes == []
    store.close()
