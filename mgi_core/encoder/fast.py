"""The fast inference path: which precision embeds reviews here, and length buckets.

Two levers, measured by ``bench/encode.py`` on the bundled MiniLM:

- **Length buckets** (exact, everywhere): texts are batched with texts of about the same
  token length, so a batch pads little and no FLOPs go to padding. ``length_buckets`` is
  the pure planner; ``Encoder.encode`` uses it.
- **bf16 weights on a CPU that computes in bf16** (``avx512_bf16`` or AMX): a bf16 copy of
  the transformer embeds (pooling and normalising stay fp32); cosine to fp32 stays ≥ 0.999
  for every review and it is faster than bf16 autocast, which casts activations at every
  matmul. Elsewhere the path is plain fp32, never slower than before: the same compute
  with less padding. Dynamic int8 of every Linear was refused (mean cosine 0.93).

``choose_encode_path`` is a pure function of the device and the CPU flags;
``encode_path_here`` reads the flags of this machine (``/proc/cpuinfo``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

# CPU flags (as /proc/cpuinfo spells them) that mean bf16 matmuls run natively.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Set to 'fp32' to pin full precision (e.g. to reproduce vectors bit for bit).
PRECISION_ENV = "MGI_ENCODE_PRECISION"
# On a CPU, batches this small stay in cache: measured 20-30 % faster than 64 for MiniLM at
# 256 tokens, in fp32 and in bf16 (2 AVX-512 cores).
CPU_MAX_BATCH = 16


@dataclass(frozen=True)
class EncodePath:
    """How reviews are embedded: the weights' dtype for inference (None = as loaded, fp32),
    the device's own autocast dtype (applied by ``Encoder.forward_tokens``; None = none)
    and length buckets."""

    device_type: str
    weights_dtype: torch.dtype | None
    autocast_dtype: torch.dtype | None = None
    buckets: bool = True
    max_batch: int | None = None

    def describe(self) -> str:
        """In words, e.g. 'cpu bf16 weights + length buckets'."""
        if self.weights_dtype == torch.bfloat16:
            precision = "bf16 weights"
        elif self.autocast_dtype == torch.bfloat16:
            precision = "bf16 autocast"
        else:
            precision = "fp32"
        text = f"{self.device_type} {precision}" + (" + length buckets" if self.buckets else "")
        return text + (f" of {self.max_batch}" if self.max_batch else "")

    def inference_copy(self, transformer: nn.Module) -> nn.Module:
        """``transformer`` itself (fp32), or a copy cast to ``weights_dtype`` (the original,
        possibly still being trained, is never touched)."""
        if self.weights_dtype is None:
            return transformer
        return copy.deepcopy(transformer).to(self.weights_dtype).eval()


def choose_encode_path(device_type: str, cpu_flags: Iterable[str],
                       device_autocast: torch.dtype | None = None,
                       precision: str = "auto") -> EncodePath:
    """The fastest path that keeps cosine ≥ 0.99 to fp32, for this device and these flags.

    Args:
        device_type: 'cpu', 'cuda' or 'mps'.
        cpu_flags: the CPU's feature flags (``/proc/cpuinfo`` names).
        device_autocast: the device's own autocast dtype (bf16 on a CUDA GPU that has it).
        precision: 'auto', or 'fp32' to pin full precision.

    Returns:
        On a CPU with native bf16 (``avx512_bf16`` / ``amx_bf16``): bf16 weights (faster
        than bf16 autocast, which casts every activation twice). Elsewhere fp32, or the
        device's own autocast. Always length buckets; on a CPU, batches of at most
        ``CPU_MAX_BATCH`` (they stay in cache: 20-30 % faster than 64).
    """
    cap = CPU_MAX_BATCH if device_type == "cpu" else None
    if precision == "fp32":
        return EncodePath(device_type, None, max_batch=cap)
    if device_type == "cpu":
        native = bool(BF16_CPU_FLAGS & set(cpu_flags))
        return EncodePath("cpu", torch.bfloat16 if native else None, max_batch=cap)
    return EncodePath(device_type, None, device_autocast)


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags; empty where ``/proc/cpuinfo`` is missing (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def encode_path_here(device_type: str, device_autocast: torch.dtype | None = None) -> EncodePath:
    """``choose_encode_path`` for this machine (``MGI_ENCODE_PRECISION=fp32`` pins fp32)."""
    precision = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    return choose_encode_path(device_type, read_cpu_flags(), device_autocast, precision)


def length_buckets(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches of indices, longest first, each holding texts of about the same length.

    Every index in ``range(len(lengths))`` appears exactly once; ties keep input order.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
