"""``python -m mgi_core``."""

from __future__ import annotations

import sys

from mgi_core.cli import main

sys.exit(main())
