"""Checkpoints: safetensors only, written atomically (temp folder, then rename).

``<run>/checkpoint/`` is a sentence-transformers model folder, so that
``SentenceTransformer(folder)`` loads the fine-tuned encoder and embeds as MGI does:
``modules.json`` and ``config_sentence_transformers.json``, the transformer at the root
(``model.safetensors`` + ``config.json`` + tokenizer files + ``sentence_bert_config.json``),
``1_Pooling/`` (mean pooling) and ``2_Normalize/``. Beside them live MGI's own files:
``heads.safetensors`` (the task heads) and, written last, ``mgi.json`` (tasks, label
vocabularies, max_seq_length, base model). A folder without ``mgi.json`` is incomplete and
never loaded; a folder holding a pickled file is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from mgi_core.encoder.device import DeviceInfo, choose_device
from mgi_core.encoder.model import PICKLE_SUFFIXES, Encoder, load_encoder
from mgi_core.encoder.multitask import MultiTaskModel
from mgi_core.errors import CheckpointError

CHECKPOINT_DIR = "checkpoint"
MANIFEST = "mgi.json"


def save_checkpoint(model: MultiTaskModel, run_dir: Path, meta: dict[str, Any],
                    max_seq_length: int | None = None) -> Path:
    """Write ``model`` to ``run_dir/checkpoint`` atomically; return that folder.

    Args:
        model: the multi-task model; LoRA adapters must already be merged.
        run_dir: the run folder; an existing checkpoint in it is replaced only once the new
            one is complete.
        meta: extra manifest fields (version, base model, tasks, label vocabularies, ...).
        max_seq_length: tokens per text when the saved encoder embeds (by MGI's
            ``load_checkpoint`` and by ``SentenceTransformer``); default: the encoder's.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / CHECKPOINT_DIR
    tmp = run_dir / f".{CHECKPOINT_DIR}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    encoder = model.encoder
    if max_seq_length is None:
        max_seq_length = encoder.max_seq_length
    _write_sentence_transformer(encoder, tmp, max_seq_length)
    heads = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
    save_file(heads, str(tmp / "heads.safetensors"))
    manifest = {
        **meta,
        "max_seq_length": max_seq_length,
        "heads": {task: int(head.out_features) for task, head in model.heads.items()},
        "dim": encoder.dim,
    }
    with open(tmp / MANIFEST, "w") as fh:
        json.dump(manifest, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    old = run_dir / f".{CHECKPOINT_DIR}.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def _write_sentence_transformer(encoder: Encoder, folder: Path, max_seq_length: int) -> None:
    """Save ``encoder`` into ``folder`` as sentence-transformers' Transformer → mean Pooling →
    Normalize, which is how ``Encoder.encode`` embeds (safetensors only)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    encoder.transformer.save_pretrained(folder, safe_serialization=True)
    encoder.tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=encoder.capped_length(max_seq_length),
                              model_kwargs={"use_safetensors": True})
    st = SentenceTransformer(
        modules=[transformer, Pooling(encoder.dim, pooling_mode="mean"), Normalize()],
        device="cpu",
    )
    st.save(str(folder), safe_serialization=True)


def _check_folder(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise CheckpointError(f"No checkpoint at {folder}.")
    pickled = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES
    )
    if pickled:
        raise CheckpointError(
            f"Refusing to load {folder}: it contains pickled file(s) {pickled}, which can run "
            "code when loaded. MGI loads safetensors only."
        )
    manifest = folder / MANIFEST
    if not manifest.exists() or not (folder / "model.safetensors").exists():
        raise CheckpointError(
            f"The checkpoint at {folder} is incomplete (the job stopped while writing it); "
            "train the version again."
        )
    return json.loads(manifest.read_text())


def load_checkpoint(
    folder: Path, device: DeviceInfo | str = "auto"
) -> tuple[MultiTaskModel, dict[str, Any]]:
    """Load a saved multi-task model and its manifest.

    Raises:
        CheckpointError: missing, incomplete or pickled checkpoint.
    """
    folder = Path(folder)
    if folder.name != CHECKPOINT_DIR and (folder / CHECKPOINT_DIR).is_dir():
        folder = folder / CHECKPOINT_DIR
    manifest = _check_folder(folder)
    info = device if isinstance(device, DeviceInfo) else choose_device(device)
    encoder: Encoder = load_encoder(str(folder), manifest["max_seq_length"], info)
    model = MultiTaskModel(encoder, manifest["heads"], dropout=0.0)
    heads = load_file(str(folder / "heads.safetensors"), device=str(info.torch_device))
    model.heads.load_state_dict(heads)
    model.eval()
    return model, manifest


def checkpoint_is_usable(run_dir: Path) -> bool:
    try:
        _check_folder(Path(run_dir) / CHECKPOINT_DIR)
    except CheckpointError:
        return False
    return True

