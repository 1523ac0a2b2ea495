"""The Train page's helpers: config from the form, job start/cancel, progress panel, figures.

Widget state lives in ``st.session_state`` under ``train_*`` keys; the form's inputs and
the config they make are ``dashboard.train_form``'s. The pure helpers (``format_duration``,
``elapsed_s``, ``progress_bar``, ``events_from_log``, ``loss_figure``, ``validation_figure``,
``versions_frame``, ``versions_note``) need no Streamlit; the figure builders are functions
of the job's event list (``kind`` 'step' / 'epoch', as written to ``metrics.jsonl``), so a
running job and a finished version draw the same curves.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.background import Task, registry
from dashboard.charts import empty_figure
from dashboard.resources import show_error
from dashboard.text import plain
from dashboard.train_form import build_config, form_values
from mgi_core.config import TASKS, TrainConfig
from mgi_core.errors import MgiError
from mgi_core.jobs.manager import (
    MAX_PROCESSES,
    active_job,
    cancel_job,
    job_progress,
    refresh_jobs,
    start_job,
)
from mgi_core.store import Store
from mgi_core.store.embeddings import embedded_datasets
from mgi_core.store.queries.evaluations import has_embeddings
from mgi_core.store.versions import BASE_VERSION, get_version, list_versions, training_log

REFRESH_S = 2  # seconds between progress refreshes while a job runs
# Validation metrics drawn per epoch (all in [0, 1]) and their labels.
VAL_METRICS = {
    "overall/auc": "overall AUC",
    "category/macro_f1": "category macro-F1",
    "category/accuracy": "category accuracy",
    "subcategory/macro_f1": "subcategory macro-F1",
    "match/recall@1": "match recall@1",
    "match/recall@10": "match recall@10",
}
# The versions table's headline metrics (best-epoch validation values): column, help.
HEADLINE = {
    "overall/auc": ("AUC", "overall: AUC of liked vs not liked"),
    "category/macro_f1": ("F1 L1", "category (L1): macro-F1"),
    "subcategory/macro_f1": ("F1 L2", "subcategory (L2 or L3): macro-F1"),
    "match/recall@10": ("R@10", "match: recall@10 of the user's next item among in-batch items"),
}
PHASES = {
    "starting": "Starting", "preparing": "Preparing the data", "loading encoder":
    "Loading the encoder", "training": "Training", "saving": "Saving the checkpoint",
    "embedding": "Embedding the reviews", "done": "Done", "cancelled": "Cancelled",
    "failed": "Failed",
}
BASE_STRATEGY = "pre-trained"  # the base version's strategy in the versions table
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 340


# ---------------------------------------------------------------- pure helpers


def format_duration(seconds: float | None) -> str:
    """``seconds`` in words: '45 s', '3 min 05 s', '2 h 04 min'; '—' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_bar(progress: Mapping[str, Any], epochs: int | None = None) -> tuple[float, str]:
    """(fraction done in [0, 1], one line of text) for ``job_progress``'s status."""
    phase = progress.get("phase", "starting")
    label = PHASES.get(phase, str(phase).capitalize())
    if phase == "training" and progress.get("total_steps"):
        step, total = int(progress.get("step", 0)), int(progress["total_steps"])
        epoch = f"epoch {progress.get('epoch', 1)}" + (f" of {epochs}" if epochs else "")
        text = (f"{label} · {epoch} · step {step:,} of {total:,} · "
                f"ETA {format_duration(progress.get('eta_s'))}")
        return min(step / total, 1.0), text
    if phase == "embedding" and progress.get("total"):
        done, total = int(progress.get("done", 0)), int(progress["total"])
        return min(done / total, 1.0), f"{label} · {done:,} of {total:,} reviews"
    return (1.0 if phase == "done" else 0.0), label


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON may carry NaN for a metric a task could not compute)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def events_from_log(rows: Sequence[tuple[int, int, str, float]]) -> list[dict[str, Any]]:
    """Step and epoch events from ``training_log`` rows (step, epoch, metric, value).

    ``loss/<task>`` and ``loss/total`` rows of one step make a step event (with
    ``weight/<task>``: its learned task weights, ``adalora/rank_budget``: AdaLoRA's rank
    budget, ``loss/adversarial``: the adversarial loss); ``val/<name>`` rows of one step make
    the epoch event that closed at that step.
    """
    steps: dict[int, dict[str, Any]] = {}
    epochs: dict[int, dict[str, Any]] = {}
    for step, epoch, metric, value in rows:
        group, _, name = metric.partition("/")
        if group in ("loss", "weight", "adalora"):
            event = steps.setdefault(step, {"kind": "step", "epoch": epoch, "step": step,
                                            "loss": {}, "loss_total": None})
            if group == "weight":
                event.setdefault("weights", {})[name] = value
            elif group == "adalora":
                event["rank_budget"] = value
            elif name == "total":
                event["loss_total"] = value
            elif name == "adversarial":
                event["adv_loss"] = value
            else:
                event["loss"][name] = value
        elif group == "val":
            epochs.setdefault(step, {"kind": "epoch", "epoch": epoch, "step": step,
                                     "metrics": {}})["metrics"][name] = value
    merged = [*steps.values(), *epochs.values()]
    return sorted(merged, key=lambda e: (e["step"], e["kind"] == "epoch"))


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return fig



