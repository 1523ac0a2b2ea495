"""Salted hashing of user ids: where the salt lives, and a user's id as a dataset stores it.

With ``IngestConfig.hash_user_ids`` an ingest stores ``sha256(salt || user_id)`` (lower-case
hex) instead of each user id, computed by DuckDB in the first pass, so the raw id never
reaches a table. The salt never enters the database. It is, in this order:

1. the environment variable ``MGI_USER_ID_SALT``;
2. the contents of the file named by ``MGI_SALT_FILE``;
3. the contents of ``~/.config/mgi/user_id_salt``.

A salt file that does not exist is made on first use: 32 random bytes as hex, readable by
its owner only (mode 0600). Keep it (and back it up) with the database: without the same
salt, a raw id can no longer be matched to its stored hash (``forget --user`` needs it),
and an append to the dataset would store its users under other ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from mgi_core.errors import ConfigError, DatasetNotFoundError
from mgi_core.store import Store
from mgi_core.store.ingest_registry import registered_file
from mgi_core.store.ingest_sql import HASHED_USER_IDS

log = logging.getLogger(__name__)

SALT_ENV = "MGI_USER_ID_SALT"
SALT_FILE_ENV = "MGI_SALT_FILE"
DEFAULT_SALT_FILE = Path("~/.config/mgi/user_id_salt")
SALT_BYTES = 32
_SHORT_SALT = 16  # characters; a shorter salt is accepted with a warning


def salt_file() -> Path:
    """The salt file: ``$MGI_SALT_FILE``, else ``~/.config/mgi/user_id_salt``."""
    return Path(os.environ.get(SALT_FILE_ENV) or DEFAULT_SALT_FILE).expanduser()


def salt_source() -> str:
    """Where :func:`user_id_salt` takes the salt from, for messages (never the salt)."""
    return f"${SALT_ENV}" if os.environ.get(SALT_ENV) else str(salt_file())


def user_id_salt() -> str:
    """The salt for hashing user ids (see the module's docstring for where it comes from).

    Raises:
        ConfigError: the salt file cannot be read or written, or holds no salt.
    """
    salt = os.environ.get(SALT_ENV)
    if not salt:
        salt = _read_or_create(salt_file())
    if len(salt) < _SHORT_SALT:
        log.warning("the user-id salt from %s has %d characters; use at least %d",
                    salt_source(), len(salt), _SHORT_SALT)
    return salt


def _read_or_create(path: Path) -> str:
    try:
        if not path.exists():
            _create(path)
        if path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users; chmod 600 it", path)
        salt = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read or create the user-id salt file {path}: {exc.strerror or exc}. "
            f"Set {SALT_ENV}, or {SALT_FILE_ENV} to a file you can write."
        ) from exc
    if not salt:
        raise ConfigError(
            f"The user-id salt file {path} is empty. Restore the salt the datasets were "
            f"hashed with (or delete the file to make a new one for new datasets)."
        )
    return salt


def _create(path: Path) -> None:
    """A new salt file (mode 0600, its folder 0700); one made meanwhile by another process
    is kept."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(SALT_BYTES) + "\n")
    log.info("made a new user-id salt file %s", path)


def hash_user_id(raw: str, salt: str) -> str:
    """``sha256(salt || raw)`` as lower-case hex: what DuckDB's ``sha256`` stores for ``raw``
    (UTF-8 text)."""
    return hashlib.sha256((salt + raw).encode("utf-8")).hexdigest()


SALT_CHECK_TAG = "mgi user-id salt check:"


def salt_check(salt: str) -> str:
    """A fingerprint of ``salt`` kept with a hashed dataset (``datasets.user_id_salt_check``),
    so that a different salt is noticed before it gives the same users other ids. It is a
    hash of a fixed tag and the salt: the salt cannot be read back from it."""
    return hashlib.sha256((SALT_CHECK_TAG + salt).encode("utf-8")).hexdigest()


def dataset_salt(store: Store, dataset: str) -> str:
    """The salt that hashed ``dataset``'s user ids: this machine's salt, checked against the
    fingerprint stored at ingest.

    Raises:
        DatasetNotFoundError: no dataset ``dataset``.
        ConfigError: no salt can be read, or it is not the one the dataset was hashed with.
    """
    entry = registered_file(store, dataset)
    if entry is None:
        raise DatasetNotFoundError(f"No dataset named {dataset!r}.")
    salt = user_id_salt()
    if entry.user_id_salt_check is not None and salt_check(salt) != entry.user_id_salt_check:
        raise ConfigError(
            f"The user-id salt here ({salt_source()}) is not the one dataset {dataset!r} was "
            "hashed with, so its users would get other ids. Restore that salt "
            "($MGI_USER_ID_SALT, $MGI_SALT_FILE or ~/.config/mgi/user_id_salt) and try again."
        )
    return salt


def stored_user_id(store: Store, dataset: str, raw_id: str) -> str:
    """The id under which ``dataset`` stores the user the review file called ``raw_id``.

    Spaces around it are dropped, as the ingest drops them. For a dataset ingested with
    ``hash_user_ids``, the salted hash (the salt from :func:`user_id_salt`); otherwise the
    id itself.

    Raises:
        DatasetNotFoundError: no dataset ``dataset``.
        ConfigError: the dataset's ids are hashed and no salt can be read.
    """
    entry = registered_file(store, dataset)
    if entry is None:
        raise DatasetNotFoundError(f"No dataset named {dataset!r}.")
    raw = raw_id.strip(" ")
    if entry.user_id_hashing is None:
        return raw
    if entry.user_id_hashing != HASHED_USER_IDS:
        raise ConfigError(
            f"Dataset {dataset!r} stores user ids hashed as {entry.user_id_hashing!r}, which "
            "this version of MGI does not know."
        )
    return hash_user_id(raw, dataset_salt(store, dataset))
