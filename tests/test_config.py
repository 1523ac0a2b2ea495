"""Every config class round-trips through JSON and rejects bad values."""

from __future__ import annotations

import dataclasses

import pytest

from mgi_core.config import IngestConfig, ProfileConfig, SplitConfig, TrainConfig
from mgi_core.errors import ConfigError


@pytest.mark.parametrize("cls", [IngestConfig, SplitConfig, TrainConfig, ProfileConfig])
def test_round_trip(cls) -> None:
    config = cls()
    assert cls.from_json(config.to_json()) == config
    assert cls.from_dict(config.to_dict()) == config


def test_bad_values_are_rejected_with_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"rating_min .* must be below rating_max"):
        IngestConfig(rating_min=5, rating_max=1)
    with pytest.raises(ConfigError, match="min_reviews must be >= 3"):
        SplitConfig(min_reviews=2)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['nope'\]"):
        IngestConfig.from_dict({"nope": 1})


def test_help_texts_exist() -> None:
    assert IngestConfig.help("strict") == "Reject the whole file when any row is invalid."
    with pytest.raises(ConfigError):
        IngestConfig.help("missing")


def test_field_minimums_are_enforced_and_defaults_meet_them() -> None:
    for cls in (IngestConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            low = f.metadata.get("min")
            if low is None:
                continue
            assert cls.default(f.name) >= low, f.name
            with pytest.raises(ConfigError, match=rf"{f.name} must be >= {low}, got"):
                cls(**{f.name: low - 1})


def test_choices_in_the_metadata_are_what_the_config_accepts() -> None:
    for f in dataclasses.fields(TrainConfig):
        choices = f.metadata.get("choices")
        if choices is None or f.name == "tasks":
            continue
        for value in choices:
            TrainConfig(**{f.name: value})
        with pytest.raises(ConfigError):
            TrainConfig(**{f.name: "nope"})
    with pytest.raises(ConfigError, match="not allowed"):
        TrainConfig(tasks=("nope",))
