"""Checkpoints: safetensors round trip, a folder sentence-transformers loads, pickles refused,
atomic writes survive a kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mgi_core.config import TrainConfig
from mgi_core.encoder.checkpoint import checkpoint_is_usable, load_checkpoint, save_checkpoint
from mgi_core.encoder.model import load_encoder
from mgi_core.encoder.tasks import build_task_data
from mgi_core.encoder.train import fine_tune
from mgi_core.errors import CheckpointError, EncoderLoadError
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def trained(tiny_bert, snapshot, tmp_path_factory):
    config = TrainConfig(base_model=str(tiny_bert), max_train_reviews=16, batch_size=8,
                         max_seq_length=16, device="cpu", lora_rank=2,
                         lora_targets=("query", "value"))
    encoder = load_encoder(config.base_model, config.max_seq_length, "cpu")
    model = fine_tune(encoder, build_task_data(snapshot, config), config).model
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(model, run, {"version": "v1"})
    return model, run


def test_save_then_load_gives_identical_embeddings_and_heads(trained, snapshot) -> None:
    model, run = trained
    loaded, manifest = load_checkpoint(run, "cpu")
    texts = list(snapshot["text"][:10])
    np.testing.assert_allclose(model.encoder.encode(texts), loaded.encoder.encode(texts),
                               atol=1e-6)
    assert manifest["version"] == "v1" and manifest["heads"]["overall"] == 1
    z = torch.randn(3, loaded.encoder.dim)
    model.eval()
    for task, logits in model.head_logits(z).items():
        torch.testing.assert_close(logits, loaded.head_logits(z)[task])


# Longer than the tiny model's 16 tokens, so truncation has to agree as well.
LONG_TEXT = " ".join(["great bass headphones with a sharp zoom lens and a mystery novel"] * 3)


def test_checkpoint_is_a_sentence_transformers_folder_with_the_same_vectors(
    trained, snapshot
) -> None:
    from sentence_transformers import SentenceTransformer

    model, run = trained
    folder = run / "checkpoint"
    # Safetensors only, in every module folder.
    assert (folder / "model.safetensors").exists()
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    st = SentenceTransformer(str(folder), device="cpu")
    assert st.max_seq_length == model.encoder.max_seq_length == 16
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    texts = [*snapshot["text"][:20], LONG_TEXT]
    ours = model.encoder.encode(texts)  # (21, 32), L2-normalised
    theirs = st.encode(texts, convert_to_numpy=True)
    cos = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999, cos
    # MGI's own loader reads the same folder and gives the same vectors.
    loaded, _ = load_checkpoint(run, "cpu")
    np.testing.assert_allclose(loaded.encoder.encode(texts), ours, atol=1e-6)


def test_checkpoint_records_the_embedding_length_for_both_loaders(trained, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    model, _ = trained
    folder = save_checkpoint(model, tmp_path, {"version": "v1"}, max_seq_length=32)
    loaded, manifest = load_checkpoint(folder, "cpu")
    assert manifest["max_seq_length"] == loaded.encoder.max_seq_length == 32
    assert SentenceTransformer(str(folder), device="cpu").max_seq_length == 32
    # Above the position table (64 for the tiny BERT): capped as Encoder.max_length is.
    folder = save_checkpoint(model, tmp_path / "long", {"version": "v1"}, max_seq_length=512)
    assert SentenceTransformer(str(folder), device="cpu").max_seq_length == 64


def test_pickled_checkpoint_is_refused(trained, tmp_path) -> None:
    _, run = trained
    bad = tmp_path / "bad" / "checkpoint"
    shutil.copytree(run / "checkpoint", bad)  # module subfolders (1_Pooling, ...) included
    torch.save({"w": torch.zeros(1)}, bad / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pickled file\(s\) \['pytorch_model.bin'\]"):
        load_checkpoint(bad, "cpu")
    (bad / "pytorch_model.bin").unlink()
    torch.save({"w": torch.zeros(1)}, bad / "1_Pooling" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"\['1_Pooling/pytorch_model.bin'\]"):
        load_checkpoint(bad, "cpu")
    only_pickle = tmp_path / "pickled_model"
    only_pickle.mkdir()
    torch.save({"w": torch.zeros(1)}, only_pickle / "pytorch_model.bin")
    with pytest.raises(EncoderLoadError, match="pickled weights only"):
        load_encoder(str(only_pickle), 16, "cpu")


def test_incomplete_checkpoint_is_not_usable(tmp_path) -> None:
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "model.safetensors").write_bytes(b"partial")
    assert not checkpoint_is_usable(tmp_path)
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path, "cpu")


def test_kill_while_rewriting_a_checkpoint_keeps_the_previous_one(trained, snapshot) -> None:
    model, run = trained
    texts = list(snapshot["text"][:5])
    expected = model.encoder.encode(texts)
    script = textwrap.dedent(f"""
        import time, safetensors.torch as st
        from mgi_core.encoder import checkpoint as ck
        from mgi_core.encoder.checkpoint import load_checkpoint, save_checkpoint
        model, _ = load_checkpoint({str(run)!r}, "cpu")
        def slow_save(tensors, path, *a, **k):
            open(path, "wb").write(b"half")
            print("writing", flush=True)
            time.sleep(60)
        ck.save_file = slow_save
        save_checkpoint(model, __import__("pathlib").Path({str(run)!r}), {{"version": "v1"}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    time.sleep(0.1)
    assert checkpoint_is_usable(run)
    loaded, _ = load_checkpoint(run, "cpu")
    np.testing.assert_allclose(loaded.encoder.encode(texts), expected, atol=1e-6)
    # The half-written temp folder is left aside, never mistaken for the checkpoint.
    assert any(p.name.startswith(".checkpoint.tmp-") for p in Path(run).iterdir())
