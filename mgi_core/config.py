"""Typed, validated configuration: one frozen dataclass per stage, JSON round-trip.

Each field carries a help text in its metadata (``field(metadata={"help": ...})``) so the
CLI and the pages show the same words. ``__post_init__`` rejects bad values with a message
that says what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mgi_core.errors import ConfigError

C = TypeVar("C", bound="BaseConfig")


def _f(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best at the call site
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class BaseConfig:
    """Shared JSON round-trip and help lookup for the stage configs."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    @classmethod
    def help(cls, name: str) -> str:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata.get("help", "")
        raise ConfigError(f"{cls.__name__} has no field {name!r}")


@dataclass(frozen=True)
class IngestConfig(BaseConfig):
    """How a review file is read, validated and stored."""

    category_separator: str = _f(" > ", "Separator between levels of the category path.")
    rating_min: float = _f(1.0, "Lowest valid rating; smaller values reject the row.")
    rating_max: float = _f(5.0, "Highest valid rating; larger values reject the row.")
    strict: bool = _f(False, "Reject the whole file when any row is invalid.")
    max_rows: int = _f(5_000_000, "Largest number of data rows accepted in one file.")
    max_bytes: int = _f(4 * 1024**3, "Largest file size in bytes accepted.")

    def __post_init__(self) -> None:
        if not self.category_separator:
            raise ConfigError("category_separator must be a non-empty string, e.g. ' > '")
        if not self.rating_min < self.rating_max:
            raise ConfigError(
                f"rating_min ({self.rating_min}) must be below rating_max ({self.rating_max})"
            )
        if self.max_rows < 1:
            raise ConfigError(f"max_rows must be at least 1, got {self.max_rows}")
        if self.max_bytes < 1:
            raise ConfigError(f"max_bytes must be at least 1, got {self.max_bytes}")


@dataclass(frozen=True)
class SplitConfig(BaseConfig):
    """Temporal leave-last-out split per user (DESIGN.md, evaluation protocol)."""

    min_reviews: int = _f(
        3, "Users with at least this many reviews give their latest to test, the next to val."
    )

    def __post_init__(self) -> None:
        if self.min_reviews < 3:
            raise ConfigError(
                f"min_reviews must be >= 3 (one train, one validation, one test review), "
                f"got {self.min_reviews}"
            )
