"""What an ingest reports: counts, reasons for rejected rows, the detected format; and the
first look at a file that comes before (:class:`FileInspection`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mgi_core.data.files import FileKind
from mgi_core.errors import DatasetNotFoundError
from mgi_core.store import Store
from mgi_core.store.ingest_registry import registered_file, stored_rejects_by_reason
from mgi_core.store.redaction import describe


@dataclass
class IngestReport:
    """What an ingest did: counts, reasons for rejected rows, and the detected format."""

    dataset: str
    file_name: str
    file_hash: str
    format: str
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str]
    n_read: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_users: int = 0
    n_items: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)  # first 10,000
    notices: list[str] = field(default_factory=list)
    unchanged: bool = False
    committed: bool = False
    # {kind: stored reviews with at least one redaction} for 'email', 'phone', 'url';
    # empty when the text was stored unredacted (IngestConfig.redact_pii off).
    redactions: dict[str, int] = field(default_factory=dict)
    user_id_hashing: str | None = None  # 'sha256-salted' when user ids are hashed
    user_id_salt_check: str | None = None  # which salt hashed them (privacy.salt_check)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.unchanged:
            return (
                f"{self.file_name} is already stored as dataset {self.dataset!r}; "
                "nothing changed."
            )
        head = (
            f"{self.dataset}: {self.n_accepted:,} of {self.n_read:,} rows stored "
            f"({self.n_users:,} users, {self.n_items:,} items), {self.n_rejected:,} rejected"
        )
        if self.rejected_by_reason:
            head += ": " + "; ".join(f"{r} ({n:,})" for r, n in self.rejected_by_reason.items())
        redacted = self.redaction_text()
        return head + "." + (f" {redacted}" if redacted else "")

    def redaction_text(self) -> str:
        """What was redacted, as a sentence ('' when nothing was)."""
        found = describe(self.redactions)
        return f"Personal data redacted: {found}." if found else ""


@dataclass
class FileInspection:
    """A first look at a file for the mapping step: its kind, columns, guess and preview."""

    kind: FileKind
    columns: list[str]
    guessed_mapping: dict[str, str]
    preview: Any  # pandas.DataFrame of the first rows, all text


def registered_report(store: Store, name: str) -> IngestReport:
    """The report of an already stored dataset, rebuilt from the registry.

    Raises:
        DatasetNotFoundError: no dataset of that name.
    """
    row = registered_file(store, name)
    if row is None:
        raise DatasetNotFoundError(f"No dataset named {name!r}.")
    return IngestReport(
        dataset=name, file_name=row.file_name, file_hash=row.file_hash, format=row.file_format,
        encoding=None if row.encoding == "parquet" else row.encoding, delimiter=row.delimiter,
        mapping=row.mapping, n_read=row.n_reviews + row.n_rejected, n_accepted=row.n_reviews,
        n_rejected=row.n_rejected, n_users=row.n_users, n_items=row.n_items,
        rejected_by_reason=stored_rejects_by_reason(store, name), committed=True,
        redactions=dict(row.redactions or {}), user_id_hashing=row.user_id_hashing,
    )


# The report's notice when the text was stored without redaction.
UNREDACTED = ("Redaction is off: e-mail addresses, phone numbers and URLs in the review text "
              "are stored as they are.")


def hashing_notice(salt_source: str) -> str:
    """The report's notice when user ids are hashed (``salt_source``: where the salt is)."""
    return ("User ids are stored as salted SHA-256 hashes; the salt is kept outside the "
            f"database ({salt_source}). Keep it: without it a user cannot be found by the "
            "original id (e.g. to forget them).")
