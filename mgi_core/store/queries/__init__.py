"""The read model: what the dashboard's pages (and the CLI's listings) read, one module per
page family. Reads only: nothing here writes, refreshes or computes-and-stores.

Domain packages (profiles, ranking, evaluation) compute; these functions only read what they
stored, in the shapes pages show (DataFrames, dicts), paged with ``LIMIT``.
"""
