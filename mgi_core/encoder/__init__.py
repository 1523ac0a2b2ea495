"""The language encoder: load, device, encode, multi-task fine-tune, checkpoints.

This is the only package that imports torch and transformers.
"""

from __future__ import annotations
