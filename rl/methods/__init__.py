"""One front door per method. Each module registers its pieces and its preset, and its docstring
names every file of the method that lives in another layer:

| method | front door | pieces in other layers |
|---|---|---|
| GRPO (baseline) | :mod:`rl.methods.grpo` | engine pieces only |
| DECS | :mod:`rl.methods.decs` | ``rewards/decs/``, ``curriculum/decs_kappa.py`` |
| HDPO | :mod:`rl.methods.hdpo` | ``rewards/tools.py``, ``rollout/tools.py``, ``rollout/sandbox.py`` |
| M-GRPO | :mod:`rl.methods.mgrpo` (+ :mod:`rl.methods.mgrpo_two_process`) | ``rewards/mgrpo.py``, ``rollout/mgrpo/``, ``curriculum/tasks/planner.py`` |
| DeReason | :mod:`rl.methods.dereason` | ``curriculum/dereason/``, ``rl/methods/dereason_pipeline.py`` |
| length efficiency | :mod:`rl.methods.length` | ``rewards/length/`` |
| AdaptThink | :mod:`rl.methods.adapt_think` (+ :mod:`rl.methods.adapt_think_ref`) | ``rewards/adapt_think.py``, ``rollout/prefixes.py``, ``curriculum/tasks/adapt.py`` |

The engine never imports these modules: :func:`rl.presets.load_methods` imports them by name
(:data:`rl.presets.BUILTIN_METHOD_MODULES`), then the ``parsimony.methods`` entry points.

``from rl.methods import register_method, MethodPreset, load_methods`` (the path before this
layout) keeps working: the registry itself lives in :mod:`rl.presets`.
"""

from rl.presets import (  # noqa: F401  the public API at its documented path
    BUILTIN_METHOD_MODULES,
    ENTRY_POINT_GROUP,
    METHODS,
    PLUGIN_ERRORS,
    MethodPreset,
    apply_method,
    get_method,
    load_methods,
    register_method,
    registries,
    validate_method_settings,
)
