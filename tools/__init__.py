"""Repository tools (not part of the installed ``mgi_core`` package)."""
