"""Each user's profile rows grouped by level, as arrays: built once, read per user.

The content and category signals read a user's overall vector, fine interests and category
rows for every scored user; grouping ``UserProfiles.rows`` once per context keeps that a
dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgi_core.profiles.builder import UserProfiles


@dataclass(frozen=True)
class ProfileLevel:
    """One user's rows at one level (overall | l1 | l2 | interest), in stored row order."""

    keys: np.ndarray  # (m,) category name at l1/l2
    vector_rows: np.ndarray  # (m,) int, rows of ``UserProfiles.vectors``
    affinity: np.ndarray  # (m,) float

    def item_columns(self, item_keys: np.ndarray) -> np.ndarray:
        """(n_items,) the row of each item's key at this level, -1 where the user has none."""
        row_of = {key: j for j, key in enumerate(self.keys)}
        return np.array([row_of.get(key, -1) for key in item_keys])


class ProfileIndex:
    """A version's user profiles, grouped by user and level.

    Args:
        profiles: the version's profiles (``mgi_core.profiles.service.load_profiles``).
    """

    def __init__(self, profiles: UserProfiles) -> None:
        self.profiles = profiles
        rows = profiles.rows
        keys = rows["key"].to_numpy()
        vector_rows = rows["vector_row"].to_numpy()
        affinity = rows["affinity"].to_numpy()
        self._levels: dict[str, dict[str, ProfileLevel]] = {}
        groups = rows.groupby(["user_id", "level"], sort=False).indices
        for (user, level), at in groups.items():  # ``at``: row positions, in row order
            level_rows = ProfileLevel(keys[at], vector_rows[at], affinity[at])
            self._levels.setdefault(user, {})[level] = level_rows

    def levels(self, user_id: str) -> dict[str, ProfileLevel] | None:
        """``user_id``'s rows by level; None when the user has no profile."""
        return self._levels.get(user_id)

    def vectors(self, level: ProfileLevel) -> np.ndarray:
        """The profile vectors of ``level``'s rows. (m, d)"""
        return self.profiles.vectors[level.vector_rows]
