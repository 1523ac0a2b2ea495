"""Redaction of e-mail addresses, phone numbers and URLs in review text, before it is stored.

The text of an ingest never streams through Python rows, so the redaction runs inside
DuckDB (``regexp_replace``, RE2 syntax); :func:`redact` applies the very same patterns in
Python (previews, tests: ``tests/data/test_redaction.py`` checks that both agree). The
patterns are written for both engines: explicit character classes only (no ``\\d``, ``\\w``,
``\\s`` or ``\\b``, which mean Unicode classes in Python and ASCII ones in RE2), no
look-around (RE2 has none), bounded repetitions (no catastrophic backtracking in Python).

The rules run in this order, each over the previous one's output:

1. ``url``: ``http://``, ``https://``, ``ftp://`` links; ``www.`` hosts; bare domains with a
   path (``example.com/foo``, ``t.cn/abc``) whose top-level domain is a common one (so
   ``node.js/react`` stays). A URL ends at a space, a non-ASCII character (Chinese text
   around it) or a quote or bracket; trailing ``. , ; : ! ?`` are not part of it; a ``)``
   only when the URL opened it.
2. ``email``: ``local@domain.tld`` (plus-addressing, sub-domains, the full-width ``＠``,
   ``name [at] domain [dot] com``). After URLs, so ``http://user@host/`` is one URL; before
   phones, so ``13800138000@qq.com`` is one e-mail address.
3. ``phone``: a phone-like shape between non-digits: ``+`` and a country code followed by
   at least seven digits in groups (``+1 (555) 123-4567``, ``+44 20 7946 0958``,
   ``+86 138 0013 8000``), North American ``555-123-4567`` / ``(555) 123-4567`` (groups
   separated), Chinese mobiles ``1[3-9]`` + 9 digits (``13800138000``, ``138-0013-8000``),
   landlines with a ``0`` area code (``010-12345678``, ``(021)12345678``), ``400``/``800``
   service numbers. Full-width digits count as digits. A longer run of digits, a price, a
   year, a date, a time or a model number has none of these shapes.

A phone's surrounding non-digits are part of its match (RE2 has no look-around) and are
put back; so two phones one character apart need the rule twice (the second pass finds
those the first skipped).

Placeholders: ``[url]``, ``[email]``, ``[phone]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = ("email", "phone", "url")  # as reported and stored (alphabetical)
PLACEHOLDERS = {"email": "[email]", "phone": "[phone]", "url": "[url]"}


def _ci(word: str) -> str:
    """``word`` matched in any letter case, without a case-insensitive flag (whose Unicode
    folding differs between Python and RE2)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# --- URLs ---------------------------------------------------------------------------------
_URL_CHAR = r"[A-Za-z0-9\-._~:/?#@!$&'*+,;=%]"  # RFC 3986 characters, minus brackets/quotes
_URL_LAST = r"[A-Za-z0-9\-_~/#@$&+=%]"  # no trailing . , ; : ! ? ' * (sentence punctuation)
_URL_PAREN = rf"\({_URL_CHAR}{{0,200}}\)"  # one balanced pair, as in /wiki/Foo_(bar)
_URL_BODY = rf"(?:{_URL_CHAR}|{_URL_PAREN})*(?:{_URL_LAST}|{_URL_PAREN})"
_LABEL = r"[A-Za-z0-9][A-Za-z0-9\-]{0,62}"
# Top-level domains a bare domain (no scheme, no www.) may end in: common generic ones and
# country codes that are no English word or file extension ("node.js/x", "it.is/x" stay).
_TLDS = (
    "com net org edu gov mil info biz io co ai app dev me tv cc ly gl xyz top site online "
    "shop store tech link club vip wang cn uk de jp fr ru hk tw kr us ca au eu nl es br in "
    "be ch se pl nz sg ie"
).split()
_TLD = "(?:" + "|".join(sorted(_TLDS + [t.upper() for t in _TLDS], key=len, reverse=True)) + ")"
# Before a www. host or a bare domain: not a letter, digit or a character that continues an
# address (so "awww.so" and "x@example.com/foo" start no URL); group 1, put back.
_URL_BEFORE = r"(^|[^A-Za-z0-9@.\-_/\\%+])"
URL = (
    rf"(?:{_ci('https')}|{_ci('http')}|{_ci('ftp')})://{_URL_BODY}"
    rf"|{_URL_BEFORE}(?:"
    rf"{_ci('www')}\.{_URL_BODY}"
    rf"|{_LABEL}(?:\.{_LABEL}){{0,8}}\.{_TLD}(?::[0-9]{{1,5}})?/(?:{_URL_BODY})?"
    r")"
)

