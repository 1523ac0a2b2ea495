"""Recognise a review file before DuckDB reads it: format, text encoding, delimiter.

DuckDB reads UTF-8 (with or without BOM) itself; UTF-16, Latin-1, GBK and other legacy
encodings are transcoded to a temporary UTF-8 file in fixed-size chunks, so memory stays
flat whatever the file size. A UTF-8 file whose line endings are mixed (CRLF and LF, or old
Mac CR) is rewritten the same way with LF endings, which DuckDB's strict parser needs.

Hostile files are refused here, before any parser sees them, with one kind of error
(:class:`DataValidationError`): binary content (NUL bytes anywhere in the file, control
characters, or a known binary signature), a first line over :data:`MAX_HEADER_BYTES` or
with more than :data:`MAX_COLUMNS` columns. Every check reads a bounded sample or streams
the file once, in linear time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mgi_core.errors import DataValidationError
from mgi_core.processes import process_alive

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
SAMPLE = 1024 * 1024
# A header line holds column names: longer than this, or with more columns, it is not one
# (a headerless file, a wrong delimiter, or a hostile file). Both bound the work per file.
MAX_HEADER_BYTES = 64 * 1024
MAX_COLUMNS = 1_000
# Text never holds many C0 control characters (beyond tab, newlines and form feed): more
# than this share of a sample's bytes and the file is binary, NUL bytes or not.
MAX_CONTROL_SHARE = 0.01
_CONTROL = bytes([*range(1, 9), 11, *range(14, 32), 127])
_NO_CONTROL = bytes.maketrans(b"", b"")
# Signatures of files people upload by mistake, with what to do instead.
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (or an Excel .xlsx workbook)",
     "Unzip it, or save the sheet as CSV (File > Save As > CSV UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls)", "Save the sheet as CSV UTF-8"),
    (b"%PDF", "a PDF document", "Export the reviews as CSV"),
    (b"\x1f\x8b", "a gzip-compressed file", "Decompress it first (gunzip)"),
    (b"\xfd7zXZ", "an xz-compressed file", "Decompress it first (unxz)"),
    (b"7z\xbc\xaf", "a 7-Zip archive", "Extract the CSV first"),
    (b"\x89PNG", "a PNG image", "Upload the reviews as CSV"),
    (b"\xff\xd8\xff", "a JPEG image", "Upload the reviews as CSV"),
    (b"GIF87a", "a GIF image", "Upload the reviews as CSV"),
    (b"GIF89a", "a GIF image", "Upload the reviews as CSV"),
    (b"SQLite format 3", "a SQLite database", "Export the reviews table as CSV"),
    (b"\x7fELF", "a program (ELF binary)", "Upload the reviews as CSV"),
)
# Temporary copies this module writes, named with the writing process's id so that a copy
# left by a killed process can be recognised and removed (cleanup_stale_temp_files).
TEMP_PREFIX = "mgi-utf8-"
_TEMP_NAME = re.compile(r"^(?:mgi-utf8-|mgi_upload_)(\d+)[-_]")
STALE_UNNAMED_S = 6 * 3600  # copies from before pids were in the names: removed when older
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
    for signature, what, todo in _SIGNATURES:
        if sample.startswith(signature):
            raise DataValidationError(
                f"{path.name} is {what}, not a CSV or Parquet file of reviews. {todo}, and "
                "upload that."
            )
    if b"\x00" in sample:
        utf16 = _utf16_without_bom(sample)
        if utf16:
            return utf16
        raise DataValidationError(
            f"{path.name} looks like a binary file, not a text CSV (it contains NUL bytes). "
            "Export the reviews as CSV (or Parquet) and upload that."
        )
    n_control = len(sample) - len(sample.translate(_NO_CONTROL, _CONTROL))
    if n_control > MAX_CONTROL_SHARE * len(sample):
        raise DataValidationError(
            f"{path.name} looks like a binary file, not a text CSV ({n_control:,} control "
            f"characters in its first {len(sample):,} bytes). Export the reviews as CSV (or "
            "Parquet) and upload that."
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
    """Write ``path`` decoded from ``encoding`` as UTF-8, with LF line endings, into a
    temporary file (``CRLF`` and a lone ``CR`` become ``LF``, also inside quoted fields).

    The file's name carries this process's id: a copy left behind by a killed process is
    removed by :func:`cleanup_stale_temp_files`.

    Raises:
        DataValidationError: a byte sequence is invalid in ``encoding``.
    """
    cleanup_stale_temp_files(workdir)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".csv",
                               dir=workdir)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    pending_cr = False  # a chunk that ends in CR may be half of a CRLF
    try:
        with open(path, "rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            while True:
                block = src.read(CHUNK)
                try:  # b"": the end, where a truncated last character fails
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    raise DataValidationError(
                        f"{path.name} is not valid {encoding} near byte {offset + exc.start}. "
                        "Save it as UTF-8 and upload it again."
                    ) from exc
                if pending_cr:
                    text = "\r" + text
                pending_cr = bool(block) and text.endswith("\r")
                if pending_cr:
                    text = text[:-1]
                dst.write(text.replace("\r\n", "\n").replace("\r", "\n"))
                if not block:
                    break
                offset += len(block)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


@dataclass(frozen=True)
class TextScan:
    """What one streaming pass over a UTF-8 file found: line endings and the first NUL."""

    crlf: int
    lf: int  # every LF, those of CRLF included
    lone_cr: int
    nul_offset: int | None
    nul_line: int | None

    @property
    def mixed_line_endings(self) -> bool:
        """CRLF beside bare LF, or any lone CR: DuckDB's strict parser refuses both."""
        return bool(self.lone_cr) or (0 < self.crlf < self.lf)


