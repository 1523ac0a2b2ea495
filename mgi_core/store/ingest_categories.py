"""Category paths (``Audio > Headphones > Wireless``) and their levels l1..l3, in SQL.

Levels are stored as path prefixes joined by ``' > '`` whatever the file's separator, so
two level-2 categories with the same leaf name under different parents stay distinct:
``l1 = 'Audio'``, ``l2 = 'Audio > Headphones'``, ``l3 = 'Audio > Headphones > Wireless'``.
Deeper levels stay in the full ``category`` path.
"""

from __future__ import annotations

from mgi_core.store.sql import quote_literal

LEVEL_SEPARATOR = " > "
N_LEVELS = 3


def category_levels_sql(column: str, separator: str = LEVEL_SEPARATOR) -> str:
    """SQL select-list giving ``category, l1, l2, l3`` from a raw path column.

    ``column`` is an identifier of ours (never user text); the separator is quoted.
    """
    sep = quote_literal(separator.strip() or separator)
    join = quote_literal(LEVEL_SEPARATOR)
    parts = (
        f"list_filter(list_transform(string_split(coalesce({column}, ''), {sep}), "
        "lambda x: trim(x)), lambda x: x <> '')"
    )
    levels = ",\n".join(
        f"CASE WHEN len({parts}) >= {n} THEN array_to_string({parts}[1:{n}], {join}) END "
        f"AS l{n}"
        for n in range(1, N_LEVELS + 1)
    )
    return f"nullif(array_to_string({parts}, {join}), '') AS category,\n{levels}"
