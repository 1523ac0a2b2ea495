"""Keywords for a group of reviews by class-based TF-IDF (c-TF-IDF, as in BERTopic).

A group's keyword score for term t: ``tf(t, group) · log(1 + A / f(t))`` where ``A`` is the
mean number of terms per group and ``f(t)`` the term's frequency over the reference corpus.
Tokens: lower-cased words for alphabetic scripts; for Chinese/Japanese text, character
bigrams (no dictionary needed, works offline).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff]+")
STOPWORDS = frozenset(
    """
the and for that this with was are but not you have had his her they them their its it's
from were been has one all very just what when which who would could should there than
then also only more most some such into over out about your our can will did does doing
i'm i've don't didn't isn't wasn't aren't really much many well even like get got good
other these those after before because while where here each any both same own too
""".split()
)


def tokenize(text: str) -> list[str]:
    """Words (3+ letters, no stop words) and CJK character bigrams."""
    text = text.lower()
    tokens = [w for w in _WORD.findall(_CJK.sub(" ", text)) if w not in STOPWORDS]
    for run in _CJK.findall(text):
        if len(run) == 1:
            tokens.append(run)
        tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


class CorpusFrequencies:
    """Term frequencies over a reference corpus (e.g. all train reviews of a dataset).

    Built from ``texts`` and/or chunk by chunk with ``add`` (a large corpus is streamed).
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.counts: Counter[str] = Counter()
        self.n_terms = 0
        self.n_docs = 0
        self.add(texts)

    def add(self, texts: Iterable[str]) -> None:
        for text in texts:
            toks = tokenize(text)
            self.counts.update(toks)
            self.n_terms += len(toks)
            self.n_docs += 1

    @property
    def mean_terms(self) -> float:
        return self.n_terms / max(self.n_docs, 1)


def ctfidf_keywords(
    groups: Sequence[Sequence[str]], corpus: CorpusFrequencies, n: int = 5
) -> list[list[str]]:
    """Top ``n`` keywords per group of texts."""
    import math

    counts = [Counter(t for text in g for t in tokenize(text)) for g in groups]
    mean_per_group = sum(sum(c.values()) for c in counts) / max(len(counts), 1)
    a = max(mean_per_group, corpus.mean_terms, 1.0)
    out = []
    for c in counts:
        total = sum(c.values()) or 1
        scored = sorted(
            ((tf / total) * math.log(1 + a / (corpus.counts.get(t, 0) + tf), 2), t)
            for t, tf in c.items()
        )
        out.append([t for _, t in reversed(scored[-n:])])
    return out
