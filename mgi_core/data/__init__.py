"""Review data: file recognition, column mapping, validation and ingest, splits."""

from __future__ import annotations
