"""Redaction of e-mail addresses, phone numbers and URLs: the patterns (English and Chinese,
what they catch and what they leave), Python and DuckDB agreeing, and an ingest that stores
only redacted text and counts what it replaced."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mgi_core.cli import build_parser
from mgi_core.config import IngestConfig
from mgi_core.config_cli import config_from_args
from mgi_core.data.ingest import ingest_file, registered_report
from mgi_core.store.redaction import (
    ANY,
    KINDS,
    describe,
    flags_ctes,
    kinds_of,
    redact,
    redacted_text_sql,
)
from tests.conftest import write_csv

# (text, expected text after redaction, kinds found)
POSITIVE = [
    # e-mail addresses
    ("Mail me at john.doe+shop@mail.example.co.uk, thanks!", "Mail me at [email], thanks!",
     ("email",)),
    ("JOHN_DOE@EXAMPLE.COM.", "[email].", ("email",)),
    ("contact a.b-c_d@x-y.z.museum now", "contact [email] now", ("email",)),
    ("name [at] domain [dot] com", "[email]", ("email",)),
    ("mailto:someone@example.org?subject=hi", "mailto:[email]?subject=hi", ("email",)),
    ("(crome06@hotmail.com) Its great", "([email]) Its great", ("email",)),
    ("邮箱：zhang.san@163.com，谢谢", "邮箱：[email]，谢谢", ("email",)),
    ("联系我abc＠qq．com或者", "联系我[email]或者", ("email",)),
    ("13800138000@qq.com", "[email]", ("email",)),  # an address, not a phone
    # phone numbers, English
    ("Call +1 (555) 123-4567 today", "Call [phone] today", ("phone",)),
    ("call 555-123-4567.", "call [phone].", ("phone",)),
    ("or 555.123.4567!", "or [phone]!", ("phone",)),
    ("(555) 123-4567 and (555)123-4567", "[phone] and [phone]", ("phone",)),
    ("1-800-555-1234 ext", "[phone] ext", ("phone",)),
    ("UK: +44 20 7946 0958.", "UK: [phone].", ("phone",)),
    ("+33 1 23 45 67 89, +49 30 12345678, +852 1234 5678", "[phone], [phone], [phone]",
     ("phone",)),
    ("+1.555.123.4567", "[phone]", ("phone",)),
    ("tel:555-123-4567\n", "tel:[phone]\n", ("phone",)),
    # phone numbers, Chinese
    ("手机13800138000", "手机[phone]", ("phone",)),
    ("电话13800138000或13900139000", "电话[phone]或[phone]", ("phone",)),
    ("13800138000,13900139000,13700137000", "[phone],[phone],[phone]", ("phone",)),
    ("请拨138-0013-8000。", "请拨[phone]。", ("phone",)),
    ("请拨138 0013 8000，", "请拨[phone]，", ("phone",)),
    ("+86 138 0013 8000", "[phone]", ("phone",)),
    ("+8613800138000", "[phone]", ("phone",)),
    ("座机010-12345678", "座机[phone]", ("phone",)),
    ("（021）12345678和(021)12345678", "[phone]和[phone]", ("phone",)),
    ("0755-1234567 0755-12345678 02112345678", "[phone] [phone] [phone]", ("phone",)),
    ("客服400-800-8888，或4008208820", "客服[phone]，或[phone]", ("phone",)),
    ("全角１３８００１３８０００号", "全角[phone]号", ("phone",)),
    # URLs
    ("see https://example.com/a?b=1&c=2#top.", "see [url].", ("url",)),
    ("(https://en.wikipedia.org/wiki/Foo_(bar))", "([url])", ("url",)),
    ("HTTP://EXAMPLE.COM/X and ftp://files.example.org/pub", "[url] and [url]", ("url",)),
    ("www.example.com, www.taobao.com。", "[url], [url]。", ("url",)),
    ("Also example.com/foo, bit.ly/abc)", "Also [url], [url])", ("url",)),
    ("go to example.com/", "go to [url]", ("url",)),
    ("**http://x.com**", "**[url]**", ("url",)),
    ("<https://x.com/a>", "<[url]>", ("url",)),
    ("'https://a.b/c'", "'[url]'", ("url",)),
    ("http://user@host.com/x", "[url]", ("url",)),  # one URL, not an address
    ("访问https://example.com/abc了解更多。", "访问[url]了解更多。", ("url",)),
    ("链接：t.cn/A6abc，快看", "链接：[url]，快看", ("url",)),
    ("商品https://item.jd.com/100012043978.html好评", "商品[url]好评", ("url",)),
    # several kinds
    ("邮箱：zhang.san@163.com，网址：www.163.com/abc，电话：010-12345678。",
     "邮箱：[email]，网址：[url]，电话：[phone]。", ("email", "phone", "url")),
    ("Write to a@b.io or call 555-123-4567; https://b.io/x", "Write to [email] or call "
     "[phone]; [url]", ("email", "phone", "url")),
]

NEGATIVE = [
    # prices
    "$19.99, ¥199, 1,299元, 2999.00, €45, US$1,299.99, RMB 2999, 1299.00元, 2999元/台",
    "$100-$200, 100-200元, 价格：13999元，3期免息，共128元",
    # ratings
    "5/5, 4.5 stars, 10/10, 五星, 4.5/5, 9/10, score 8.5/10, Overall: 4.375",
    # years, dates, times
    "2019, 2019-03-04, 2019年3月, 2019/03/04, 03/04/2019, 2019.03.04, 20190304",
    "2019-03-04 10:30:45, 10:30, 10:30-11:45, 2023-12-31T23:59:59Z, 3月4日 10:30",
    "Greatest Hits 1970-2002, (1942-2008), 1969-1979, 2001-2002",
    # model numbers and quantities
    "WH-1000XM4, iPhone 13, RTX 3080, SM-G9730, A2338, 3 pack, 128GB, 1080p, 3000mAh",
    "1920x1080, 3840×2160, 5.1 channel, IPX7, USB 3.0, Bluetooth 5.3, 100-240V, 5V/2A",
    # percentages, versions, decimals, abbreviations
    "50%, +15%, -20%, 99.9%, +12.5%, v1.2.3, Android 12.0.1, 3.5mm, 2.4GHz",
    "e.g. U.S. i.e. Ph.D/Master e.g./i.e. U.S./China Mr.Smith/Jones and/or km/h 1.5/5",
    # catalogue numbers, ISBNs, barcodes, long numbers, lists of numbers
    "Hip-O 440-014-367-2, Rounder 11661-0365-2, ISBN 978-7-111-12345-6, 0306406152",
    "UPC 012345678905, order #123-4567890-1234567, 139876543210, 1380013800",
    "120 150 2000, 100 200 3000 mm, 1,000,000, 10 000 000, 12345678901234567890",
    # addresses that are not URLs or e-mail addresses
    "node.js/react, chart.js/x, index.md/y, amazon.com, half.com, 192.168.1.1",
    "127.0.0.1:8080, localhost:3000/api, awww.so cute, user@localhost, @handle, 3@4.5",
    "kick @$$ hard, F!@# to, s@#t, r@b funk",
    # Chinese text with numbers
    "续航10小时，充电2小时。2019年买的。第1名，买了2个，共128元。",
    "",
]


def _duckdb_redact(con: duckdb.DuckDBPyConnection, texts: list[str]) -> list[tuple[str, int]]:
    """(redacted text, flags) of each text, as an ingest computes them in DuckDB."""
    con.execute("CREATE OR REPLACE TEMP TABLE t AS SELECT unnest(?) AS text, "
                "generate_subscripts(?, 1) AS i", [texts, texts])
    sql, params = redacted_text_sql("text", "pii")
    ctes, cte_params = flags_ctes("t", "text", "true", "f")
    return con.execute(f"WITH {ctes} SELECT {sql}, pii FROM f ORDER BY i",
                       [*cte_params, *params]).fetchall()


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


@pytest.mark.parametrize(("text", "expected", "kinds"), POSITIVE)
def test_personal_data_is_replaced(con, text: str, expected: str, kinds: tuple[str, ...]):
    assert redact(text) == (expected, kinds)
    [(stored, flags)] = _duckdb_redact(con, [text])
    assert (stored, kinds_of(flags)) == (expected, kinds)


@pytest.mark.parametrize("text", NEGATIVE)
def test_prices_ratings_dates_and_model_numbers_are_left_alone(con, text: str) -> None:
    assert redact(text) == (text, ())
    assert _duckdb_redact(con, [text]) == [(text, 0)]
    assert not con.execute("SELECT regexp_matches(?, ?)", [text, ANY]).fetchone()[0]


def _fuzz_texts(n: int, seed: int = 0) -> list[str]:
    """Random strings of the characters the patterns care about, and pieces of data."""
    rng = random.Random(seed)
    atoms = [*"0123456789" * 4, *" .-()+@/:,;。，（）＋＠１３８０\n[]", "www.", "http://",
             "https://", ".com", ".cn/", "a", "b", "x", "电话", "邮箱", "13800138000",
             "555-123-4567", "+44 20 7946 0958", "a@b.com", "example.com/x", "ftp://", "[at]",
             "(dot)", "Foo_(bar)", "010-", "400", "[email]", "[phone]"]
    return ["".join(rng.choice(atoms) for _ in range(rng.randint(0, 25))) for _ in range(n)]


def test_python_and_duckdb_agree_on_text_and_kinds(con) -> None:
    # The SQL an ingest runs and the Python twin give the same text and the same kinds, on
    # the cases above and on 5,000 random strings (about half of which hold something).
    corpus = [t for t, _, _ in POSITIVE] + NEGATIVE + _fuzz_texts(5_000)
    db = _duckdb_redact(con, corpus)
    py = [redact(t) for t in corpus]
    assert [(text, kinds_of(flags)) for text, flags in db] == py
    assert sum(bool(kinds) for _, kinds in py) > 1_000  # the random strings do hold some


def test_redaction_is_idempotent_and_null_stays_null(con) -> None:
    for _, expected, _ in POSITIVE:
        assert redact(expected) == (expected, ())
    sql, params = redacted_text_sql("text")
    assert con.execute(f"SELECT {sql} FROM (SELECT NULL::VARCHAR AS text)",
                       params).fetchone() == (None,)


def test_patterns_travel_as_parameters() -> None:
    sql, params = redacted_text_sql("text")
    assert "@" not in sql and "www" not in sql.lower()
    assert len(params) == 8  # url, email, phone twice: (pattern, replacement) each


def test_describe_words_the_counts() -> None:
    assert describe({"email": 12, "phone": 1, "url": 0}) == (
        "e-mail addresses in 12 reviews, phone numbers in 1 review")
    assert describe(dict.fromkeys(KINDS, 0)) == ""


# --- ingest -------------------------------------------------------------------------------

def _pii_rows() -> list[list[object]]:
    """u1: an address; u2: a phone and a URL; u3: nothing; plus a bad rating and a
    duplicate, both carrying personal data in their text."""
    return [
        ["u1", "i1", "Great. Mail me: fan+1@music.example.com", 5, 1_600_000_000, "A > B", "T1"],
        ["u1", "i2", "电话13800138000或13900139000，网址www.example.cn/x。", 4, 1_600_100_000,
         "A > B", "T2"],
        ["u2", "i1", "Call 555-123-4567 or see https://shop.example.com/item?id=7.", 3,
         1_600_000_500, "A > C", "T1"],
        ["u3", "i2", "Worth $19.99 and 5/5 stars, bought 2019-03-04.", 5, 1_600_000_900,
         "A > B", "T2"],
        ["u3", "i3", "bad rating, mail bad@example.com", "five", 1_600_000_950, "A > B", "T3"],
        ["u2", "i1", "duplicate from 555-987-6543", 4, 1_600_001_000, "A > C", "T1"],
    ]


def _stored_texts(store, name: str) -> list[str]:
    return [r[0] for r in store.cursor().execute(
        "SELECT text FROM reviews WHERE dataset = ? ORDER BY row_number", [name]).fetchall()]


def test_ingest_stores_redacted_text_and_counts_it(store, tmp_path: Path) -> None:
    report = ingest_file(store, write_csv(tmp_path / "pii.csv", _pii_rows()), "pii")
    assert _stored_texts(store, "pii") == [
        "Great. Mail me: [email]",
        "电话[phone]或[phone]，网址[url]。",
        "Call [phone] or see [url].",
        "Worth $19.99 and 5/5 stars, bought 2019-03-04.",
    ]
    # Reviews with at least one of each kind: e-mail 1 (u1), phone 2 (u1's second, u2),
    # URL 2 (the same two); the rejected rows are not counted.
    assert report.redactions == {"email": 1, "phone": 2, "url": 2}
    assert "Personal data redacted: e-mail addresses in 1 review, phone numbers in 2 " \
           "reviews, URLs in 2 reviews." in report.summary()
    stored = store.cursor().execute(
        "SELECT redactions, user_id_hashing FROM datasets WHERE name = 'pii'").fetchone()
    assert json.loads(stored[0]) == report.redactions and stored[1] is None
    assert registered_report(store, "pii").redactions == report.redactions
    # The rejected rows' text is stored redacted too, and reported so.
    rejects = store.cursor().execute(
        "SELECT reason, text FROM ingest_rejects ORDER BY line").fetchall()
    assert [t for _, t in rejects] == ["bad rating, mail [email]", "duplicate from [phone]"]
    assert [r["text"] for r in report.rejected_rows] == [t for _, t in rejects]
    # Nothing unredacted anywhere in the database's text.
    dump = store.cursor().execute(
        "SELECT string_agg(text, ' ') FROM (SELECT text FROM reviews UNION ALL "
        "SELECT text FROM ingest_rejects)").fetchone()[0]
    for secret in ("music.example.com", "13800138000", "555-123-4567", "555-987-6543",
                   "bad@example.com", "www.example.cn"):
        assert secret not in dump


def test_malformed_records_lines_are_redacted(store, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user_id,item_id,text,rating\nu1,i1,fine,5\n"
                    "u2,i2,call 555-123-4567,4,extra\nu3,i3,ok,3\n", encoding="utf-8")
    report = ingest_file(store, path, "bad")
    assert report.n_rejected == 1
    line = store.cursor().execute("SELECT text FROM ingest_rejects").fetchone()[0]
    assert "[phone]" in line and "555-123-4567" not in line


def test_redaction_can_be_switched_off(store, tmp_path: Path) -> None:
    rows = _pii_rows()[:4]
    report = ingest_file(store, write_csv(tmp_path / "pii.csv", rows), "raw",
                         config=IngestConfig(redact_pii=False))
    assert _stored_texts(store, "raw") == [r[2] for r in rows]
    assert report.redactions == {}
    assert "redacted" not in report.summary()
    assert any(n.startswith("Redaction is off") for n in report.notices)
    assert store.cursor().execute(
        "SELECT redactions FROM datasets WHERE name = 'raw'").fetchone() == (None,)
    assert json.loads(store.cursor().execute(
        "SELECT config FROM datasets WHERE name = 'raw'").fetchone()[0])["redact_pii"] is False


def test_redacting_without_the_first_pass_flags_is_refused(store, tmp_path, monkeypatch):
    # write_reviews(redact=True) after a first pass that did not look for personal data
    # would store unredacted text: it refuses, and the ingest stores nothing.
    from mgi_core.data import ingest as ingest_module
    from mgi_core.store import ingest_write

    def always_redact(*args, redact=True):
        return ingest_write.write_reviews(*args, redact=True)

    monkeypatch.setattr(ingest_module, "write_reviews", always_redact)
    with pytest.raises(ValueError, match="did not look for personal data"):
        ingest_file(store, write_csv(tmp_path / "pii.csv", _pii_rows()[:4]), "x",
                    config=IngestConfig(redact_pii=False))
    assert store.cursor().execute("SELECT count(*) FROM reviews").fetchone() == (0,)


def test_parquet_text_is_redacted(store, tmp_path: Path) -> None:
    rows = _pii_rows()[:4]
    path = tmp_path / "pii.parquet"
    pd.DataFrame(rows, columns=["user_id", "item_id", "text", "rating", "timestamp",
                                "category", "item_title"]).to_parquet(path)
    report = ingest_file(store, path, "pq")
    assert report.redactions == {"email": 1, "phone": 2, "url": 2}
    assert _stored_texts(store, "pq")[2] == "Call [phone] or see [url]."


def test_clean_file_reports_zero_and_says_nothing(store, tmp_path: Path) -> None:
    rows = [r for r in _pii_rows() if r[0] == "u3" and r[3] == 5]
    report = ingest_file(store, write_csv(tmp_path / "clean.csv", rows), "clean")
    assert report.redactions == {"email": 0, "phone": 0, "url": 0}
    assert "redacted" not in report.summary() and not any("Redaction" in n
                                                            for n in report.notices)


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "utf-16"])
def test_chinese_file_in_any_encoding_is_redacted(store, tmp_path, encoding: str) -> None:
    rows = [["用户1", "商品1", "客服电话400-800-8888，手机13800138000，邮箱kf@shop.cn。五星好评！",
             5, 1_600_000_000, "数码 > 耳机", "耳机"],
            ["用户2", "商品1", "价格199元，2019年3月买的，续航10小时。", 4, 1_600_000_100,
             "数码 > 耳机", "耳机"]]
    path = write_csv(tmp_path / "zh.csv", rows, encoding=encoding)
    report = ingest_file(store, path, "zh")
    assert _stored_texts(store, "zh") == [
        "客服电话[phone]，手机[phone]，邮箱[email]。五星好评！",
        "价格199元，2019年3月买的，续航10小时。",
    ]
    assert report.redactions == {"email": 1, "phone": 1, "url": 0}


def test_cli_ingest_reports_redactions(tmp_path, capsys) -> None:
    from mgi_core.cli import main

    path = write_csv(tmp_path / "pii.csv", _pii_rows()[:4])
    db = str(tmp_path / "cli.duckdb")
    assert main(["ingest", str(path), "--name", "on", "--db", db]) == 0
    assert "Personal data redacted: e-mail addresses in 1 review" in capsys.readouterr().out
    assert main(["ingest", str(path), "--name", "off", "--db", db, "--no-redact-pii",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["redactions"] == {}
    assert any(n.startswith("Redaction is off") for n in out["notices"])


def test_cli_switches_redaction_and_hashing() -> None:
    parser = build_parser()
    off = parser.parse_args(["ingest", "f.csv", "--name", "x", "--no-redact-pii",
                             "--hash-user-ids"])
    config = config_from_args(IngestConfig, off)
    assert (config.redact_pii, config.hash_user_ids) == (False, True)
    default = config_from_args(IngestConfig, parser.parse_args(["ingest", "f.csv", "--name",
                                                                "x"]))
    assert (default.redact_pii, default.hash_user_ids) == (True, False)