# --- e-mail addresses ---------------------------------------------------------------------
_AT = rf"(?:[@＠]| ?[\[(（] ?{_ci('at')} ?[\])）] ?)"
_DOT = rf"(?:[.．]| ?[\[(（] ?{_ci('dot')} ?[\])）] ?)"
EMAIL = (
    rf"[A-Za-z0-9._%+\-]{{1,64}}{_AT}"
    rf"(?:[A-Za-z0-9][A-Za-z0-9\-]{{0,62}}{_DOT}){{1,8}}[A-Za-z]{{2,24}}"
)

# --- phone numbers ------------------------------------------------------------------------
_D = "[0-9０-９]"  # a digit, ASCII or full-width
_NOT_D = "[^0-9０-９]"
_SEP = "[ .\\-－–]"  # one separator between digit groups
_PLUS = "[+＋]"
_LP, _RP = "[(（]", "[)）]"


def _digits(low: int, high: int | None = None) -> str:
    return f"{_D}{{{low}}}" if high is None else f"{_D}{{{low},{high}}}"


# After "+country code": 7 to 14 digits, in one run or in groups (two groups: at least
# seven digits between them, so "+1 2019" or "+5 10 20" is no phone).
_TWO_GROUPS = "|".join(
    f"{_digits(a)}{_SEP}{_digits(7 - a, 8)}" for a in (2, 3, 4)
) + f"|{_digits(5)}{_SEP}{_digits(2, 8)}"
_INTL = (
    f"{_PLUS}[1-9１-９]{_digits(0, 2)}{_SEP}?(?:{_LP}{_digits(1, 4)}{_RP}{_SEP}?)?"
    f"(?:{_digits(1, 5)}(?:{_SEP}{_digits(2, 5)}){{2,5}}|{_TWO_GROUPS}|{_digits(7, 14)})"
)
# North America: 555-123-4567, 555.123.4567, (555) 123-4567, 1-800-555-1234. The last two
# groups are joined by a dash or dot ("100 200 3000" is a list of numbers).
_DASH = "[.\\-－–]"
_NANP = (
    f"(?:[1１]{_SEP}?)?(?:{_LP}{_digits(3)}{_RP}{_SEP}?|{_digits(3)}{_SEP})"
    f"{_digits(3)}{_DASH}{_digits(4)}"
)
_CN_MOBILE = f"[1１][3-9３-９]{_D}{_SEP}?{_digits(4)}{_SEP}?{_digits(4)}"
_CN_SERVICE = f"[48４８][0０][0０]{_SEP}?{_digits(3)}{_SEP}?{_digits(4)}"  # 400-800-8888
_ZERO, _NON_ZERO = "[0０]", "[1-9１-９]"
# Landlines with a 0 area code: 010-12345678, (021)12345678, 0755-1234567, 020 7946 0958.
# Without a separator only 11 digits (area code and number), so an ISBN-10 or a barcode
# starting with 0 is none.
_AREA = f"{_ZERO}{_NON_ZERO}{_digits(1, 2)}"
_LANDLINE = (
    f"(?:{_LP}{_AREA}{_RP}{_SEP}?|{_AREA}{_SEP}){_digits(7, 8)}"
    f"|{_ZERO}{_NON_ZERO}{_D}{_digits(8)}|{_ZERO}{_NON_ZERO}{_digits(2)}{_digits(7)}"
    f"|{_ZERO}{_NON_ZERO}{_digits(1, 3)}{_SEP}{_digits(3, 4)}{_SEP}{_digits(3, 4)}"
)
PHONE = (
    f"(^|{_NOT_D})"
    f"(?:{_INTL}|{_NANP}|{_CN_MOBILE}|{_CN_SERVICE}|{_LANDLINE})"
    f"({_NOT_D}|$)"
)


@dataclass(frozen=True)
class Rule:
    """One kind of personal data: its pattern, its replacement (RE2's and Python's
    ``\\1`` syntax agree) and how many passes find every match."""

    kind: str
    pattern: str
    replacement: str
    passes: int = 1
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))

    def sub(self, text: str) -> str:
        for _ in range(self.passes):
            text = self.regex.sub(self.replacement, text)
        return text


