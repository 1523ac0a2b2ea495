"""The architecture's rules that import-linter cannot see (docs/ARCHITECTURE.md).

All SQL text lives under ``mgi_core/store/``: no string literal elsewhere in the library,
the dashboard or the pages holds a SQL statement. The check reads the source (AST string
constants and the literal parts of f-strings) for unmistakable SQL phrases.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

SQL = re.compile(r"\b(SELECT\b.*\bFROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM|"
                 r"CREATE (OR REPLACE )?(TEMP )?(TABLE|VIEW|INDEX)|DROP TABLE|ALTER TABLE|"
                 r"read_parquet\(|read_csv\(|COPY \(|CASE WHEN|GROUP BY|ORDER BY \w)", re.S)
CHECKED = ("mgi_core", "dashboard", "app_pages", "app.py")


def _strings(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value for v in node.values
                                       if isinstance(v, ast.Constant))


def sql_outside_store() -> list[str]:
    found = []
    for name in CHECKED:
        root = ROOT / name
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            if (ROOT / "mgi_core" / "store") in path.parents:
                continue
            for line, text in _strings(path):
                if SQL.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {' '.join(text.split())[:80]}")
    return found


def test_all_sql_lives_in_the_store() -> None:
    assert sql_outside_store() == []


def test_the_check_finds_sql_where_it_is() -> None:
    # The same check run on the store itself finds its statements (it can fail).
    store_sql = [
        text for path in sorted((ROOT / "mgi_core" / "store").rglob("*.py"))
        for _line, text in _strings(path) if SQL.search(text)
    ]
    assert len(store_sql) > 50
