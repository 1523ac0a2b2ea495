"""Task examples: labels, skipped tasks, and no leakage of val/test into training."""

from __future__ import annotations

import numpy as np

from mgi_core.config import TrainConfig
from mgi_core.encoder.tasks import IGNORE, build_task_data


def test_only_train_rows_reach_training_and_test_rows_nothing(snapshot) -> None:
    data = build_task_data(snapshot, TrainConfig())
    by_split = dict(zip(snapshot["text"], snapshot["split"], strict=False))
    train_texts = set(snapshot.loc[snapshot["split"] == "train", "text"])
    test_texts = set(snapshot.loc[snapshot["split"] == "test", "text"]) - train_texts
    assert set(data.train.texts) <= train_texts
    for pairs in (data.train_pairs, data.val_pairs):
        assert set(pairs.anchors) <= train_texts and set(pairs.positives) <= train_texts
    used = set(data.train.texts) | set(data.val.texts) | set(data.train_pairs.anchors)
    used |= set(data.train_pairs.positives) | set(data.val_pairs.positives)
    assert not used & test_texts
    assert {by_split[t] for t in data.val.texts} <= {"val", "train"}
    assert data.tasks == ["overall", "category", "subcategory", "match"]


def test_labels_and_class_counts(snapshot) -> None:
    data = build_task_data(snapshot, TrainConfig(tasks=("overall", "category")))
    train = snapshot[snapshot["split"] == "train"]
    assert data.vocab["category"] == ["Audio", "Books", "Cameras"]
    assert int(data.train.labels["overall"].sum()) == int((train["rating"] >= 4).sum())
    assert data.class_counts["category"].sum() == len(train)
    assert (data.train.labels["category"] != IGNORE).all()


def test_tasks_without_labels_are_skipped_with_a_notice(snapshot) -> None:
    flat = snapshot.assign(l1=None, l2=None, l3=None, rating=5.0)
    data = build_task_data(flat, TrainConfig())
    assert data.tasks == ["match"]
    assert any(n.startswith("overall skipped") for n in data.notices)
    assert any(n.startswith("category skipped") for n in data.notices)
    assert any(n.startswith("subcategory skipped") for n in data.notices)


def test_subset_is_reproducible(snapshot) -> None:
    a = build_task_data(snapshot, TrainConfig(max_train_reviews=20, seed=3))
    b = build_task_data(snapshot, TrainConfig(max_train_reviews=20, seed=3))
    assert a.train.texts == b.train.texts and len(a.train) == 20
    assert np.array_equal(a.train.labels["overall"], b.train.labels["overall"])
