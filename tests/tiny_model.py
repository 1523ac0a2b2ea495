"""A tiny BERT built locally (2 layers, hidden 32, tokenizer from the test corpus)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

WORDS = {
    "Audio": ["headphones", "bass", "bluetooth", "battery", "speaker", "sound", "earbuds"],
    "Cameras": ["lens", "shutter", "autofocus", "tripod", "zoom", "sensor", "flash"],
    "Books": ["plot", "author", "chapter", "novel", "characters", "ending", "mystery"],
}
SUBS = {"Audio": ["Headphones", "Speakers"], "Cameras": ["Lenses", "Tripods"],
        "Books": ["Fiction", "History"]}
GOOD = ["great", "love", "excellent", "perfect", "happy"]
BAD = ["awful", "broken", "terrible", "returned", "disappointing"]


def make_snapshot(n_users: int = 24, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    """Reviews whose words reveal category and sentiment; split like the store does."""
    rng = np.random.default_rng(seed)
    rows = []
    rid = 0
    l1s = list(WORDS)
    for u in range(n_users):
        fav = l1s[u % len(l1s)]
        for k in range(per_user):
            l1 = fav if rng.random() < 0.7 else l1s[int(rng.integers(len(l1s)))]
            sub = SUBS[l1][int(rng.integers(2))]
            liked = rng.random() < 0.6
            words = [*list(rng.choice(WORDS[l1], 3)), sub.lower()]
            words += list(rng.choice(GOOD if liked else BAD, 2))
            rng.shuffle(words)
            item = f"{l1[:2]}{sub[:2]}{int(rng.integers(6))}"
            rid += 1
            rows.append({
                "review_id": rid, "user_id": f"u{u}", "item_id": item,
                "text": " ".join(words), "rating": float(5 if liked else 1),
                "ts": pd.Timestamp("2024-01-01") + pd.Timedelta(days=k), "row_number": rid,
                "item_title": f"Item {item}", "category": f"{l1} > {sub}",
                "l1": l1, "l2": f"{l1} > {sub}", "l3": None,
            })
    df = pd.DataFrame(rows).drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    n = df.groupby("user_id")["review_id"].transform("count")
    rank = df.groupby("user_id")["ts"].rank(ascending=False, method="first")
    df["split"] = np.where(n >= 3, np.where(rank == 1, "test", np.where(rank == 2, "val",
                                                                          "train")), "train")
    return df


def write_review_csv(snapshot: pd.DataFrame, path: Path) -> Path:
    """``snapshot`` as the review file a user would upload (the CSV columns MGI reads)."""
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}
    ).to_csv(path, index=False)
    return path


def build_tiny_bert(folder: Path, corpus: list[str]) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({w for t in corpus for w in re.findall(r"\w+", t.lower())} - set(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    assert tokenizer("bass lens")["input_ids"][1] != tokenizer.unk_token_id
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def snapshot() -> pd.DataFrame:
    return make_snapshot()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, snapshot) -> Path:
    corpus = list(snapshot["text"]) + [" ".join(v) for v in WORDS.values()] + GOOD + BAD
    corpus += [f"item {i}" for i in snapshot["item_id"]] + [s.lower() for v in SUBS.values()
                                                            for s in v]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), corpus)
