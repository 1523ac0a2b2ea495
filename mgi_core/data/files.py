"""Recognise a review file before DuckDB reads it: format, text encoding, delimiter.

DuckDB reads UTF-8 (with or without BOM) itself; UTF-16, Latin-1, GBK and other legacy
encodings are transcoded to a temporary UTF-8 file in fixed-size chunks, so memory stays
flat whatever the file size.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mgi_core.errors import DataValidationError

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
SAMPLE = 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
# Legacy encodings we accept when a file is not UTF-8; charset-normalizer picks among them.
LEGACY_ENCODINGS = ("gb18030", "big5", "shift_jis", "euc_kr", "cp1252", "latin_1")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class FileKind:
    """What a file is: ``format`` is ``csv`` or ``parquet``; text fields only for CSV."""

    format: str
    encoding: str | None = None
    delimiter: str | None = None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte of an ASCII-ish text is NUL."""
    even, odd = sample[0::2], sample[1::2]
    if len(sample) >= 8 and odd.count(0) > 0.8 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if len(sample) >= 8 and even.count(0) > 0.8 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def detect_encoding(path: Path) -> str:
    """The text encoding of ``path``.

    Raises:
        DataValidationError: the file is empty or looks binary.
    """
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE)
    if not sample.strip():
        raise DataValidationError(
            f"{path.name} is empty. Upload a CSV with a header line "
            "(user_id,item_id,text,rating,...) and at least one review."
        )
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if b"\x00" in sample:
        utf16 = _utf16_without_bom(sample)
        if utf16:
            return utf16
        raise DataValidationError(
            f"{path.name} looks like a binary file, not a text CSV (it contains NUL bytes). "
            "Export the reviews as CSV (or Parquet) and upload that."
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    return _guess_legacy(sample, path)


def _guess_legacy(sample: bytes, path: Path) -> str:
    from charset_normalizer import from_bytes  # imported here: only legacy files need it

    best = from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS)).best()
    if best is None:
        raise DataValidationError(
            f"Cannot tell the text encoding of {path.name}: it is not UTF-8, UTF-16, Latin-1 "
            "or GBK. Save it as UTF-8 and upload it again."
        )
    encoding = codecs.lookup(best.encoding).name
    if encoding in ("gbk", "gb2312"):
        encoding = "gb18030"  # a superset: decodes every GBK file
    log.info("%s: detected encoding %s", path.name, encoding)
    return encoding


def transcode_to_utf8(path: Path, encoding: str, workdir: Path | None = None) -> Path:
    """Write ``path`` decoded from ``encoding`` as UTF-8 into a temporary file.

    Raises:
        DataValidationError: a byte sequence is invalid in ``encoding``.
    """
    fd, tmp = tempfile.mkstemp(prefix="mgi-utf8-", suffix=".csv", dir=workdir)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        with open(path, "rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            for block in iter(lambda: src.read(CHUNK), b""):
                try:
                    dst.write(decoder.decode(block))
                except UnicodeDecodeError as exc:
                    raise DataValidationError(
                        f"{path.name} is not valid {encoding} near byte {offset + exc.start}. "
                        "Save it as UTF-8 and upload it again."
                    ) from exc
                offset += len(block)
            dst.write(decoder.decode(b"", final=True))
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def detect_delimiter(header_line: str) -> str:
    """The delimiter of a CSV from its header line: the candidate seen most outside quotes."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_header_line(path: Path, encoding: str) -> str:
    """The first line of a text file (a header never spans lines in the files we accept)."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        return fh.readline(SAMPLE).lstrip("\ufeff").rstrip("\r\n")


def is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head == b"PAR1"


def sniff_file(path: Path) -> FileKind:
    """Recognise format, encoding and delimiter of a review file (reads a sample only)."""
    if not path.exists():
        raise DataValidationError(f"File not found: {path}")
    if path.is_dir():
        raise DataValidationError(f"{path} is a folder; give the path of a CSV or Parquet file.")
    if path.stat().st_size == 0:
        raise DataValidationError(
            f"{path.name} is empty (0 bytes). Upload a CSV with a header line and reviews."
        )
    if is_parquet(path):
        return FileKind("parquet")
    encoding = detect_encoding(path)
    header = read_header_line(path, encoding)
    return FileKind("csv", encoding, detect_delimiter(header))


def parse_header(line: str, delimiter: str) -> list[str]:
    """Column names from a CSV header line: unquoted, trimmed, blanks and repeats renamed."""
    import csv

    names = next(csv.reader([line], delimiter=delimiter), [])
    out: list[str] = []
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        base, n = name, 2
        while name in out:
            name, n = f"{base}_{n}", n + 1
        out.append(name)
    return out
