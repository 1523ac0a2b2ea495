"""The fast encode path: length buckets are exact, the path choice follows the CPU flags,
bf16 weights stay close to fp32 and never touch the encoder, bench/encode.py runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mgi_core.encoder.fast import (
    PRECISION_ENV,
    EncodePath,
    choose_encode_path,
    encode_path_here,
    length_buckets,
    read_cpu_flags,
)
from mgi_core.encoder.model import load_encoder

ZEN4 = "fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni".split()
SKYLAKE = "fpu sse sse2 avx avx2 fma avx512f avx512bw".split()
SAPPHIRE = "fpu avx2 fma avx512f amx_bf16 amx_tile".split()

# Lengths 2..9 words, shuffled, so buckets reorder them and pad differently than one by one.
TEXTS = [
    "bass great",
    "great lens and sharp zoom with autofocus and a tripod flash",
    "plot",
    "love the author and the chapter ending mystery novel characters",
    "headphones bluetooth battery",
    "awful broken speaker returned",
    "sensor zoom",
    "excellent sound from the earbuds and the speaker with bass",
    "terrible ending",
]


def test_length_buckets_cover_every_index_longest_first() -> None:
    lengths = [3, 9, 1, 9, 4]
    batches = length_buckets(lengths, 2)
    # Longest first, ties in input order: 1 and 3 (9 tokens), then 4 and 0, then 2.
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]
    assert length_buckets([], 4) == []


def test_bucketed_vectors_are_in_input_order_and_equal_one_by_one(tiny_bert) -> None:
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    bucketed = encoder.encode(TEXTS, batch_size=3)
    capped = encoder.encode(TEXTS, batch_size=64, path=EncodePath("cpu", None, max_batch=2))
    np.testing.assert_allclose(capped, bucketed, atol=1e-6)
    one_by_one = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-6)
    # Each text's own vector: the bucketing did not swap rows.
    sims = bucketed @ one_by_one.T
    assert (sims.argmax(axis=1) == np.arange(len(TEXTS))).all()


@pytest.mark.parametrize(("flags", "expected"), [
    (ZEN4, "cpu bf16 weights + length buckets of 16"),
    (SAPPHIRE, "cpu bf16 weights + length buckets of 16"),
    (SKYLAKE, "cpu fp32 + length buckets of 16"),  # AVX-512 without bf16: emulated is slower
    ((), "cpu fp32 + length buckets of 16"),  # flags unknown (no /proc/cpuinfo)
])
def test_path_choice_from_cpu_flags(flags, expected) -> None:
    assert choose_encode_path("cpu", flags).describe() == expected


def test_path_choice_pins_fp32_and_keeps_the_devices_autocast() -> None:
    assert choose_encode_path("cpu", ZEN4, precision="fp32") == EncodePath("cpu", None,
                                                                          max_batch=16)
    cuda = choose_encode_path("cuda", (), torch.bfloat16)
    assert cuda == EncodePath("cuda", None, torch.bfloat16)
    assert cuda.describe() == "cuda bf16 autocast + length buckets"
    assert choose_encode_path("mps", ZEN4).describe() == "mps fp32 + length buckets"


def test_precision_env_pins_fp32(monkeypatch) -> None:
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert encode_path_here("cpu") == EncodePath("cpu", None, max_batch=16)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert read_cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


def test_bf16_weights_stay_close_and_leave_the_encoder_in_fp32(tiny_bert) -> None:
    encoder = load_encoder(str(tiny_bert), 16, "cpu")
    fp32 = encoder.encode(TEXTS, batch_size=4)
    bf16 = encoder.encode(TEXTS, batch_size=4, path=EncodePath("cpu", torch.bfloat16))
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert np.sum(fp32 * bf16, axis=1).min() >= 0.99
    # The inference copy is cast; the encoder (which may be trained further) is not.
    assert {p.dtype for p in encoder.transformer.parameters()} == {torch.float32}
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=4), fp32, atol=1e-6)


def test_bench_encode_runs_on_the_tiny_model(tiny_bert, snapshot, tmp_path, capsys) -> None:
    from bench.encode import main

    data = tmp_path / "reviews.csv"
    snapshot[["text"]].to_csv(data, index=False)
    assert main(["--json", "--n", "16", "--rounds", "1", "--model", str(tiny_bert),
                 "--data", str(data), "--max-length", "16", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == 16 and out["threads"] == 1
    assert out["ratio"] > 0 and out["mgi_gflops"] > 0 and out["peak_fp32_gflops"] > 0
    assert out["min_cos"] >= 0.99 and "+ length buckets" in out["path"]
