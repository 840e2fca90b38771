"""The methods of ``parsimony compare`` and what each one sets: the method names and groups
(``--methods efficiency``), ``--variant`` ablations and :func:`method_settings`, the
``GRPOConfig`` fields that differ between methods (a preset plus what the comparison sets on top
of it). Running the stages, evaluating and plotting is :mod:`rl.experiments.compare`'s, which
re-exports these names.
"""

from __future__ import annotations

__all__ = ["EFFICIENCY_METHODS", "METHODS", "METHOD_GROUPS", "OPTIONAL_METHODS", "decs_defaults", "decs_options",
           "expand_methods", "method_settings", "parse_variants"]

METHODS = ("grpo", "length_penalty", "thinkprune", "decs", "decs_plain", "decs_no_kappa")
OPTIONAL_METHODS: tuple[str, ...] = ()
# `--methods efficiency`: every length-efficiency preset of the leaderboard (docs/efficiency-methods.md)
EFFICIENCY_METHODS = ("grpo", "length_penalty", "cosine", "soft_overlong", "linear_pass_rate", "grpo_lead", "gfpo", "dler",
                      "l1", "thinkprune", "kimi_length", "sigmoid_length", "laser_d", "shorter_better", "alp", "short_rl",
                      "decs", "adapt_think")  # adapt_think trains from its own both-modes start (compare_starts.py)
METHOD_GROUPS = {"efficiency": EFFICIENCY_METHODS}


def expand_methods(spec: str) -> list[str]:
    """``"efficiency,decs_plain"`` -> the names, a group name expanded in place, duplicates dropped."""
    out: list[str] = []
    for m in (x.strip() for x in spec.split(",")):
        for name in METHOD_GROUPS.get(m, (m,) if m else ()):
            if name not in out:
                out.append(name)
    return out


def decs_defaults() -> dict:
    """The comparison's DECS options, defaulting to the ``decs`` preset (``rl/methods/decs.py``; docs/decs.md,
    "Results", has the study behind them: kappa starts at 0.5, since from 0 (the paper's code) it stays
    near 0 with 8 prompts per step, and DECS then sees almost no easy prompt)."""
    from rl.presets import get_method

    preset = get_method("decs")
    kw = preset.method_kwargs
    return {"decs_beta": kw["decs_beta"], "decs_kappa_init": kw["decs_kappa_init"], "decs_kappa_lr": kw["decs_kappa_lr"],
            "decs_sampler": preset.sampler}


def parse_variants(specs: list[str]) -> dict[str, tuple[str, dict]]:
    """``--variant NAME=METHOD:JSON`` flags -> ``{NAME: (METHOD, method_kwargs)}`` (an ablation: a method
    with some of its settings changed, run and reported under its own name)."""
    from rl.config_loading import parse_json_object

    out: dict[str, tuple[str, dict]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        method, sep2, raw = rest.partition(":")
        if not sep or not sep2 or not name.strip() or not method.strip():
            raise ValueError(f"--variant {spec!r}: expected NAME=METHOD:JSON, e.g. 'hdpo_w05=hdpo:{{\"hdpo_w_tool\": 0.5}}'")
        out[name.strip()] = (method.strip(), parse_json_object(raw, f"--variant {name.strip()}"))
    return out


def method_settings(name: str, steps: int, max_len: int, decs_options: dict | None = None,
                    variants: dict[str, tuple[str, dict]] | None = None) -> dict:
    """GRPOConfig fields that differ between methods (everything else is shared): a method preset
    (``rl/presets.py``) plus what the comparison sets on top of it.

    ``decs_options`` (``decs_beta``, ``decs_kappa_init``, ``decs_kappa_lr``, ``decs_sampler``) tune the
    DECS methods; unset keys take the preset's values (:func:`decs_defaults`). ``variants``
    (:func:`parse_variants`): a name that is a variant runs its method with its JSON's ``GRPOConfig``
    fields set (e.g. ``async_rollouts``) and its other keys merged over the method's ``method_kwargs``."""
    if variants and name in variants:
        method, kwargs = variants[name]
        if method in variants:
            raise ValueError(f"variant {name!r}: its method {method!r} is itself a variant")
        base = method_settings(method, steps, max_len, decs_options)
        import dataclasses

        from rl.config import GRPOConfig

        fields = {f.name for f in dataclasses.fields(GRPOConfig)}  # trainer settings, e.g. async_rollouts
        trainer = {k: v for k, v in kwargs.items() if k in fields}
        own = {k: v for k, v in kwargs.items() if k not in fields}
        return {**base, **trainer, "method_kwargs": {**base.get("method_kwargs", {}), **own}}
    if name == "grpo":
        return {"method": "grpo"}
    if name == "length_penalty":  # the preset: alpha 0.5, L_ref = max_completion_length
        return {"method": "length_penalty"}
    if name == "thinkprune":
        # ThinkPrune's iterative pruning: the cap shrinks in three stages over training
        stages = [[0, max_len], [steps // 3, (max_len * 3) // 4], [(2 * steps) // 3, max_len // 2]]
        caps = [stages[0]] + [s for prev, s in zip(stages, stages[1:]) if s[0] > prev[0]]
        return {"method": "thinkprune", "method_kwargs": {"thinkprune_schedule": caps}}
    if name == "l1":  # the embedded prompts state no target: L1-Exact's deviation reward toward half the budget
        return {"method": "l1", "method_kwargs": {"length_target": max(1, max_len // 2)}}
    if name == "dler":  # DLER's truncation budget: half the completion budget (ThinkPrune's final cap)
        return {"method": "dler", "method_kwargs": {"dler_length_cap": max(1, max_len // 2)}}
    # token-denominated settings, scaled from the paper's completion budget to this one
    if name == "short_rl":  # Short-RL's math runs: 100 tokens of tolerance in a 4096-token budget
        return {"method": "short_rl", "method_kwargs": {"short_rl_length_tolerance": max(1, round(max_len * 100 / 4096))}}
    if name == "shorter_better":  # ShorterBetter: beta 0.001 per token of a 6000-token budget (6 over the budget)
        return {"method": "shorter_better", "method_kwargs": {"sb_beta": 6.0 / max_len}}
    if name not in ("decs", "decs_plain", "decs_no_kappa"):
        from rl.presets import get_method

        try:  # any other registered preset runs as is (e.g. hdpo, coupled_small, coupled_large)
            get_method(name)
        except Exception:
            raise ValueError(f"unknown method {name!r}; choose from {METHODS + OPTIONAL_METHODS} "
                             "or any preset of `parsimony methods`") from None
        return {"method": name}
    opts = {**decs_defaults(), **(decs_options or {})}
    decs = {"method": "decs", "method_kwargs": {k: opts[k] for k in ("decs_beta", "decs_kappa_init", "decs_kappa_lr")}}
    if name == "decs":  # the kappa curriculum (decs_kappa) or, with decs_sampler plain, every easy group kept
        return {**decs, "sampler": opts["decs_sampler"]}
    if name == "decs_plain":  # no curriculum: every group of the round enters the batch (easy ones included)
        return {**decs, "sampler": "plain"}
    return {**decs, "sampler": "dynamic"}  # decs_no_kappa: dynamic sampling only: easy groups never enter the batch


def decs_options(args) -> dict:
    """The ``--decs-*`` flags of ``parsimony compare`` as :func:`method_settings`' ``decs_options``."""
    return {"decs_beta": args.decs_beta, "decs_kappa_init": args.decs_kappa_init, "decs_kappa_lr": args.decs_kappa_lr,
            "decs_sampler": args.decs_sampler}
