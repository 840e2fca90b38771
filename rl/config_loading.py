"""Loading a config: a YAML recipe plus ``--key value`` command-line overrides
(``transformers.HfArgumentParser``), with JSON for dict-typed fields, into a config dataclass
of :mod:`rl.config`, built from the explicit fields only (so a method preset fills the rest).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from rl.errors import ConfigError

C = TypeVar("C")  # a config dataclass (rl.config.TrainConfig and its subclasses)


def load_config(cls: type[C], argv: Sequence[str] | None = None) -> C:
    """Parse ``--config recipe.yaml`` plus ``--key value`` overrides into ``cls``.

    The config is built from the *explicit* fields only (the recipe's keys and the flags given),
    so a method preset fills in exactly the rest. Dict fields take JSON on the command line,
    merged key by key over the recipe's value."""
    from transformers import HfArgumentParser

    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe: dict[str, Any] = {}
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config: expects a path to a YAML recipe")
        path = argv[i + 1]
        del argv[i : i + 2]
        recipe = read_recipe(path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(recipe) - set(fields))
    if unknown:
        raise ConfigError(f"recipe key(s) {unknown} are not fields of {cls.__name__}")
    dict_fields = {name for name, f in fields.items() if _is_dict_field(f)}
    argv, cli_dicts = _pop_dict_args(argv, dict_fields)
    parser = HfArgumentParser(cls)
    parser.set_defaults(**{k: v for k, v in recipe.items() if k not in dict_fields})
    for action in parser._actions:  # a value from the recipe satisfies a required flag
        if action.dest in recipe:
            action.required = False
    namespace, rest = parser.parse_known_args(args=argv)
    if rest:
        raise ConfigError(f"unrecognized argument(s) {rest}: not fields of {cls.__name__} (see --help)")
    values = vars(namespace)
    explicit = (set(recipe) | _flags_given(argv, fields) | set(cli_dicts)) & set(fields)
    # a flag given in an abbreviated form (argparse accepts unique prefixes) shows as a changed value
    explicit |= {k for k in fields if k in values and k not in dict_fields and values[k] != parser.get_default(k)}
    kwargs = {k: values[k] for k in explicit if k in values and k not in dict_fields}
    for k in dict_fields & explicit:
        base = recipe.get(k) or {}
        if not isinstance(base, dict):
            raise ConfigError(f"{k}: must be a mapping in the recipe, got {type(base).__name__}")
        kwargs[k] = {**base, **cli_dicts.get(k, {})}
    return cls(**kwargs)


def _is_dict_field(f: dataclasses.Field) -> bool:
    t = str(f.type).replace(" ", "").replace("typing.", "")
    return t.startswith(("dict[", "Dict[", "Mapping[")) or t in ("dict", "Dict", "<class'dict'>")


def _pop_dict_args(argv: list[str], dict_fields: set[str]) -> tuple[list[str], dict[str, dict]]:
    """Take ``--<dict field> JSON`` (or ``--field=JSON``) out of ``argv``; a field given twice
    merges both, in order."""
    out: list[str] = []
    found: dict[str, dict] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        name, value = None, None
        if tok.startswith("--"):
            key, eq, val = tok[2:].partition("=")
            key = key.replace("-", "_")
            if key in dict_fields:
                name = key
                if eq:
                    value = val
                elif i + 1 < len(argv):
                    value = argv[i + 1]
                    i += 1
                else:
                    raise ConfigError(f"--{key}: expects a JSON object, e.g. --{key} '{{\"key\": 1}}'")
        if name is None:
            out.append(tok)
            i += 1
            continue
        found[name] = {**found.get(name, {}), **parse_json_object(value, f"--{name}")}
        i += 1
    return out, found


def parse_json_object(value: str, where: str) -> dict:
    """A command-line JSON object (``'{"key": 1}'``) -> dict; a ConfigError that names ``where`` otherwise."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e.msg} at character {e.pos}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{where}: must be a JSON object ({{...}}), got {type(parsed).__name__}: {value!r}")
    return parsed


def _flags_given(argv: Sequence[str], fields: dict[str, dataclasses.Field]) -> set[str]:
    """Field names given as flags in ``argv`` (``--name``, ``--name=v``, ``--name-with-dashes``,
    ``--no_name`` for a boolean)."""
    given = set()
    for tok in argv:
        if not tok.startswith("--"):
            continue
        key = tok[2:].partition("=")[0].replace("-", "_")
        if key in fields:
            given.add(key)
        elif key.startswith("no_") and key[3:] in fields:
            given.add(key[3:])
    return given


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: recipe file {str(p)!r} does not exist")
    with open(p) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of field: value")
    return data
