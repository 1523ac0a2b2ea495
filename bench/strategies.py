"""What each training option costs: fine-tuning throughput against the default (LoRA) run.

    python bench/strategies.py [--data music|PATH.parquet] [--reviews 400] [--val 200]
                               [--model SPEC] [--device auto] [--json]
                               [--variants reference,adalora,...]

The same reviews, seed and budget for every variant (``mgi_core.config.TRAINING_VARIANTS``, the
ablation's: reference, adalora, fgm, pgd, augment, uncertainty); each trains a fresh copy of
the encoder for one epoch with ``fine_tune`` (the head warm-up off, so the timed loop is the
fine-tune itself). Printed per variant: samples/s, its ratio to the reference measured in the
same run, and the validation objective (Σ fixed λ · validation loss; lower is better).

``--data music`` exports the shared Digital Music reviews through a throw-away DuckDB (the
way a job sees them); a ``.parquet`` path is read as such a snapshot (columns of
``mgi_core.store.datasets.SNAPSHOT_COLUMNS``), so the script also runs where DuckDB is not
installed (the GPU check).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mgi_core.config import TRAINING_VARIANTS, TrainConfig
from mgi_core.encoder.model import load_encoder
from mgi_core.encoder.tasks import build_task_data
from mgi_core.encoder.train import fine_tune

MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_digital_music.csv"
VARIANTS = {name: v.overrides for name, v in TRAINING_VARIANTS.items() if v.fine_tune}


def load_snapshot(data: str) -> pd.DataFrame:
    if data.endswith(".parquet"):
        return pd.read_parquet(data)
    from mgi_core.data.ingest import ingest_file
    from mgi_core.data.snapshot import export_snapshot
    from mgi_core.store import Store

    source = MUSIC if data == "music" else Path(data)
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "bench.duckdb") as store:
            ingest_file(store, source, "bench")
            export_snapshot(store, "bench", Path(tmp) / "snapshot.parquet")
        return pd.read_parquet(Path(tmp) / "snapshot.parquet")


def run(snapshot: pd.DataFrame, base: TrainConfig, variant: str) -> dict:
    config = TrainConfig.from_dict({**base.to_dict(), **VARIANTS[variant]})
    data = build_task_data(snapshot, config)
    encoder = load_encoder(config.base_model, config.max_seq_length, config.device)
    encoder.transformer.float()  # a half-precision copy of the weights trains in fp32
    steps: list[float] = []
    started = time.perf_counter()
    result = fine_tune(encoder, data, config,
                       on_event=lambda e: steps.append(time.perf_counter())
                       if e["kind"] == "step" else None)
    return {
        "variant": variant, "steps": result.n_steps, "samples_per_s": result.samples_per_s,
        "seconds": time.perf_counter() - started,
        "val_objective": result.val_metrics.get("objective"),
        "device": encoder.device_info.describe(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="music")
    parser.add_argument("--reviews", type=int, default=400, help="Training reviews used.")
    parser.add_argument("--val", type=int, default=200, help="Validation reviews scored.")
    parser.add_argument("--model", default=TrainConfig.default("base_model"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    snapshot = load_snapshot(args.data)
    base = TrainConfig(base_model=args.model, device=args.device, epochs=1,
                       max_train_reviews=args.reviews, head_warmup_epochs=0,
                       eval_max_reviews=args.val)
    names = [v for v in args.variants.split(",") if v]
    if "reference" not in names:
        names.insert(0, "reference")
    rows: list[dict] = []
    for name in names:  # each row as soon as it is measured (the reference runs first)
        row = run(snapshot, base, name)
        row["ratio_to_reference"] = row["samples_per_s"] / rows[0]["samples_per_s"] \
            if rows else 1.0
        rows.append(row)
        if not args.json:
            if len(rows) == 1:
                print(f"device: {row['device']}; {args.reviews} training reviews at most, "
                      "1 epoch")
                print(f"{'variant':<12} {'samples/s':>10} {'× reference':>12} "
                      f"{'val objective':>14}")
            print(f"{row['variant']:<12} {row['samples_per_s']:>10.1f} "
                  f"{row['ratio_to_reference']:>12.2f} {row['val_objective']:>14.4f}",
                  flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
