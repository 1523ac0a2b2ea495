"""One tree of errors. Pages and the CLI show ``str(error)`` and nothing else.

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations

from typing import Any


class MgiError(Exception):
    """Base of every error MGI raises on purpose (bad input, busy store, unknown names)."""


class ConfigError(MgiError, ValueError):
    """A configuration value is out of range or not one of the allowed choices."""


class DataValidationError(MgiError):
    """An input file was rejected as a whole (no rows were stored).

    Raised for unreadable or empty files, a missing required column, row or size caps, and
    in strict mode for any rejected row. ``report`` carries the validation report when one
    was built, so a caller can still show which rows failed and why.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class DatasetNotFoundError(MgiError):
    """A dataset name that is not in the registry was asked for."""


class DatasetExistsError(MgiError):
    """A different file was ingested under a dataset name that is already taken."""


class StoreBusyError(MgiError):
    """The DuckDB file is held by another process (DuckDB allows one writer process)."""


class StoreError(MgiError):
    """The DuckDB file cannot be opened or migrated (corrupt, newer schema, not a database)."""


class UnknownUserError(MgiError):
    """A user id that the dataset does not contain was asked for."""


class ModelVersionNotFound(MgiError):
    """A model version id that is not registered (or not usable) was asked for."""


class EncoderLoadError(MgiError):
    """An encoder cannot be loaded: missing folder, pickled weights, or no network for a hub id."""


class CheckpointError(MgiError):
    """A checkpoint is missing, incomplete or pickled (only safetensors are loaded)."""


class JobError(MgiError):
    """A background job cannot start (one is already running) or its run folder is unusable."""
