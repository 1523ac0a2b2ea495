"""The store's quoting helpers: any text round-trips through DuckDB unchanged."""

from __future__ import annotations

import duckdb
import pytest

from mgi_core.store.sql import quote_identifier, quote_literal

NASTY = ["plain", 'dou"ble', "sin'gle", "semi; DROP TABLE x; --", "üñï cødé", ""]


@pytest.mark.parametrize("text", NASTY)
def test_literal_round_trips(text) -> None:
    assert duckdb.connect().execute(f"SELECT {quote_literal(text)}").fetchone()[0] == text


@pytest.mark.parametrize("text", [t for t in NASTY if t])
def test_identifier_round_trips(text) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({quote_identifier(text)} INTEGER)")
    assert [d[0] for d in con.execute("SELECT * FROM t").description] == [text]


def test_booleans_and_integers_are_bare() -> None:
    assert (quote_literal(True), quote_literal(7), quote_literal(1.5)) == ("true", "7", "'1.5'")
