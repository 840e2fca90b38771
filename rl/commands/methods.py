"""``parsimony methods``: every registered method (preset) and every registered piece, by kind.

    parsimony methods            # human-readable
    parsimony methods --json     # machine-readable: {"methods": {...}, "rewards": {...}, ...}

Built-in methods and the ``parsimony.methods`` entry points are loaded first
(:func:`rl.presets.load_methods`); a plugin that failed to load is listed with its error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _short(v: Any, limit: int = 40) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _module_of(obj: Any) -> str:
    from rewards.registry import RewardEntry

    if isinstance(obj, RewardEntry):
        return obj.module
    return getattr(obj, "__module__", "") or ""


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
    lines = ["methods (method: <name>; fields set explicitly win, method_kwargs merge over the defaults):"]
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
        if m["method_kwargs"]:
            lines.append("      method_kwargs: " + ", ".join(f"{k}={_short(v)}" for k, v in m["method_kwargs"].items()))
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="parsimony methods", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args(argv)
    info = collect()
    print(json.dumps(info, indent=1, default=str) if args.json else render(info))
    return 0
