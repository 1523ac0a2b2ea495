"""First-render time of every dashboard page on a database (target: under 2 s each).

Each page is rendered in a fresh process with ``streamlit.testing.v1.AppTest``, three times:
``cold process`` (nothing imported yet, as the very first request after a server start),
then, in a second process that has already imported every module the pages use (as a
server that has served any page) but holds no cached data, ``first render``; then the same
page again in that process (``warm``: cached resources and data).
Derived data the pages store once per version (profiles, evaluations) is assumed present,
as after ``python -m mgi_core evaluate``; the database is copied first and never changed.

    .venv/bin/python bench/pages.py --db dm.duckdb [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGES = ["app_pages/data.py", "app_pages/train.py", "app_pages/profiles.py",
         "app_pages/compare.py", "app_pages/metrics.py"]


MODULES = ["dashboard.charts", "dashboard.compare", "dashboard.export", "dashboard.metrics_view",
           "dashboard.profiles", "dashboard.resources", "dashboard.training", "dashboard.upload",
           "mgi_core.evaluation.compare", "mgi_core.evaluation.protocol",
           "mgi_core.ranking.recommend", "mgi_core.store.queries.evaluations",
           "mgi_core.store.queries.profiles", "plotly.express", "sklearn.decomposition"]


def render(page: str, warm_imports: bool) -> list[float]:
    """Child: seconds of the first and the second render of ``page``."""
    import importlib

    from streamlit.testing.v1 import AppTest

    if warm_imports:
        for name in MODULES:
            importlib.import_module(name)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.switch_page(page)
    times = []
    for _ in range(2):
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        if at.exception:
            raise SystemExit(f"{page}: {[e.value for e in at.exception]}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm-imports", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(render(args.child, args.warm_imports)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pages.duckdb"
        shutil.copy(args.db, db)
        env = {**os.environ, "MGI_DB": str(db), "MGI_RUNS": str(Path(tmp) / "runs")}
        def child(page: str, *flags: str) -> list[float]:
            out = subprocess.run([sys.executable, __file__, "--child", page, *flags], env=env,
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        print("| page | cold process (s) | first render (s) | warm (s) |\n|---|---|---|---|")
        for page in PAGES:
            cold = [child(page)[0] for _ in range(args.repeat)]
            warm = [child(page, "--warm-imports") for _ in range(args.repeat)]
            print(f"| {page} | {statistics.median(cold):.2f} | "
                  f"{statistics.median(w[0] for w in warm):.2f} | "
                  f"{statistics.median(w[1] for w in warm):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
