"""MGI: multi-granularity user-interest representations learned from review text.

The package never imports streamlit, and heavy libraries (torch, transformers) are imported
only inside ``mgi_core.encoder``, so data, store and evaluation code load fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
