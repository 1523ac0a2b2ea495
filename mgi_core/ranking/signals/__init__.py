"""Ranking signals: one small class per signal, fitted on train data, in one registry.

``SIGNALS`` lists every signal by name in the order below; ``ALL_FEATURES``, the reason
labels (``GRANULARITY``) and ``compute_features`` are read from it. To add a signal, write
its class (one file per family of signals) and register it here.
"""

from __future__ import annotations

from mgi_core.ranking.signals.base import (
    DATA_NEEDS,
    GRANULARITY,
    SIGNALS,
    Signal,
    register,
    unregister,
)
from mgi_core.ranking.signals.category import AffinityL1, AffinityL2, TransitionL1
from mgi_core.ranking.signals.collaborative import ItemKnn, MatrixFactorisation
from mgi_core.ranking.signals.content import (
    Content,
    ContentCategory,
    ContentInterest,
    ContentLast,
)
from mgi_core.ranking.signals.popularity import Popularity

for _signal in (
    Popularity,
    ItemKnn,
    MatrixFactorisation,
    Content,
    ContentLast,
    ContentInterest,
    ContentCategory,
    AffinityL1,
    AffinityL2,
    TransitionL1,
):
    register(_signal)

__all__ = ["DATA_NEEDS", "GRANULARITY", "SIGNALS", "Signal", "register", "unregister"]