def loss_figure(events: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Training loss per task (and the weighted total, dashed) against the step.

    Dotted vertical lines mark the ends of epochs when there is more than one.
    """
    title = "Training loss"
    steps = [e for e in events if e.get("kind") == "step"]
    if not steps:
        return empty_figure(title, "No training steps yet", _HEIGHT)
    tasks = [t for t in TASKS if any(t in e.get("loss", {}) for e in steps)]
    mode = "lines+markers" if len(steps) <= 30 else "lines"
    fig = go.Figure()
    for task in tasks:
        points = [(e["step"], _number(e["loss"].get(task))) for e in steps]
        points = [(x, y) for x, y in points if y is not None]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], name=task, mode=mode,
            hovertemplate="%{y:.4f}"))
    totals = [(e["step"], _number(e.get("loss_total"))) for e in steps]
    totals = [(x, y) for x, y in totals if y is not None]
    if totals:
        learned = any("weights" in e for e in steps)
        fig.add_trace(go.Scatter(
            x=[p[0] for p in totals], y=[p[1] for p in totals],
            name="total (Σ w·ℓ + s, learned w)" if learned else "total (Σ λ·ℓ)",
            mode=mode, line={"dash": "dash", "color": "#666"}, hovertemplate="%{y:.4f}"))
    last = max(e["step"] for e in steps)
    fig.update_xaxes(tickformat=",d", **({"dtick": 1} if last <= 10 else {}),
                     **({"range": [0.5, 1.5]} if last == 1 else {}))
    ends = [e["step"] for e in events if e.get("kind") == "epoch"]
    if len({e.get("epoch") for e in steps}) > 1:
        for step in ends[:50]:
            fig.add_vline(x=step, line={"dash": "dot", "color": "#bbb", "width": 1})
    return _layout(fig, title, x="step", y="loss")


def strategy_figures(events: Sequence[Mapping[str, Any]]) -> list[go.Figure]:
    """What the training strategy did, step by step, where the run logged it: the learned
    task weights (task_weighting 'uncertainty') and AdaLoRA's rank budget."""
    steps = [e for e in events if e.get("kind") == "step"]
    figures = []
    weighted = [e for e in steps if e.get("weights")]
    if weighted:
        fig = go.Figure()
        tasks = [t for t in TASKS if any(t in e["weights"] for e in weighted)]
        for task in tasks:
            points = [(e["step"], _number(e["weights"].get(task))) for e in weighted]
            points = [(x, y) for x, y in points if y is not None]
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points],
                                     name=task, mode="lines", hovertemplate="%{y:.3f}"))
        figures.append(_layout(fig, "Learned task weights (exp(-s))", x="step", y="weight"))
    budget = [(e["step"], _number(e.get("rank_budget"))) for e in steps]
    budget = [(x, y) for x, y in budget if y is not None]
    if budget:
        fig = go.Figure(go.Scatter(x=[p[0] for p in budget], y=[p[1] for p in budget],
                                   name="rank budget", mode="lines",
                                   hovertemplate="%{y:.0f}"))
        figures.append(_layout(fig, "AdaLoRA rank budget (Σ ranks of the adapters)",
                               x="step", y="total rank"))
    return figures


def best_epoch(events: Sequence[Mapping[str, Any]]) -> int | None:
    """The epoch with the lowest validation objective (early stopping keeps it)."""
    scored = [(_number(e.get("metrics", {}).get("objective")), e.get("epoch")) for e in events
              if e.get("kind") == "epoch"]
    scored = [(o, ep) for o, ep in scored if o is not None]
    return min(scored, key=lambda p: p[0])[1] if scored else None


