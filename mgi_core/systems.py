"""How systems and their headline metrics are named, shared by every layer.

A *system* is a model version with a scorer, written ``"VERSION:SCORER"`` (``"v2"`` alone
means the default scorer). The store's read model, the evaluation and the pages all use
these names, so they live below all of them (imports nothing from mgi_core).
"""

from __future__ import annotations

DEFAULT_SCORER = "mgi_hybrid"
HEADLINE_METRICS = ("ndcg@10", "recall@10", "mrr", "ndcg@20", "recall@20", "hit@10")
NO_CATEGORY = "(none)"  # the category label of an item without one


def parse_spec(spec: str) -> tuple[str, str]:
    """'v2' → ('v2', 'mgi_hybrid'); 'base:content_hybrid' → ('base', 'content_hybrid')."""
    version, _, scorer = spec.partition(":")
    return version.strip(), (scorer.strip() or DEFAULT_SCORER)
