"""Device choice: CUDA (bf16 autocast) → MPS → CPU, described in words for the UI."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mgi_core.errors import ConfigError


@dataclass(frozen=True)
class DeviceInfo:
    """Where the encoder runs and with which autocast dtype (None = full fp32)."""

    type: str
    name: str
    autocast_dtype: torch.dtype | None

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.type)

    def describe(self) -> str:
        precision = "bf16 autocast" if self.autocast_dtype == torch.bfloat16 else "fp32"
        return f"{self.name} ({precision})"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.type, dtype=self.autocast_dtype)


def choose_device(preference: str = "auto") -> DeviceInfo:
    """The device for ``preference`` ('auto', 'cuda', 'mps', 'cpu').

    Raises:
        ConfigError: the requested accelerator is not available here.
    """
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if preference == "cuda" or (preference == "auto" and cuda):
        if not cuda:
            raise ConfigError("CUDA was requested but no CUDA GPU is visible; use device 'auto'.")
        bf16 = torch.cuda.is_bf16_supported()
        return DeviceInfo("cuda", torch.cuda.get_device_name(0),
                          torch.bfloat16 if bf16 else None)
    if preference == "mps" or (preference == "auto" and mps):
        if not mps:
            raise ConfigError("MPS was requested but is not available; use device 'auto'.")
        return DeviceInfo("mps", "Apple GPU (MPS)", None)
    if preference not in ("auto", "cpu"):
        raise ConfigError(f"Unknown device {preference!r}; use auto, cuda, mps or cpu.")
    return DeviceInfo("cpu", f"CPU ({torch.get_num_threads()} threads)", None)