def validation_figure(events: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Validation metrics per epoch (AUC, macro-F1, accuracy, recall@K), best epoch marked."""
    title = "Validation metrics"
    epochs = [e for e in events if e.get("kind") == "epoch"]
    if not epochs:
        return empty_figure(title, "Measured after each epoch", _HEIGHT)
    fig = go.Figure()
    for key, label in VAL_METRICS.items():
        points = [(e["epoch"], _number(e.get("metrics", {}).get(key))) for e in epochs]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], name=label,
                mode="lines+markers", hovertemplate="%{y:.3f}"))
    if not fig.data:
        return empty_figure(title, "No validation metrics", _HEIGHT)
    best = best_epoch(events)
    if best is not None and len(epochs) > 1:
        fig.add_vline(x=best, line={"dash": "dot", "color": "#888", "width": 1},
                      annotation_text="best", annotation_position="top")
    last = max(e["epoch"] for e in epochs)
    fig.update_xaxes(tickformat=",d", dtick=1 if last <= 20 else None, range=[0.5, last + 0.5])
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, title, x="epoch", y="score")


def describe_strategy(version: Mapping[str, Any]) -> str | None:
    """The version's strategy with the training options it used: 'lora + fgm + learned λ'."""
    config = version.get("config") or {}
    options = []
    if config.get("adversarial", "none") != "none":
        options.append(f"{config['adversarial']} ε={config.get('adv_epsilon')}")
    if config.get("augment"):
        options.append("augment")
    if config.get("task_weighting", "fixed") != "fixed":
        options.append("learned λ")
    return " + ".join([version.get("strategy") or "?", *options]) if options else \
        version.get("strategy")


def versions_frame(versions: Sequence[Mapping[str, Any]],
                   embedded: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The versions table: one row per version with its headline validation metrics.

    The base version is not trained on a dataset: its strategy reads ``BASE_STRATEGY`` and
    its dataset the datasets it has embedded (``embedded``: version → dataset names, as
    ``embedded_datasets`` gives), '—' when none. ``forgotten data`` names the versions
    trained with reviews of users forgotten since (``forgotten_reviews``), '' for the others.
    """
    rows = []
    for v in versions:
        metrics = v.get("metrics") or {}
        dataset, strategy = v.get("dataset"), describe_strategy(v)
        if v.get("kind") == "base":
            dataset = ", ".join((embedded or {}).get(v["version"], ())) or "—"
            strategy = BASE_STRATEGY
        rows.append({
            "version": v["version"], "kind": v.get("kind"), "dataset": dataset,
            "strategy": strategy, "status": v.get("status"), "created_at": v.get("created_at"),
            **{label: _number(metrics.get(key)) for key, (label, _) in HEADLINE.items()},
            "forgotten data": forgotten_note(v.get("forgotten_reviews")),
            "message": v.get("message"),
        })
    labels = [label for label, _ in HEADLINE.values()]
    columns = ["version", "kind", "dataset", "strategy", "status", "created_at", *labels,
               "forgotten data", "message"]
    frame = pd.DataFrame(rows, columns=columns).astype({label: "float64" for label in labels})
    return frame.assign(message=frame["message"].fillna(""))


def forgotten_note(n_reviews: int | None) -> str:
    """'trained with forgotten data (N reviews)' for a version whose training snapshot held
    N reviews of users forgotten since; '' for none."""
    if not n_reviews:
        return ""
    return f"trained with forgotten data ({n_reviews:,} review{'s' if n_reviews != 1 else ''})"


def versions_note(job: Mapping[str, Any] | None, any_versions: bool) -> str | None:
    """The versions table's caption for what it cannot show yet, or None.

    An embedding job adds no row while it runs (``base`` is registered when it ends, or
    gains the dataset then), unlike a training job, whose version is listed as running.
    """
    embedding = job is not None and job.get("kind") == "embed"
    if any_versions:
        return (f"{job['dataset']} joins version {BASE_VERSION}'s datasets when the embedding "
                "job above finishes.") if embedding else None
    if embedding:
        return (f"No versions yet: version {BASE_VERSION} appears here when the embedding job "
                "above finishes.")
    return ("No versions yet: train one above, or embed the dataset with the pre-trained "
            f"encoder (version {BASE_VERSION}).")


def elapsed_s(started: datetime | float | None, now: float | None = None) -> float | None:
    """Seconds from ``started`` to ``now`` (default: the current time); None when unknown.

    ``started``: epoch seconds, or a datetime; a naive one is local time, as DuckDB returns
    a ``TIMESTAMP DEFAULT current_timestamp`` column (the jobs table's ``started_at``).
    """
    if isinstance(started, datetime):
        started = started.timestamp()
    start = _number(started)
    if start is None:
        return None
    return (time.time() if now is None else now) - start


# ---------------------------------------------------------------- Streamlit helpers


_device = registry("device", 1, deferred=True)


def device_check() -> Task:
    """``device_description`` once per process, in the background (importing torch takes
    seconds: the Train page draws meanwhile)."""
    return _device.start("device", "Checking the device", device_description)


def device_description() -> str:
    """Where a job will run ('auto': CUDA → MPS → CPU) and how it embeds, in words."""
    from mgi_core.encoder.device import choose_device
    from mgi_core.encoder.fast import encode_path_here

    info = choose_device("auto")
    embedding = encode_path_here(info.type, info.autocast_dtype)
    return f"{info.describe()}; embedding: {embedding.describe()}"


def current_job(store: Store) -> dict[str, Any] | None:
    """The running job, after registering any that finished (``refresh_jobs``; the core
    serialises it across the server's sessions)."""
    refresh_jobs(store)
    return active_job(store)


def has_base_embeddings(store: Store, dataset: str) -> bool:
    """Whether the pre-trained encoder (version ``base``) has embedded ``dataset``."""
    return has_embeddings(store, BASE_VERSION, dataset)


def start_training(store: Store) -> None:
    """Train button callback: build the config from the form and start the job, in
    ``train_processes`` data-parallel processes (torchrun) when that is more than one."""
    _start(store, "train", lambda: build_config(st.session_state),
           int(st.session_state.get("train_processes") or 1))


def embed_base(store: Store) -> None:
    """Base button callback: embed the dataset with the form's (pre-trained) encoder."""
    _start(store, "embed", lambda: TrainConfig(**form_values(
        st.session_state, ("base_model", "max_seq_length", "embed_max_seq_length"))))


def max_processes() -> int:
    """The most training processes the form offers: one per CPU core of this machine (a
    GPU machine has more cores than GPUs; each process of a GPU run takes one GPU)."""
    return max(1, min(os.cpu_count() or 1, MAX_PROCESSES))


def _start(store: Store, kind: str, make_config: Any, processes: int = 1) -> None:
    state = st.session_state
    state["train_error"] = None
    try:
        start_job(store, kind, state["train_dataset"], make_config(), processes)
    except MgiError as exc:
        state["train_error"] = exc
    else:
        state.pop("train_outcome", None)


def cancel(store: Store, version: str) -> None:
    """Cancel button callback (waits for the job to stop, at most its grace period)."""
    st.session_state["train_cancel_error"] = None
    try:
        cancel_job(store, version)
    except MgiError as exc:
        st.session_state["train_cancel_error"] = exc


def show_last_error(key: str) -> None:
    """The error the last start (``train_error``) or cancel (``train_cancel_error``) raised."""
    if (exc := st.session_state.get(key)) is not None:
        show_error(exc)


def track_job(store: Store, job: dict[str, Any] | None) -> None:
    """Remember the running job; when the one watched has ended, show how it ended."""
    state = st.session_state
    watched = state.get("train_job")
    if watched is not None and (job is None or job["job_id"] != watched["job_id"]):
        state["train_outcome"] = _outcome(store, watched)
    state["train_job"] = job
    outcome = state.get("train_outcome")
    if outcome is not None and job is None:
        kind, text = outcome
        {"success": st.success, "warning": st.warning}.get(kind, st.error)(text)


def _outcome(store: Store, job: Mapping[str, Any]) -> tuple[str, str]:
    """('success' | 'warning' | 'error', message) for a job that has ended."""
    version, dataset = plain(job["version"]), plain(job["dataset"])
    if job["kind"] == "train":
        info = get_version(store, job["version"], usable=False)
        state, message = info["status"], info.get("message")
    else:
        progress = job_progress(job["run_dir"])
        state = progress.get("state", "failed")
        state = "ready" if state == "finished" else state
        message = progress.get("message") or "The job ended without finishing."
    if state == "ready":
        what = {
            "train": f"Version **{version}** is ready (trained on {dataset}).",
            "search": f"The hyper-parameter search **{version}** on {dataset} finished: its "
                      "trials and best configuration are on the Metrics page.",
        }.get(job["kind"], f"Dataset **{dataset}** is embedded by the pre-trained encoder "
                           f"(version **{BASE_VERSION}**).")
        return "success", what
    if state == "cancelled":
        return "warning", f"The {job['kind']} job for {version} on {dataset} was cancelled."
    return "error", f"The {job['kind']} job for {version} on {dataset} failed: {plain(message)}"


@st.fragment(run_every=REFRESH_S)
def progress_panel(store: Store) -> None:
    """The running job's progress; refreshes alone, reruns the page when the job ends."""
    job = current_job(store)
    watched = st.session_state.get("train_job")
    if job is None or watched is None or job["job_id"] != watched["job_id"]:
        st.rerun()  # the job ended (or another began): redraw the whole page
    show_progress(store, job)


def show_progress(store: Store, job: Mapping[str, Any]) -> None:
    """Phase, progress bar with ETA, latest loss per task, Cancel, and the live curves."""
    progress = job_progress(job["run_dir"])
    epochs = None
    if job["kind"] == "train":
        epochs = (get_version(store, job["version"], usable=False).get("config") or {}).get(
            "epochs")
    what = {"train": "Fine-tuning", "search": "Hyper-parameter search"}.get(
        job["kind"], "Embedding with the pre-trained encoder")
    named = "study" if job["kind"] == "search" else "version"
    # The clock runs from the jobs table's start: the run folder's 'started' comes seconds
    # later, once the job process has imported its libraries.
    elapsed = elapsed_s(job.get("started_at") or progress.get("started"))
    head, button = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**{what}** · {named} **{plain(job['version'])}** · dataset "
                  f"**{plain(job['dataset'])}** · "
                  f"{plain(progress.get('device') or 'device: starting')} · elapsed "
                  f"{format_duration(elapsed)}")
    button.button("Cancel", key="train_cancel", icon=":material/stop_circle:", width="stretch",
                  on_click=cancel, args=(store, job["version"]),
                  help="Stop the job; nothing is registered for a cancelled run.")
    fraction, text = progress_bar(progress, epochs)
    st.progress(fraction, text=text)
    show_last_error("train_cancel_error")
    for notice in progress.get("notices") or []:
        st.info(plain(notice), icon=":material/info:")
    losses = progress.get("loss") or {}
    if losses:
        cells = st.columns(max(len(losses), 4))
        for cell, (task, value) in zip(cells, losses.items(), strict=False):
            cell.metric(f"Loss · {task}", f"{value:.4f}" if _number(value) is not None else "—")
    if job["kind"] == "train":
        show_curves(progress.get("events", []), key="train_live")


def show_curves(events: Sequence[Mapping[str, Any]], key: str) -> None:
    """Loss and validation curves side by side."""
    left, right = st.columns(2)
    left.plotly_chart(loss_figure(events), key=f"{key}_loss")
    right.plotly_chart(validation_figure(events), key=f"{key}_val")
    extra = strategy_figures(events)
    if extra:
        for column, (i, fig) in zip(st.columns(2), enumerate(extra), strict=False):
            column.plotly_chart(fig, key=f"{key}_strategy_{i}")


def version_events(store: Store, info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A version's events: its stored training log, else its run folder's (not registered)."""
    rows = training_log(store, info["version"])
    if rows:
        return events_from_log(rows)
    return job_progress(info["artefact_dir"])["events"] if info.get("artefact_dir") else []


def show_versions(store: Store, job: Mapping[str, Any] | None = None) -> None:
    """The versions table (and what the running ``job`` will add) and one version's curves."""
    versions = list_versions(store)
    if (note := versions_note(job, bool(versions))) is not None:
        st.caption(plain(note))
    if not versions:
        return
    frame = versions_frame(versions, embedded_datasets(store))
    config = {"created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
              **{label: st.column_config.NumberColumn(label, help=text, format="%.3f")
                 for label, text in HEADLINE.values()},
              "message": st.column_config.TextColumn("message", width="large")}
    st.dataframe(frame, hide_index=True, column_config=config, key="train_versions_table")
    # A running version's curves are in the progress panel, refreshed as it runs.
    tuned = [v for v in versions if v["kind"] != "base" and v["status"] != "running"]
    if not tuned:
        return
    names, state = [v["version"] for v in tuned], st.session_state
    if state.get("train_curves") not in names or state.get("train_curves_newest") != names[0]:
        state["train_curves"] = names[0]  # a new version finished: show it
    state["train_curves_newest"] = names[0]
    name = st.selectbox("Training curves of", names, key="train_curves", width=320)
    info = tuned[names.index(name)]
    note = f": {info['message']}" if info["status"] != "ready" and info.get("message") else ""
    st.caption(plain(f"{info['status']}{note} · {info.get('strategy')} on {info.get('dataset')}"
                     f" · base encoder {info.get('base_model')}"))
    show_curves(version_events(store, info), key="train_version")
