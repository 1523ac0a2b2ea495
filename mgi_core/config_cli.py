"""Command-line options generated from a config dataclass: one option per field.

Each field ``name`` becomes ``--name`` (underscores as dashes) with the field's help text and
default; ``aliases`` add the older spellings (``{"learning_rate": ("--lr",)}``). By type:
bool → ``--flag/--no-flag``; a tuple → a comma list (``--tasks overall,match``); a dict of
floats → ``key=value,...`` over the default (``--task-weights category=0.5``); ``int | None``
→ an int or ``none``; a field with ``choices`` in its metadata → those values only.
Options left out keep the dataclass default: ``config_from_args`` passes only what was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from mgi_core.config import BaseConfig

C = TypeVar("C", bound=BaseConfig)


def option_name(name: str) -> str:
    """'max_seq_length' → '--max-seq-length'."""
    return "--" + name.replace("_", "-")


def _optional(kind: Any) -> Any:
    """``X`` for ``X | None`` (else None)."""
    args = typing.get_args(kind)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return None


def _comma_list(choices: Sequence[str] | None) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(p.strip() for p in text.split(",") if p.strip())
        bad = [i for i in items if choices and i not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad} not allowed; choose from {list(choices)}")
        return items
    return parse


def _number_map(default: Mapping[str, float]) -> Any:
    def parse(text: str) -> dict[str, float]:
        out = dict(default)
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            try:
                out[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not KEY=NUMBER, e.g. {next(iter(default), 'key')}=0.5")
        return out
    return parse


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none") else int(text)


def _shown(value: Any, unset: str) -> str:
    if value is None:
        return unset
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def add_config_options(parser: argparse.ArgumentParser, cls: type[BaseConfig],
                       aliases: Mapping[str, Sequence[str]] | None = None,
                       defaults: Mapping[str, str] | None = None) -> None:
    """Add one option per field of ``cls`` to ``parser``.

    Args:
        parser: the (sub)command's parser.
        cls: a config dataclass (fields made with ``mgi_core.config._f``).
        aliases: field name → extra option spellings.
        defaults: field name → the default as the help should state it, where the command
            fills it in itself (e.g. a learning rate that depends on the strategy).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, meta, default = hints[f.name], f.metadata, cls.default(f.name)
        choices, inner = meta.get("choices"), _optional(hints[f.name])
        shown = (defaults or {}).get(f.name) or _shown(default, meta.get("unset", "none"))
        spec: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                "help": f"{meta.get('help', '')} (default: {shown})".replace(
                                    "%", "%%")}
        if kind is bool:
            spec["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            spec.update(type=_comma_list(choices), metavar="A,B,...")
        elif typing.get_origin(kind) is dict:
            spec.update(type=_number_map(default), metavar="KEY=VALUE,...")
        elif inner is int:
            spec.update(type=_optional_int, metavar="N")
        else:
            kind = inner or kind
            metavar = None if choices else {int: "N", float: "X"}.get(kind, "TEXT")
            spec.update(type=kind, choices=choices, metavar=metavar)
        parser.add_argument(option_name(f.name), *(aliases or {}).get(f.name, ()), **spec)


def config_from_args(cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    """The ``cls`` config of the options given in ``args`` (the rest keep their defaults).

    ``overrides`` are fields the command computed itself; they win over ``args``.
    """
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if hasattr(args, f.name)}
    return cls(**{**given, **overrides})
