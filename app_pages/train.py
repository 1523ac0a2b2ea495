"""Train page: fine-tune the encoder on a dataset, follow the running job, compare versions."""

from __future__ import annotations

import streamlit as st

from dashboard import training
from dashboard.resources import get_store
from mgi_core.config import STRATEGIES, TASKS, TrainConfig
from mgi_core.data.datasets import list_datasets

D, H = training.DEFAULTS, TrainConfig.help
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
    if strategy == "lora":
        st.number_input("LoRA rank", 1, 256, D.lora_rank, key="train_lora_rank",
                        help=H("lora_rank"))
        st.number_input("LoRA alpha", 1, 512, D.lora_alpha, key="train_lora_alpha",
                        help=H("lora_alpha"))
    elif strategy == "freeze":
        st.number_input("Frozen layers", 0, 48, D.freeze_layers, key="train_freeze_layers",
                        help=H("freeze_layers"))
    else:
        st.caption("Every encoder weight is trained: use a small learning rate (2e-5).")

# Stateful (key + on_change): an opened expander stays open when Train or Embed reruns the page.
with st.expander("Hyper-parameters", key="train_hyper_open", on_change="rerun"):
    a, b, c, d = st.columns(4)
    a.number_input("Epochs", 1, 1000, D.epochs, key="train_epochs", help=H("epochs"))
    b.number_input("Batch size", 2, 4096, D.batch_size, key="train_batch_size",
                   help=H("batch_size"))
    c.number_input("Encoder learning rate", 1e-7, 1.0, D.learning_rate, 1e-5, "%.1e",
                   key="train_lr", help=H("learning_rate"))
    d.number_input("Head learning rate", 1e-7, 1.0, D.head_learning_rate, 1e-4, "%.1e",
                   key="train_head_lr", help=H("head_learning_rate"))
    a.number_input("Max sequence length", 8, 512, D.max_seq_length, key="train_max_seq_length",
                   help=H("max_seq_length"))
    b.number_input("Max training reviews", 0, 10_000_000, D.max_train_reviews or 0, 100,
                   key="train_max_reviews", help=H("max_train_reviews") + " 0 = all.")
    c.number_input("Seed", 0, 2**31 - 1, D.seed, key="train_seed", help=H("seed"))
    d.number_input("Patience", 0, 100, D.patience, key="train_patience", help=H("patience"))
    a.number_input("Like threshold", 0.0, 100.0, D.like_threshold, 0.5,
                   key="train_like_threshold", help=H("like_threshold"))
    b.number_input("Embedding max length", 8, 2048, D.embed_max_seq_length,
                   key="train_embed_max_seq_length", help=H("embed_max_seq_length"))
    c.number_input("Head warm-up epochs", 0, 1000, D.head_warmup_epochs,
                   key="train_head_warmup", help=H("head_warmup_epochs"))

busy = "A job is running: wait for it or cancel it." if job is not None else None
st.caption(f"Runs on **{training.device_description()}**.")
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
