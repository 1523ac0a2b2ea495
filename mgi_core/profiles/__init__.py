"""Per-user interest representations at every granularity (overall, L1, L2, fine)."""
