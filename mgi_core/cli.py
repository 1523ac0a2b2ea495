"""Command line: ``python -m mgi_core COMMAND``. The CLI and the pages call the same code.

Exit status: 0 on success, 2 when MGI rejects the input (the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mgi_core.config import IngestConfig
from mgi_core.errors import MgiError

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_DATASET = "demo"


def _db_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db", default=None, help="DuckDB file (default: $MGI_DB or data/mgi.duckdb)."
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mgi_core",
        description="MGI: multi-granularity user interests from review text.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = _db_parent()

    ingest = sub.add_parser("ingest", parents=[db], help="Validate and store a review file.")
    ingest.add_argument("file", type=Path, help="CSV or Parquet file of reviews.")
    ingest.add_argument("--name", required=True, help="Dataset name to store it under.")
    ingest.add_argument(
        "--mapping", nargs="*", default=[], metavar="SRC=DST",
        help="Map a file column to an MGI column, e.g. reviewerID=user_id overall=rating.",
    )
    ingest.add_argument("--strict", action="store_true", help=IngestConfig.help("strict"))
    ingest.add_argument(
        "--separator", default=" > ", help=IngestConfig.help("category_separator")
    )
    ingest.add_argument("--rating-min", type=float, default=1.0)
    ingest.add_argument("--rating-max", type=float, default=5.0)
    ingest.add_argument("--max-rows", type=int, default=IngestConfig().max_rows)
    ingest.add_argument("--max-bytes", type=int, default=IngestConfig().max_bytes)
    ingest.add_argument("--json", action="store_true", help="Print the report as JSON.")

    datasets = sub.add_parser("datasets", parents=[db], help="List stored datasets.")
    datasets.add_argument("--json", action="store_true", help="Print JSON.")

    demo = sub.add_parser(
        "load-demo", parents=[db], help="Ingest the bundled demo dataset if the store is empty."
    )
    demo.add_argument("--force", action="store_true", help="Load it even if data exists.")
    return parser


def _open_store(db: str | None):  # noqa: ANN202 - Store import kept lazy for fast --help
    from mgi_core.store import Store

    return Store(db)


def _dataset_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "file_name": row["file_name"],
        "reviews": row["n_reviews"],
        "users": row["n_users"],
        "items": row["n_items"],
        "distinct_l1": row["n_l1"],
        "distinct_l2": row["n_l2"],
        "distinct_l3": row["n_l3"],
        "rejected": row["n_rejected"],
        "has_timestamp": row["has_timestamp"],
        "created_at": str(row["created_at"]),
    }


def cmd_ingest(args: argparse.Namespace) -> int:
    from mgi_core.data.columns import parse_mapping_args
    from mgi_core.data.ingest import ingest_file

    config = IngestConfig(
        category_separator=args.separator, rating_min=args.rating_min,
        rating_max=args.rating_max, strict=args.strict, max_rows=args.max_rows,
        max_bytes=args.max_bytes,
    )
    mapping = parse_mapping_args(args.mapping)
    with _open_store(args.db) as store:
        report = ingest_file(store, args.file, args.name, mapping=mapping, config=config)
    if args.json:
        out = report.to_dict()
        out["rejected_rows"] = out["rejected_rows"][:100]
        print(json.dumps(out, default=str, indent=2))
        return 0
    print(report.summary())
    for notice in report.notices:
        print(f"note: {notice}")
    for row in report.rejected_rows[:10]:
        print(f"  line {row['line']}: {row['reason']} ({row['detail']})")
    if report.n_rejected > 10:
        print(f"  … {report.n_rejected - 10:,} more; see the Data page to download them all.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from mgi_core.data.datasets import list_datasets

    with _open_store(args.db) as store:
        rows = [_dataset_json(r) for r in list_datasets(store)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No datasets yet: python -m mgi_core ingest FILE --name NAME")
        return 0
    header = f"{'name':<20} {'reviews':>9} {'users':>8} {'items':>8} {'l1':>4} {'l2':>4} " \
        f"{'l3':>4} {'rejected':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['name']:<20} {r['reviews']:>9,} {r['users']:>8,} {r['items']:>8,} "
            f"{r['distinct_l1']:>4} {r['distinct_l2']:>4} {r['distinct_l3']:>4} "
            f"{r['rejected']:>9,}"
        )
    return 0


def cmd_load_demo(args: argparse.Namespace) -> int:
    from mgi_core.data.ingest import ingest_file

    with _open_store(args.db) as store:
        n = store.cursor().execute("SELECT count(*) FROM datasets").fetchone()[0]
        if n and not args.force:
            print(f"{store.path} already holds {n} dataset(s); demo not loaded.")
            return 0
        report = ingest_file(store, DEMO_DIR / "reviews.csv", DEMO_DATASET)
    print(report.summary())
    return 0


COMMANDS = {"ingest": cmd_ingest, "datasets": cmd_datasets, "load-demo": cmd_load_demo}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except MgiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
