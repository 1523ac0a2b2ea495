"""The real bundled all-MiniLM-L6-v2 (offline): MGI's encoding equals sentence-transformers'."""

from __future__ import annotations

import numpy as np
import pytest

from mgi_core.encoder.model import load_encoder, resolve_model_source

pytestmark = pytest.mark.slow

TEXTS = [
    "The wireless headphones pair quickly and the battery lasts all week.",
    "Bluetooth earbuds with deep bass and a long battery life.",
    "The zoom lens is sharp wide open, autofocus is fast.",
]


def test_bundled_minilm_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    ours = load_encoder("bundled:all-MiniLM-L6-v2", max_seq_length=128, device="cpu")
    assert ours.dim == 384
    mine = ours.encode(TEXTS)
    st = SentenceTransformer(resolve_model_source("bundled"), device="cpu")
    ref = st.encode(TEXTS, normalize_embeddings=True)
    cos = np.sum(mine * ref, axis=1)
    assert cos.min() > 0.9999, cos
    sim = mine @ mine.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # headphones ~ earbuds, not ~ camera lens
