"""``parsimony methods``: every registered method (preset) with its settings, and every registered
piece, by kind.

    parsimony methods            # human-readable
    parsimony methods --json     # machine-readable: {"methods": {...}, "rewards": {...}, ...}

Built-in methods and the ``parsimony.methods`` entry points are loaded first
(:func:`rl.presets.load_methods`); a plugin that failed to load is listed with its error. A method's
settings table (key, default, help) is read from the settings classes its pieces declare
(``rewards.settings.MethodSettings``); a piece that declares a plain mapping shows its keys and defaults.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any


def _short(v: Any, limit: int = 40) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _module_of(obj: Any) -> str:
    from rewards.registry import RewardEntry

    if isinstance(obj, RewardEntry):
        return obj.module
    obj = getattr(obj, "fn", obj)  # a registry entry (rl.pieces.RegisteredPiece): where its function lives
    return getattr(obj, "__module__", "") or ""


def method_settings(preset: Any) -> list[dict[str, Any]]:
    """The settings of a method: one row per ``method_kwargs`` key its pieces (and the preset) declare,
    with ``piece`` (who reads it), ``default`` (the preset's value where it sets one), ``piece_default``,
    ``accepts`` and ``help``."""
    from rewards.settings import settings_rows
    from rl.presets import active_pieces, piece_settings_rows

    own = types.SimpleNamespace(**{"loss_type": "clipped", **preset.config_fields()})
    groups = [(f"{kind} {name!r}", piece_settings_rows(piece)) for kind, name, piece in active_pieces(own)]
    groups.append((f"method {preset.name!r}", settings_rows(preset.settings)))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for owner, piece_rows in groups:
        for r in piece_rows:
            if r["key"] in seen:
                continue
            seen.add(r["key"])
            default = preset.method_kwargs.get(r["key"], r["default"])
            rows.append({"key": r["key"], "piece": owner, "default": default, "piece_default": r["default"],
                         "accepts": r["accepts"], "help": r["help"]})
    return rows


def collect() -> dict[str, Any]:
    from rl.presets import METHODS, PLUGIN_ERRORS, load_methods, piece_settings, registries

    load_methods()
    regs = registries()
    out: dict[str, Any] = {
        "methods": {
            name: {
                "reward_funcs": list(p.reward_funcs),
                "advantage_estimator": p.advantage_estimator,
                "loss_composition": p.loss_composition,
                "sampler": p.sampler,
                "fields": dict(p.fields),
                "method_kwargs": dict(p.method_kwargs),
                "settings": method_settings(p),
                "description": p.description,
                "module": p.source,
            }
            for name, p in sorted(METHODS.items())
        }
    }
    for kind, reg in regs.items():
        out[kind] = {
            name: {"module": _module_of(piece), "settings": piece_settings(piece)} for name, piece in sorted(reg.items())
        }
    if "engines" not in out:
        out["engines"] = {}
    out["plugin_errors"] = dict(PLUGIN_ERRORS)
    return out


def render(info: dict[str, Any]) -> str:
    lines = ["methods (method: <name>; fields set explicitly win, method_kwargs merge over the defaults; "
             "* = the preset's default, not the piece's):"]
    for name, m in info["methods"].items():
        lines.append(f"  {name}  [{m['module']}]")
        if m["description"]:
            lines.append(f"      {m['description']}")
        lines.append(
            f"      reward_funcs {m['reward_funcs']} | advantage_estimator {m['advantage_estimator']} | "
            f"loss_composition {m['loss_composition']} | sampler {m['sampler']}"
        )
        for k, v in m["fields"].items():
            lines.append(f"      {k}: {_short(v)}")
        lines.extend(_settings_lines(m["settings"]))
    for kind in ("rewards", "advantage estimators", "losses", "compositions", "samplers", "engines"):
        lines.append("")
        lines.append(f"{kind}:")
        reg = info.get(kind) or {}
        if not reg:
            lines.append("  (none registered)")
        for name, p in reg.items():
            keys = ", ".join(p["settings"]) if p["settings"] else ""
            lines.append(f"  {name}  [{p['module']}]" + (f"  method_kwargs: {keys}" if keys else ""))
    if info.get("plugin_errors"):
        lines.append("")
        lines.append("plugins that failed to load:")
        for name, err in info["plugin_errors"].items():
            lines.append(f"  {name}: {err}")
    return "\n".join(lines)


def _settings_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The settings table of a method, by piece: ``key  default  help (accepts)``; ``*`` marks a default
    that the preset sets (the piece's own default is in the JSON output)."""
    from rewards.settings import render_rows

    if not rows:
        return ["      method_kwargs: none"]
    table = render_rows([dict(r, mark=r["default"] != r["piece_default"]) for r in rows], indent="        ")
    out, owner = [], None
    for r, line in zip(rows, table):
        if r["piece"] != owner:
            owner = r["piece"]
            out.append(f"      method_kwargs of {owner}:")
        out.append(line)
    return out


DOCS_BLOCK_BEGIN = "<!-- generated by `parsimony methods`: begin -->\n```\n"
DOCS_BLOCK_END = "```\n"


def update_docs(path: Path, text: str) -> None:
    """Replace the generated block of ``path`` (between :data:`DOCS_BLOCK_BEGIN` and the closing fence)."""
    doc = path.read_text()
    start = doc.find(DOCS_BLOCK_BEGIN)
    if start < 0:
        raise FileNotFoundError(f"{path}: no generated block (a line {DOCS_BLOCK_BEGIN.splitlines()[0]!r})")
    body = start + len(DOCS_BLOCK_BEGIN)
    end = doc.find(DOCS_BLOCK_END, body)
    path.write_text(doc[:body] + text + doc[end:])


def main(argv=None) -> int:
    from rl.cli_flags import FlagParser

    p = FlagParser(prog="parsimony methods", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--update-docs", metavar="FILE", help="write the listing into FILE's generated block "
                   "(docs/extending.md) instead of printing it")
    args = p.parse_args(argv)
    info = collect()
    text = json.dumps(info, indent=1, default=str) if args.json else render(info)
    if args.update_docs:
        update_docs(Path(args.update_docs), text + "\n")
        print(f"updated {args.update_docs}")
        return 0
    print(text)
    return 0
