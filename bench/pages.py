"""First-render time of every dashboard page on a database (target: under 2 s each).

Each page is rendered in a fresh process with ``streamlit.testing.v1.AppTest``, three times:
``cold process`` (nothing imported yet, as the very first request after a server start),
then, in a second process that has already imported every module the pages use (as a
server that has served any page) but holds no cached data, ``first render``; then the same
page again in that process (``warm``: cached resources and data).
Derived data the pages store once per version (profiles, evaluations) is assumed present,
as after ``python -m mgi_core evaluate``; the database is copied first and never changed
(``--in-place`` uses it as given: for a multi-GB file that is already a scratch copy).
Work a page does in the background (fitting a ranking, projecting the catalogue) is not
waited for: a first render shows it as being prepared.

``--interactions`` times, in one warm process per page, what a user does next once that
background work has ended ("after warm-up"): on the Profiles page picking another user, scorer
and version; on the Compare page (after picking version A, as the default A is ``base``)
switching system B's scorer, picking another changed user, switching B's version. Each is
one rerun, and then ``settled``: until no section is being prepared (that user's ranking,
a new comparison).

    .venv/bin/python bench/pages.py --db dm.duckdb [--repeat 3] [--pages profiles compare]
    .venv/bin/python bench/pages.py --db big.duckdb --in-place --interactions
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
from typing import Any

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


def _timed(at, settle: bool = False) -> float:
    """Seconds of one rerun (``settle``: then until no section is being prepared)."""
    from dashboard import background, pending

    started = time.perf_counter()
    while True:
        before = pending.statuses_drawn()
        at.run()
        if at.exception:
            raise SystemExit(f"{[e.value for e in at.exception]}")
        if not settle or pending.statuses_drawn() == before:
            return time.perf_counter() - started
        background.wait_all()


def _pick_other(at, key: str, prefer: str | None = None) -> bool:
    """Set the select box ``key`` to another of its options; whether there was one.

    The options are as shown: a user's label ('u1 · 3 train reviews · Audio') starts with
    the value.
    """
    box = at.selectbox(key=key)
    others = [o.split(" · ")[0] for o in box.options]  # a label starts with its value
    others = [o for o in others if o != box.value]
    if not others:
        return False
    box.set_value(prefer if prefer in others else others[len(others) // 2])
    return True


def interactions(page: str) -> dict[str, float]:
    """Child: seconds of the first render, the warm-up, and each interaction on ``page``."""
    import importlib

    from streamlit.testing.v1 import AppTest

    from dashboard import background

    for name in MODULES:
        importlib.import_module(name)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.switch_page(page)
    out = {"first render": _timed(at)}
    if page == "app_pages/compare.py" and _pick_other(at, "compare_version_a"):
        # The default A is base, which a dataset embedded by one version lacks: pick it.
        out["open a comparison (version A)"] = _timed(at)
    started = time.perf_counter()
    background.wait_all(1800)
    out["background work (warm-up)"] = time.perf_counter() - started
    out["rerun after warm-up"] = _timed(at)
    steps = {"app_pages/profiles.py": [("pick another user", "prof_user", None),
                                        ("pick another scorer", "prof_scorer", "popularity"),
                                        ("pick another version", "prof_version", None)],
             "app_pages/compare.py": [("switch scorer B (another evaluated one)",
                                       "compare_scorer_b", "content"),
                                      ("pick another changed user", "compare_user", None),
                                      ("switch version B", "compare_version_b", None)]}
    for label, key, prefer in steps.get(page, []):
        if not _has(at, key) or not _pick_other(at, key, prefer):
            continue
        out[label] = _timed(at)
        started = time.perf_counter()
        _timed(at, settle=True)
        out[f"{label}: settled"] = out[label] + time.perf_counter() - started
    return out


def _has(at, key: str) -> bool:
    try:
        at.selectbox(key=key)
    except KeyError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", nargs="+", choices=[Path(p).stem for p in PAGES],
                        help="only these pages (default: all)")
    parser.add_argument("--in-place", action="store_true",
                        help="use --db as given instead of a copy (it may be written to)")
    parser.add_argument("--interactions", action="store_true",
                        help="time interactions after warm-up instead of first renders")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm-imports", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-interactions", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (interactions(args.child) if args.child_interactions
                  else render(args.child, args.warm_imports))
        print(json.dumps(result), flush=True)
        os._exit(0)  # not waiting for background work still running (a fit can take minutes)
    pages = [p for p in PAGES if not args.pages or Path(p).stem in args.pages]
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if not args.in_place:
            db = Path(tmp) / "pages.duckdb"
            shutil.copy(args.db, db)
        env = {**os.environ, "MGI_DB": str(db), "MGI_RUNS": str(Path(tmp) / "runs")}
        def child(page: str, *flags: str) -> Any:
            out = subprocess.run([sys.executable, __file__, "--child", page, *flags], env=env,
                                 cwd=ROOT, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{page}: {out.stderr[-3000:]}")
            return json.loads(out.stdout.strip().splitlines()[-1])

        if args.interactions:
            print("| page | step | seconds |\n|---|---|---|")
            for page in pages:
                for step, seconds in child(page, "--child-interactions").items():
                    print(f"| {page} | {step} | {seconds:.2f} |", flush=True)
            return 0
        print("| page | cold process (s) | first render (s) | warm (s) |\n|---|---|---|---|")
        for page in pages:
            cold = [child(page)[0] for _ in range(args.repeat)]
            warm = [child(page, "--warm-imports") for _ in range(args.repeat)]
            print(f"| {page} | {statistics.median(cold):.2f} | "
                  f"{statistics.median(w[0] for w in warm):.2f} | "
                  f"{statistics.median(w[1] for w in warm):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
