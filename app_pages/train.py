"""Train page: fine-tune the encoder on a dataset, follow the running job, compare versions."""

from __future__ import annotations

import streamlit as st

from dashboard import pending, training
from dashboard import train_form as form
from dashboard.resources import get_store
from mgi_core.config import STRATEGIES, TASKS, TrainConfig
from mgi_core.data.datasets import list_datasets

D, H = form.DEFAULTS, TrainConfig.help
state, store = st.session_state, get_store()

st.title("Train")
st.caption("Fine-tune the text encoder on a dataset's reviews, one head per granularity. "
           "Training runs in the background: closing this tab does not stop it.")
stored = list_datasets(store)
if not stored:
    st.info("No datasets yet: add a review file on the Data page first.", icon=":material/inbox:")
    st.page_link("app_pages/data.py", label="Go to the Data page", icon=":material/database:")
    st.stop()

job = training.current_job(store)
with st.container():  # one slot, job or not: the form below keeps its place on the page
    training.track_job(store, job)
    if job is not None:
        st.header("Running job")
        training.progress_panel(store)

st.header("New training run")
names = [d["name"] for d in stored]
if state.get("train_dataset") not in names:
    state["train_dataset"] = names[0]  # newest first
left, right = st.columns(2)
dataset = left.selectbox("Dataset", names, key="train_dataset")
right.text_input("Base encoder", D.base_model, key="train_base_model",
                 help=f"{H('base_model')} `{D.base_model}` is the bundled one; otherwise give "
                 "the path of a local model folder or a Hugging Face hub id.")
tasks = st.multiselect("Tasks", TASKS, default=list(D.tasks), key="train_tasks",
                       help=H("tasks") + " Levels the data lacks are skipped with a notice.")
if tasks:
    st.caption(H("task_weights"))
    for cell, task in zip(st.columns(len(TASKS)), tasks, strict=False):
        cell.number_input(f"λ {task}", 0.0, 100.0, D.weight(task), 0.1, key=f"train_w_{task}")
left, right = st.columns([1, 2])
strategy = left.radio("Strategy", STRATEGIES, index=STRATEGIES.index(D.strategy),
                      key="train_strategy", horizontal=True, help=H("strategy"))
with right.container(horizontal=True):
    for name in form.STRATEGY_FIELDS[strategy]:
        form.show_input(st, form.form_input(name))
    if strategy == "full":
        st.caption("Every encoder weight is trained: use a small learning rate (2e-5).")

# Stateful (key + on_change): an opened expander stays open when Train or Embed reruns the page.
with st.expander("Hyper-parameters", key="train_hyper_open", on_change="rerun"):
    form.show_inputs(form.HYPER_FIELDS)  # every other TrainConfig field, from its metadata
with st.expander("Robustness, augmentation and task weighting", key="train_options_open",
                 on_change="rerun"):
    st.caption("The method's training options, all off by default (README, \"Training "
               "options\", says what each was worth on the shared data).")
    form.show_inputs(form.OPTION_FIELDS)

st.number_input(
    "Processes", 1, training.max_processes(), 1, 1, key="train_processes", width=220,
    help="Data-parallel training processes on this machine (torchrun, PyTorch DDP): each "
    "takes every N-th review of a batch and the gradients are averaged. On GPUs give one "
    "per GPU; on a CPU one per core brings little (README, \"Scaling\").")
busy = "A job is running: wait for it or cancel it." if job is not None else None
if pending.ready(device := training.device_check(), "The device description"):
    st.caption(f"Runs on **{device.result()}**.")
with st.container(horizontal=True):
    st.button("Train", type="primary", key="train_start", icon=":material/model_training:",
              on_click=training.start_training, args=(store,), disabled=job is not None,
              help=busy)
    if not training.has_base_embeddings(store, dataset):
        st.button("Embed with the pre-trained encoder (base)", key="train_embed_base",
                  icon=":material/scatter_plot:", on_click=training.embed_base, args=(store,),
                  disabled=job is not None, help=busy or f"{dataset} has no `base` embeddings "
                  "yet: the baseline that fine-tuned versions are compared with.")
training.show_last_error("train_error")

st.header("Model versions")
st.caption("Every version, newest first; metrics are the best epoch's validation scores.")
training.show_versions(store, job)