RULES: tuple[Rule, ...] = (
    Rule("url", URL, r"\1" + PLACEHOLDERS["url"]),
    Rule("email", EMAIL, PLACEHOLDERS["email"]),
    Rule("phone", PHONE, r"\1" + PLACEHOLDERS["phone"] + r"\2", passes=2),
)
ANY = "|".join(f"(?:{r.pattern})" for r in RULES)  # a first, cheap look: any of them
_BITS = {r.kind: 1 << i for i, r in enumerate(RULES)}


def redact(text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` with its e-mail addresses, phone numbers and URLs replaced, and the kinds
    replaced (in :data:`KINDS` order). The same result as :func:`redacted_text_sql`."""
    found = []
    for rule in RULES:
        new = rule.sub(text)
        if new != text:
            found.append(rule.kind)
        text = new
    return text, tuple(k for k in KINDS if k in found)


def kinds_of(flags: int) -> tuple[str, ...]:
    """The kinds in a :func:`flags_ctes` bit mask, in :data:`KINDS` order."""
    return tuple(k for k in KINDS if flags & _BITS[k])


def _replace_sql(rule: Rule, text: str, passes: int | None = None) -> tuple[str, list[Any]]:
    sql, params = text, []
    for _ in range(rule.passes if passes is None else passes):
        sql = f"regexp_replace({sql}, ?, ?, 'g')"
        params = [*params, rule.pattern, rule.replacement]
    return sql, params


def redacted_text_sql(text: str, flags: str | None = None) -> tuple[str, list[Any]]:
    """SQL for ``text`` (a column or expression) with every rule applied, and its
    parameters (the patterns, in order).

    ``flags``: a column of :func:`flags_ctes`' bit masks: rows whose mask is 0 are left as
    they are without running a pattern (most rows hold nothing to redact).
    """
    sql, params = text, []
    for rule in RULES:
        sql, more = _replace_sql(rule, sql)  # regexp_replace(inner, ?, ?): inner's first
        params += more
    if flags is None:
        return sql, params
    return f"CASE WHEN coalesce({flags}, 0) = 0 THEN {text} ELSE {sql} END", params


def flags_ctes(source: str, text: str, condition: str, name: str) -> tuple[str, list[Any]]:
    """WITH items (without ``WITH``; after the source's) ending in CTE ``name``: every
    column of ``source`` plus ``pii``, a UTINYINT bit mask of the kinds a redaction of
    ``text`` replaces (0: none; :func:`kinds_of` reads it), exactly as :func:`redact` finds
    them. Rows where ``condition`` is false get 0 without a look.

    One pass of :data:`ANY` over every row; the rules themselves run only on rows where it
    matched, each over the previous one's output (a phone inside an e-mail address or a URL
    is not counted as a phone).
    """
    stage = f"_pii_{name}"
    items = [f"{name}_0 AS (SELECT *, CASE WHEN ({condition}) AND regexp_matches({text}, ?) "
             f"THEN {text} END AS {stage}_0 FROM {source})"]
    params: list[Any] = [ANY]
    changed = []
    for i, rule in enumerate(RULES, start=1):
        replaced, more = _replace_sql(rule, f"{stage}_{i - 1}", passes=1)
        items.append(f"{name}_{i} AS (SELECT *, {replaced} AS {stage}_{i} FROM {name}_{i - 1})")
        params += more
        changed.append(f"CASE WHEN {stage}_{i} <> {stage}_{i - 1} THEN {_BITS[rule.kind]} "
                       "ELSE 0 END")
    temps = ", ".join(f"{stage}_{i}" for i in range(len(RULES) + 1))
    items.append(
        f"{name} AS (SELECT * EXCLUDE ({temps}), CAST(coalesce({' + '.join(changed)}, 0) "
        f"AS UTINYINT) AS pii FROM {name}_{len(RULES)})"
    )
    return ",\n".join(items), params


def counts_sql(flags: str) -> str:
    """SELECT list counting the rows with each kind in ``flags``, in :data:`KINDS` order."""
    return ", ".join(f"count(*) FILTER (WHERE ({flags} & {_BITS[k]}) <> 0)" for k in KINDS)


def describe(counts: dict[str, int]) -> str:
    """``{'email': 12, 'phone': 1, 'url': 0}`` in words: "e-mail addresses in 12 reviews,
    phone numbers in 1 review" ('' when every count is 0)."""
    words = {"email": "e-mail addresses", "phone": "phone numbers", "url": "URLs"}
    return ", ".join(f"{words[k]} in {counts[k]:,} review{'s' if counts[k] != 1 else ''}"
                     for k in KINDS if counts.get(k))
