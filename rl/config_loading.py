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

from rl.cli_flags import normalize_argv, one_line_errors, unknown_flags_message
from rl.errors import ConfigError

C = TypeVar("C")  # a config dataclass (rl.config.TrainConfig and its subclasses)


def load_config(cls: type[C], argv: Sequence[str] | None = None,
                help_flags: Sequence[tuple[str, str]] = ()) -> C:
    """Parse ``--config recipe.yaml`` (or ``--config=recipe.yaml``) plus ``--key value`` overrides into ``cls``.

    The config is built from the *explicit* fields only (the recipe's keys and the flags given),
    so a method preset fills in exactly the rest. Dict fields take JSON on the command line,
    merged key by key over the recipe's value. TRL's names (``use_vllm``, ``loss_type: dapo``, ...)
    are read into ours (:mod:`rl.trl_names`), in the recipe and on the command line. Flags follow
    :mod:`rl.cli_flags` (both spellings, lists with spaces or commas, no abbreviations, negative
    numbers as values). ``help_flags``: ``(flag, help)`` of the command's own flags, shown by ``--help``."""
    import sys

    from rl.trl_names import translate_trl_names

    argv = list(sys.argv[1:] if argv is None else argv)
    argv, path = _pop_config_flag(argv)
    recipe: dict[str, Any] = read_recipe(path) if path is not None else {}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    argv, foreign = _pop_foreign_flags(argv, fields)  # TRL's names given as flags
    # a key given on the command line replaces the recipe's before either is read (TRL: max_steps wins over epochs)
    on_cli = {k for k in _flags_given(argv, fields) if not _is_dict_field(fields[k])} | set(foreign)  # dicts merge
    on_cli |= {"num_train_epochs"} if "max_steps" in on_cli else set()
    recipe = {k: v for k, v in recipe.items() if k not in on_cli}
    recipe = {**translate_trl_names(cls, recipe), **translate_trl_names(cls, foreign, context=recipe)}
    unknown = sorted(set(recipe) - set(fields))
    if unknown:
        where = f"recipe {path}" if path else "the command line"
        raise ConfigError(f"{where}: key(s) {', '.join(_with_hint(k, fields) for k in unknown)} are not settings of "
                          f"{cls.__name__} (`parsimony {'sft' if 'max_length' in fields else 'train'} --help` lists them; "
                          f"TRL's names: docs/coming-from-trl.md)")
    dict_fields = {name for name, f in fields.items() if _is_dict_field(f)}
    argv, cli_dicts = _pop_dict_args(argv, dict_fields)
    parser = _parser(cls, help_flags)
    argv = normalize_argv(parser, argv)
    for action in parser._actions:  # the recipe's values are not parsed as flags (checked by the config itself)
        action.required = False
    namespace, rest = parser.parse_known_args(args=argv)
    if rest:
        raise ConfigError(unknown_flags_message(rest, [o for o in parser._option_string_actions if o.startswith("--")])
                          + f": not settings of {cls.__name__} (see --help)")
    values = vars(namespace)
    flags = _flags_given(argv, fields) - dict_fields
    explicit = (set(recipe) | flags | set(cli_dicts)) & set(fields)
    # the recipe's values as written (typed by the config's own checks), the flags' as parsed over them
    kwargs = {k: v for k, v in recipe.items() if k in fields and k not in dict_fields}
    kwargs.update({k: values[k] for k in flags if k in values})
    for k in dict_fields & explicit:
        base = recipe.get(k) or {}
        if not isinstance(base, dict):
            raise ConfigError(f"{k}: must be a mapping in the recipe, got {type(base).__name__}")
        kwargs[k] = {**base, **cli_dicts.get(k, {})}
    cfg = cls(**kwargs)
    if "model" in fields and not getattr(cfg, "model", "x"):
        raise ConfigError("model: is required (a local directory or a hub id): set it in the recipe or pass --model")
    return cfg


def _parser(cls: type, help_flags: Sequence[tuple[str, str]]):
    """``HfArgumentParser(cls)`` with the one flag syntax (rl/cli_flags.py); ``--config`` and the
    command's own flags (taken out of argv before parsing) are listed by ``--help``."""
    from transformers import HfArgumentParser

    parser = one_line_errors(HfArgumentParser(cls, allow_abbrev=False))
    parser.add_argument("--config", metavar="RECIPE.yaml",
                        help="A YAML recipe of field: value (also --config=PATH); flags override its values.")
    for flag, text in help_flags:
        parser.add_argument(flag, help=text, nargs="?", metavar="VALUE")
    return parser


def _pop_config_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """``--config PATH`` / ``--config=PATH`` taken out of ``argv`` (the last one wins)."""
    out: list[str] = []
    path = None
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError("--config: expects a path to a YAML recipe")
            path, i = argv[i + 1], i + 2
            continue
        if tok.startswith("--config="):
            path = tok.partition("=")[2]
            if not path:
                raise ConfigError("--config: expects a path to a YAML recipe")
            i += 1
            continue
        out.append(tok)
        i += 1
    return out, path


def _pop_foreign_flags(argv: list[str], fields: dict[str, dataclasses.Field]) -> tuple[list[str], dict[str, Any]]:
    """TRL's names given as flags (``--use_vllm true``, ``--vllm-mode server``, ``--loss_type dapo``) ->
    ``{name: value}``, the value read as YAML (``true`` -> True, ``1e-5`` -> 1e-05); a flag with no value
    is ``true``."""
    from rl.trl_names import NOT_OURS, RENAMED, TRL_LOSS_TYPES, TRL_ONLY_LOSSES

    foreign = set(RENAMED) | set(NOT_OURS) | {"use_vllm", "vllm_mode", "vllm_server_base_url", "vllm_server_host",
                                               "vllm_server_port", "vllm_importance_sampling_correction", "dtype",
                                               "torch_dtype"}
    foreign -= set(fields)
    out: list[str] = []
    found: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        key, eq, val = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
        key = key.replace("-", "_")
        trl_value = key == "loss_type" and (val if eq else (argv[i + 1] if i + 1 < len(argv) else "")) in (
            *TRL_LOSS_TYPES, *TRL_ONLY_LOSSES)  # TRL's loss_type (ours names a registered loss)
        if key not in foreign and not trl_value:
            out.append(tok)
            i += 1
            continue
        if not eq:
            if i + 1 < len(argv) and (not argv[i + 1].startswith("--")):
                val, i = argv[i + 1], i + 1
            else:
                val = "true"
        found[key] = _yaml_value(val)
        i += 1
    return out, found


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _with_hint(key: str, fields: dict[str, Any]) -> str:
    from rl.cli_flags import did_you_mean

    return repr(key) + did_you_mean(key, fields)


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
    """A YAML recipe -> its mapping; a missing file, malformed YAML (named by line and column) or a
    recipe that is not a mapping is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: recipe file {str(p)!r} does not exist")
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"--config: {p}:{where}: not valid YAML ({what})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--config: {p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of field: value, got a YAML {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"--config: {p}: key(s) {bad} are not names")
    return data
