"""What a ranking signal is, and the registry that every feature name comes from.

A signal scores every item for a batch of users: ``fit`` once per (dataset, version) on
train data, then ``score(users)`` per batch, a dense ``(len(users), n_items)`` matrix. The
registry ``SIGNALS`` maps each name to its class; fusion weights are stored under these
names, scorers name them, and the reasons shown with a recommendation group them by
``granularity``. Cornac does the same with its recommenders: a small class per model,
``fit`` on the train set, ``score`` for users.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mgi_core.errors import ConfigError

if TYPE_CHECKING:
    from mgi_core.ranking.features import FeatureContext


def _has_item_vectors(context: FeatureContext) -> bool:
    return context.item_vecs is not None


def _has_profiles(context: FeatureContext) -> bool:
    return context.profile_index is not None


def _has_categories(context: FeatureContext) -> bool:
    return any(isinstance(c, str) for c in context.inter.item_l1)


# What a signal may need besides train interactions, and how a context tells it has it. A
# signal may also need another signal by name: it is fitted after it (``context.signals``).
DATA_NEEDS: dict[str, Callable[[FeatureContext], bool]] = {
    "item_vectors": _has_item_vectors,  # the version's item vectors (mean of train reviews)
    "profiles": _has_profiles,  # the version's user profiles, indexed (``ProfileIndex``)
    "categories": _has_categories,  # at least one item has an L1 category
}


class Signal(ABC):
    """One per-(user, item) ranking signal.

    Subclasses set the three class attributes and implement ``fit`` and ``score``.
    ``fit`` reads train data only (``context.inter.train``, ``context.inter.train_reviews``,
    item vectors and profiles, both built from train reviews), never
    ``context.inter.targets``.
    """

    name: ClassVar[str]  # the feature name: scorers and stored fusion weights use it
    granularity: ClassVar[str]  # the reason label it adds to (recommend's ``parts``)
    needs: ClassVar[tuple[str, ...]] = ()  # keys of DATA_NEEDS or names of other signals

    @abstractmethod
    def fit(self, context: FeatureContext) -> Signal:
        """Learn what scoring needs from ``context``'s train data; returns ``self``."""

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for user indices ``users``. (len(users), n_items)"""


SIGNALS: dict[str, type[Signal]] = {}  # name -> class, in registration order


def register(signal: type[Signal]) -> type[Signal]:
    """Add ``signal`` to ``SIGNALS`` (usable as a class decorator); returns it.

    Raises:
        ConfigError: the name is taken by another class, the granularity is empty, or a
            need is neither a data need nor a registered signal.
    """
    name = getattr(signal, "name", "")
    if not name or not getattr(signal, "granularity", ""):
        raise ConfigError(f"Signal {signal.__qualname__} needs a name and a granularity.")
    if SIGNALS.get(name, signal) is not signal:
        raise ConfigError(
            f"Signal name {name!r} is taken by {SIGNALS[name].__qualname__}; choose another."
        )
    unknown = [n for n in signal.needs if n not in DATA_NEEDS and n not in SIGNALS]
    if unknown:
        raise ConfigError(
            f"Signal {name!r} needs {unknown}: not data ({', '.join(DATA_NEEDS)}) "
            "nor a registered signal; register the signals it needs first."
        )
    SIGNALS[name] = signal
    return signal


def unregister(name: str) -> None:
    """Remove a signal from ``SIGNALS`` (a test or plugin that registered it cleans up).

    Raises:
        ConfigError: no signal is registered under ``name``.
    """
    if name not in SIGNALS:
        raise ConfigError(f"No signal named {name!r}; registered: {', '.join(SIGNALS)}.")
    del SIGNALS[name]


class _Granularity(Mapping[str, str]):
    """Signal name -> granularity, read from ``SIGNALS`` at each lookup."""

    def __getitem__(self, name: str) -> str:
        return SIGNALS[name].granularity

    def __iter__(self) -> Iterator[str]:
        return iter(SIGNALS)

    def __len__(self) -> int:
        return len(SIGNALS)


GRANULARITY: Mapping[str, str] = _Granularity()
