"""The Train page's form, generated from ``TrainConfig``'s fields, and the config it makes.

Each field's input takes its label, help, default and lowest value from the field's metadata
(``mgi_core.config``): a new field shows up on the page by itself. Widget state lives in
``st.session_state`` under ``form_key(field)``. The pure helpers (``form_input``,
``form_values``, ``build_config``) need no Streamlit.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, cycle
from typing import Any

import streamlit as st

from mgi_core.config import TrainConfig

DEFAULTS = TrainConfig()
# Session keys that are not train_<field> (kept: sessions and tests use them).
FORM_KEYS = {"learning_rate": "train_lr", "head_learning_rate": "train_head_lr",
             "max_train_reviews": "train_max_reviews", "head_warmup_epochs": "train_head_warmup"}
# Fields with inputs of their own at the top of the form (dataset-wide choices).
TOP_FIELDS = ("base_model", "tasks", "task_weights", "strategy")
# Each strategy's own parameters, shown beside the strategy.
# A field may sit under several strategies (the page shows one strategy's fields at a time).
STRATEGY_FIELDS = {"lora": ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets"),
                   "adalora": ("adalora_init_rank", "adalora_target_rank", "adalora_tinit",
                               "adalora_tfinal", "adalora_delta_t", "lora_alpha",
                               "lora_dropout", "lora_targets"),
                   "freeze": ("freeze_layers",), "full": ()}
# The method's training options (README, "Training options"), in an expander of their own.
OPTION_FIELDS = ("adversarial", "adv_epsilon", "pgd_steps", "pgd_alpha", "augment",
                 "augment_rate", "augment_share", "backtranslation_model", "task_weighting",
                 "weighting_learning_rate")
# Jobs started from the page run on the best device here ('auto'); the page names it.
PAGE_OMITS = ("device",)
HYPER_FIELDS = tuple(
    f.name for f in dataclasses.fields(TrainConfig)
    if f.name not in {*TOP_FIELDS, *chain(*STRATEGY_FIELDS.values()), *OPTION_FIELDS,
                      *PAGE_OMITS})
_HINTS = typing.get_type_hints(TrainConfig)


@dataclass(frozen=True)
class FormInput:
    """How the form shows one ``TrainConfig`` field."""

    name: str
    key: str
    label: str
    help: str
    kind: str  # 'int', 'float', 'bool', 'choice', 'multi' (several choices), 'list' (comma
    # text) or 'text'
    value: Any  # the default shown (0 for an unset optional number)
    min_value: Any = None
    step: Any = None
    format: str | None = None
    options: tuple[str, ...] = ()


def form_key(name: str) -> str:
    """The session key of field ``name``'s input: 'epochs' → 'train_epochs'."""
    return FORM_KEYS.get(name, f"train_{name}")


def _kind(name: str) -> str:
    hint, meta = _HINTS[name], TrainConfig.field_info(name).metadata
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = inner[0] if len(inner) == 1 else hint  # X | None → X
    if hint is bool:
        return "bool"
    if meta.get("choices") and hint is str:
        return "choice"
    if typing.get_origin(hint) is tuple:
        return "multi" if meta.get("choices") else "list"
    return {int: "int", float: "float"}.get(hint, "text")


def form_input(name: str) -> FormInput:
    """The input of field ``name``: its metadata's label, help, default and lowest value.

    Floats below 0.01 (learning rates) show in scientific notation with a step a tenth of
    their order of magnitude; an optional number shows 0 for 'unset'.
    """
    meta, default, kind = TrainConfig.field_info(name).metadata, TrainConfig.default(name), \
        _kind(name)
    label = meta.get("label") or name.replace("_", " ").capitalize()
    help_text = meta.get("help", "")
    spec: dict[str, Any] = {"min_value": meta.get("min")}
    if default is None:
        default, spec["min_value"] = 0, 0
        help_text += f" 0 = {meta.get('unset', 'none')}."
    if kind == "int":
        spec["step"] = 1
    elif kind == "float":
        small = 0 < default < 0.01
        spec["step"] = 10.0 ** (math.floor(math.log10(default)) - 1) if small else (
            0.5 if default >= 1 else 0.01)
        # Two decimals unless the default has more (0.025 would show as 0.03).
        spec["format"] = "%.1e" if small else (None if round(default, 2) == default
                                               else "%.3f")
        spec["min_value"] = None if spec["min_value"] is None else float(spec["min_value"])
    elif kind in ("choice", "multi"):
        spec["options"] = tuple(meta["choices"])
    return FormInput(name, form_key(name), label, help_text, kind, default, **spec)


def _from_form(name: str, raw: Any) -> Any:
    """A form value as the config field takes it."""
    kind, default = _kind(name), TrainConfig.default(name)
    if kind == "list" and isinstance(raw, str):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if kind == "multi":
        return tuple(raw)
    if default is None and kind in ("int", "float"):
        return raw or None  # 0 = unset
    return raw.strip() if isinstance(raw, str) else raw


def form_values(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Fields ``names`` from the form's ``values`` (session keys); those without one left out."""
    return {name: _from_form(name, values[form_key(name)]) for name in names
            if form_key(name) in values}


def build_config(values: Mapping[str, Any]) -> TrainConfig:
    """The ``TrainConfig`` for the form's values (``train_*`` keys; missing → defaults).

    ``train_max_reviews`` 0 means all reviews (``None``); weights are kept for the chosen
    tasks only. Raises ConfigError for values the config rejects (e.g. no task).
    """
    tasks = list(values.get("train_tasks", DEFAULTS.tasks))
    weights = {t: float(values.get(f"train_w_{t}", DEFAULTS.weight(t))) for t in tasks}
    others = (f.name for f in dataclasses.fields(TrainConfig)
              if f.name not in ("tasks", "task_weights"))
    return TrainConfig(tasks=tasks, task_weights=weights, **form_values(values, others))


def show_input(container: Any, spec: FormInput) -> Any:
    """Draw ``spec``'s widget in ``container`` (``st`` or a column); returns its value."""
    common = {"key": spec.key, "help": spec.help}
    if spec.kind == "bool":
        return container.checkbox(spec.label, spec.value, **common)
    if spec.kind == "choice":
        return container.selectbox(spec.label, spec.options,
                                   index=spec.options.index(spec.value), **common)
    if spec.kind == "multi":
        return container.multiselect(spec.label, spec.options, default=list(spec.value),
                                     **common)
    if spec.kind in ("list", "text"):
        shown = ",".join(spec.value) if spec.kind == "list" else spec.value
        return container.text_input(spec.label, shown, **common)
    return container.number_input(spec.label, min_value=spec.min_value, value=spec.value,
                                  step=spec.step, format=spec.format, **common)


def show_inputs(names: Iterable[str], columns: int = 4) -> None:
    """The inputs of fields ``names``, row by row in ``columns`` columns."""
    for cell, name in zip(cycle(st.columns(columns)), names, strict=False):
        show_input(cell, form_input(name))