def scan_text(path: Path) -> TextScan:
    """Count line endings and find the first NUL byte of a UTF-8 file, in one pass."""
    crlf = lf = cr = 0
    nul_offset = nul_line = None
    offset, last = 0, b""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            joined = last + block  # a CRLF may straddle two blocks
            crlf += joined.count(b"\r\n") - last.count(b"\r\n")
            lf += block.count(b"\n")
            cr += block.count(b"\r")
            if nul_offset is None and (i := block.find(b"\x00")) >= 0:
                nul_offset = offset + i
                nul_line = lf - block.count(b"\n") + block.count(b"\n", 0, i) + 1
            offset += len(block)
            last = block[-1:]
    return TextScan(crlf, lf, cr - crlf, nul_offset, nul_line)


def cleanup_stale_temp_files(folder: Path | None = None) -> list[Path]:
    """Remove temporary copies (and upload folders) that a killed MGI process left behind.

    A name carries the pid of the process that wrote it; it is removed when that process is
    gone. Names without a pid (older MGI) are removed once they are a few hours old.
    Returns what was removed.
    """
    import shutil

    root = Path(folder or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith((TEMP_PREFIX, "mgi_upload_")):
            continue
        m = _TEMP_NAME.match(name)
        try:
            stale = (not process_alive(int(m[1]))) if m else (
                time.time() - entry.stat().st_mtime > STALE_UNNAMED_S)
            if not stale:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue  # another process removed it first, or it is not ours to remove
        removed.append(entry)
        log.info("removed %s, left behind by a process that has ended", entry)
    return removed


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
    """The first line of a text file (a header never spans lines in the files we accept).

    Raises:
        DataValidationError: the first line is longer than :data:`MAX_HEADER_BYTES`.
    """
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        line = fh.readline(MAX_HEADER_BYTES + 1)
    if len(line) > MAX_HEADER_BYTES and not line.endswith(("\n", "\r")):
        raise DataValidationError(
            f"The first line of {path.name} is longer than {MAX_HEADER_BYTES // 1024} KiB, so "
            "it is not a header line of column names. A review file starts with a header "
            "such as user_id,item_id,text,rating; add one (or check that this is a CSV)."
        )
    return line.lstrip("\ufeff").split("\n", 1)[0].split("\r", 1)[0]


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
    """Column names from a CSV header line: unquoted, trimmed, blanks and repeats renamed.

    Linear in the line's length. Raises:
        DataValidationError: more than :data:`MAX_COLUMNS` columns, or an unparseable line.
    """
    try:
        names = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as exc:
        raise DataValidationError(
            f"The header line cannot be read as CSV ({exc}). The first line must hold the "
            "column names, e.g. user_id,item_id,text,rating."
        ) from exc
    if len(names) > MAX_COLUMNS:
        raise DataValidationError(
            f"The header line has {len(names):,} columns; MGI reads files with at most "
            f"{MAX_COLUMNS:,}. Keep the review columns (user_id, item_id, text, rating, ...) "
            "and check that the delimiter is a comma, semicolon, tab or pipe."
        )
    out: list[str] = []
    seen: set[str] = set()
    next_suffix: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        base = name
        n = next_suffix.get(base, 2)
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        next_suffix[base] = n
        seen.add(name)
        out.append(name)
    return out
