"""Each user's profile rows grouped by level, as arrays: built once per batch, read per user.

The content and category signals read a user's overall vector, fine interests, category
rows and latest liked review for every scored user. ``ProfileIndex`` groups one set of
profiles in memory (``UserProfiles``); ``StoredProfileIndex`` reads the stored profiles of a
version from DuckDB a window of users at a time, so that ranking 100,000 users holds the
profiles of a few thousand, not all of them. Signals ask either for ``batch(user_ids)``
before scoring a batch of users and read that batch only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from mgi_core.config import ProfileConfig
from mgi_core.profiles.builder import UserProfiles
from mgi_core.store import Store
from mgi_core.store import profiles as profile_store

FEW_USERS = 16  # batches of at most this many users read those users only, no window


@dataclass(frozen=True)
class ProfileLevel:
    """One user's rows at one level (overall | l1 | l2 | interest), in stored row order."""

    keys: np.ndarray  # (m,) category name at l1/l2
    vector_rows: np.ndarray  # (m,) int, rows of the index's ``vectors``
    affinity: np.ndarray  # (m,) float

    def item_columns(self, item_keys: np.ndarray) -> np.ndarray:
        """(n_items,) the row of each item's key at this level, -1 where the user has none."""
        row_of = {key: j for j, key in enumerate(self.keys)}
        return np.array([row_of.get(key, -1) for key in item_keys])


class ProfileIndex:
    """A set of user profiles in memory, grouped by user and level.

    Args:
        profiles: the profiles (``mgi_core.profiles.service.load_profiles``, or one window
            of stored ones); ``rows["vector_row"]`` indexes ``profiles.vectors``.
    """

    def __init__(self, profiles: UserProfiles) -> None:
        self.profiles = profiles
        rows = profiles.rows
        self._levels: dict[str, dict[str, ProfileLevel]] = {}
        if not len(rows):
            return
        keys = rows["key"].to_numpy()
        vector_rows = rows["vector_row"].to_numpy()
        affinity = rows["affinity"].to_numpy()
        groups = rows.groupby(["user_id", "level"], sort=False).indices
        for (user, level), at in groups.items():  # ``at``: row positions, in row order
            level_rows = ProfileLevel(keys[at], vector_rows[at], affinity[at])
            self._levels.setdefault(user, {})[level] = level_rows

    def batch(self, user_ids: np.ndarray) -> ProfileIndex:
        """The index to read ``user_ids`` from: all of it, already in memory."""
        return self

    def levels(self, user_id: str) -> dict[str, ProfileLevel] | None:
        """``user_id``'s rows by level; None when the user has no profile."""
        return self._levels.get(user_id)

    def vectors(self, level: ProfileLevel) -> np.ndarray:
        """The profile vectors of ``level``'s rows. (m, d)"""
        return self.profiles.vectors[level.vector_rows]

    def last_liked(self, user_id: str) -> np.ndarray | None:
        """The vector of the user's latest liked train review (latest when none is liked)."""
        return self.profiles.last_liked.get(user_id)


class StoredProfileIndex:
    """The stored profiles of (version, dataset), read from DuckDB a window at a time.

    ``batch(user_ids)`` returns a ``ProfileIndex`` of a window of consecutive users (in id
    order) that holds every one of ``user_ids``: at least ``window`` users, so the batches
    of an evaluation (users in id order) share one read per window. The last window is
    kept, one per index, behind a lock (a dashboard shares one index between sessions).

    Args:
        users: every user of the dataset, sorted (``Interactions.users``).
    """

    def __init__(self, store: Store, version: str, dataset: str, d: int, users: np.ndarray,
                 config: ProfileConfig | None = None, window: int = 8192) -> None:
        self.store, self.version, self.dataset, self.d = store, version, dataset, int(d)
        self.users = np.asarray(users, dtype=object)
        self.like_threshold = (config or ProfileConfig()).like_threshold
        self.window = max(1, int(window))
        self._lock = threading.Lock()
        # (span, (), index) for a window, ("only", ids, index) for those users only
        self._cached: tuple[object, tuple[str, ...], ProfileIndex] | None = None

    def batch(self, user_ids: np.ndarray) -> ProfileIndex:
        ids = sorted({str(u) for u in user_ids})
        if not ids:
            return ProfileIndex(self._load(("", ""), only=[]))
        lo, hi = ids[0], ids[-1]
        with self._lock:
            cached = self._cached
            if cached is not None and (cached[1] == tuple(ids) if cached[0] == "only"
                                       else cached[0][0] <= lo and hi <= cached[0][1]):
                return cached[2]
            start = int(np.searchsorted(self.users, lo))
            stop = int(np.searchsorted(self.users, hi, side="right"))
            # A few users (one user's recommendations, a page's lists), or users scattered
            # over many others: those users only. Else a window of consecutive users.
            if len(ids) <= FEW_USERS or stop - start > max(self.window, 2 * len(ids)):
                index = ProfileIndex(self._load((lo, hi), only=ids))
                self._cached = ("only", tuple(ids), index)
                return index
            stop = max(stop, start + self.window)
            span = (lo, str(self.users[min(stop, len(self.users)) - 1]))
            index = ProfileIndex(self._load(span))
            self._cached = (span, (), index)
            return index

    def _load(self, span: tuple[str, str], only: list[str] | None = None) -> UserProfiles:
        rows = profile_store.profile_levels(self.store, self.version, self.dataset, span, only)
        vectors = np.zeros((0, self.d), dtype=np.float32)
        last: dict[str, np.ndarray] = {}
        if len(rows):
            first, end = int(rows["vector_row"].min()), int(rows["vector_row"].max())
            if only is None:  # a window: one run of rows
                got, vectors = profile_store.profile_vectors(
                    self.store, self.version, self.dataset, self.d, between=(first, end))
            if only is not None or len(got) != end - first + 1:  # read those listed
                got, vectors = profile_store.profile_vectors(
                    self.store, self.version, self.dataset, self.d,
                    vector_rows=rows["vector_row"].to_numpy())
            position = np.searchsorted(got, rows["vector_row"].to_numpy())
            rows = rows.assign(vector_row=position)
            users, liked = profile_store.last_liked_vectors(
                self.store, self.version, self.dataset, self.d, self.like_threshold, span,
                only)
            last = dict(zip(users, liked, strict=True))
        return UserProfiles(self.version, self.dataset, rows, vectors, last)
