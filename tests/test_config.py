"""Every config class round-trips through JSON and rejects bad values."""

from __future__ import annotations

import pytest

from mgi_core.config import IngestConfig, SplitConfig
from mgi_core.errors import ConfigError


@pytest.mark.parametrize("cls", [IngestConfig, SplitConfig])
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
