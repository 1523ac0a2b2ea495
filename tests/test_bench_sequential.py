"""bench/sequential.py: the data and ranking glue around Cornac's sequence models.

Cornac is not an MGI dependency (bench/requirements.txt installs it by hand), so nothing
here trains a Cornac model: the tests check what decides whether the script's numbers are
comparable with MGI's — train-only sequences in MGI's order, the val/test targets and
histories, MGI's exclusion and metric code, selection on val — with stand-in score
functions in place of the trained models.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.evaluation.compare import per_user_frame
from mgi_core.evaluation.protocol import evaluate
from mgi_core.ranking.interactions import load_interactions
from mgi_core.store import Store
from tests.conftest import small_rows, write_csv

BENCH = Path(__file__).resolve().parent.parent / "bench" / "sequential.py"


@pytest.fixture(scope="module")
def seq_bench():
    spec = importlib.util.spec_from_file_location("bench_sequential", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def small(tmp_path: Path):
    """conftest.small_rows: items i1..i4 are columns 0..3, users u1, u2, u3 rows 0..2.
    u1 reviewed i1, i2, i3, i4 in that order: train [i1, i2], val i3, test i4.
    u2 reviewed i1 (t+500), i2 (t+700), i3 (t+900) — the file lists i3 before i2, time
    decides: train [i1], val i2, test i3. u3 has one review (i4): train only, no target."""
    store = Store(tmp_path / "small.duckdb")
    ingest_file(store, write_csv(tmp_path / "r.csv", small_rows()), "small")
    yield store
    store.close()


def test_import_loads_neither_cornac_nor_torch():
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('b', "
            f"{str(BENCH)!r}); m = sys.modules['b'] = importlib.util.module_from_spec(s); "
            "s.loader.exec_module(m); print(sorted({'cornac', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_sequences_are_train_only_in_time_order(seq_bench, small):
    inter = load_interactions(small, "small")
    seqs = seq_bench.train_sequences(inter)
    assert [s.tolist() for s in seqs] == [[0, 1], [0], [3]]
    # One Cornac session per user, time = position in the sequence.
    assert seq_bench.usit_rows(seqs) == [(0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 0, 0), (2, 2, 3, 0)]


def test_targets_and_histories(seq_bench, small):
    inter = load_interactions(small, "small")
    seqs = seq_bench.train_sequences(inter)
    assert [a.tolist() for a in seq_bench.targets(inter, "val")] == [[0, 1], [2, 1]]
    assert [a.tolist() for a in seq_bench.targets(inter, "test")] == [[0, 1], [3, 2]]

    def as_lists(hist):
        return [h.tolist() for h in hist]

    assert as_lists(seq_bench.histories(inter, seqs, "val")) == [[0, 1], [0]]
    # val ignores the variant: its history is always the train sequence.
    assert as_lists(seq_bench.histories(inter, seqs, "val", "train+val")) == [[0, 1], [0]]
    assert as_lists(seq_bench.histories(inter, seqs, "test", "train")) == [[0, 1], [0]]
    # train+val appends the user's val item (u1: i3, u2: i2), never the test item.
    assert as_lists(seq_bench.histories(inter, seqs, "test", "train+val")) == [[0, 1, 2],
                                                                               [0, 1]]
    with pytest.raises(ValueError, match="variant must be one of"):
        seq_bench.histories(inter, seqs, "test", "everything")


def test_ranking_excludes_train_items_only(seq_bench, small):
    inter = load_interactions(small, "small")
    seqs = seq_bench.train_sequences(inter)
    seen: list[tuple[int, list[int]]] = []

    def score(u, history):
        seen.append((u, list(history)))
        return np.array([10.0, 9.0, 1.0, 0.0])  # i1 > i2 > i3 > i4 for everyone

    hist = seq_bench.histories(inter, seqs, "test", "train+val")
    ranks = seq_bench.rank_targets(score, inter, "test", hist)
    assert seen == [(0, [0, 1, 2]), (1, [0, 1])]  # MGI user index and the history given
    # u1's test item i4: i1 and i2 are train (excluded), i3 (val, not excluded) is ahead:
    # rank 1, not 3. u2's test item i3: i1 excluded, i2 (val, kept as in MGI) ahead: rank 1.
    assert ranks.tolist() == [1, 1]
    frame = seq_bench.per_user_metrics(inter, "test", ranks)
    assert list(frame.index) == ["u1", "u2"]
    assert frame["ndcg@10"].tolist() == pytest.approx([1 / math.log2(3)] * 2)
    assert frame["recall@10"].tolist() == [1.0, 1.0]
    assert frame["mrr"].tolist() == [0.5, 0.5]

    with pytest.raises(ValueError, match=r"score returned shape \(3,\)"):
        seq_bench.rank_targets(lambda u, h: np.zeros(3), inter, "test", hist)


def test_mean_ci_brackets_the_mean(seq_bench):
    values = np.r_[np.ones(30), np.zeros(70)]
    mean, low, high = seq_bench.mean_ci(values)
    assert mean == pytest.approx(0.3)
    assert 0.18 < low < 0.3 < high < 0.42  # binomial sd √(.3·.7/100) ≈ .046: ±1.96 sd ≈ .09


def test_same_scores_give_mgis_stored_metrics_and_a_null_pairing(seq_bench, demo):
    # MGI's popularity scorer ranks by log(1 + train count); a stand-in model scoring raw
    # train counts orders items identically, so the script must reproduce MGI's stored
    # per-user metrics exactly, and the paired comparison must find no difference.
    evaluate(demo, "demo", "fake", ("popularity",))
    inter = load_interactions(demo, "demo")
    counts = np.asarray(inter.train.sum(axis=0)).ravel()
    seqs = seq_bench.train_sequences(inter)
    hist = seq_bench.histories(inter, seqs, "test", "train")
    frame = seq_bench.per_user_metrics(
        inter, "test", seq_bench.rank_targets(lambda u, h: counts, inter, "test", hist))
    stored = per_user_frame(demo, "demo", "fake", "popularity")
    assert len(frame) == len(stored) > 100
    # Users are ranked in batches: the ranks do not depend on the batch size.
    ranks = seq_bench.rank_targets(lambda u, h: counts, inter, "test", hist)
    np.testing.assert_array_equal(
        seq_bench.rank_targets(lambda u, h: counts, inter, "test", hist, batch_users=7), ranks)
    for metric in frame.columns:
        assert frame[metric].sort_index().to_numpy() == pytest.approx(
            stored.loc[frame.index.sort_values(), metric].to_numpy()), metric
    paired = seq_bench.pair_against(demo, "demo", "fake:popularity", frame)
    assert paired["ndcg@10"]["diff"] == 0.0 and paired["ndcg@10"]["p_value"] == 1.0
    assert paired["ndcg@10"]["n_users"] == len(frame)


def test_run_selects_on_val_and_trains_on_train_only(seq_bench, demo):
    evaluate(demo, "demo", "fake", ("popularity",))
    inter = load_interactions(demo, "demo")
    counts = np.asarray(inter.train.sum(axis=0)).ravel().astype(np.float64)
    held_out = {(int(u), int(i)) for split in ("val", "test")
                for u, i in zip(*seq_bench.targets(inter, split), strict=True)}
    calls = []

    def fake_fit(model, params, seqs, n_items, seed, device):
        # What a real model would be trained on: no held-out review in any sequence.
        assert not {(u, int(i)) for u, s in enumerate(seqs) for i in s} & held_out
        calls.append((model, params["sign"]))
        return lambda u, h: params["sign"] * counts  # popularity, or its reverse

    grid = {"sasrec": [{"sign": -1.0}, {"sign": 1.0}]}
    result = seq_bench.run(demo, "demo", ["sasrec"], ["train", "train+val"],
                           ["fake:popularity"], grid, fit=fake_fit)
    assert calls == [("sasrec", -1.0), ("sasrec", 1.0)]
    out = result["models"]["sasrec"]
    val = [t["val"]["ndcg@10"] for t in out["trials"]]
    assert val[1] > val[0]  # popularity beats its reverse on val...
    assert out["chosen"] == {"sign": 1.0}  # ...and is the one tested
    # The chosen stand-in ignores the history: both variants equal MGI's popularity.
    for variant in ("train", "train+val"):
        assert out["paired"][variant]["fake:popularity"]["ndcg@10"]["diff"] == 0.0
        stats = out["test"][variant]["ndcg@10"]
        assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
    assert "sasrec: chosen on val {'sign': 1.0}" in seq_bench.render(result)


def test_cli_rejects_an_unknown_model(seq_bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        seq_bench.main(["--db", str(tmp_path / "x.duckdb"), "--dataset", "d",
                        "--models", "sasrec,bert4rec"])
    assert exc.value.code == 2
    assert "choose from sasrec, gru4rec" in capsys.readouterr().err
