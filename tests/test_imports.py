"""The import graph of the library (rl/, rewards/, curriculum/, rollout/), read with ``ast``:
top-level and function-level imports (``if TYPE_CHECKING:`` ones too), and
``importlib.import_module("literal")`` calls.

- ``rewards/`` and ``rollout/`` never import ``rl``; nothing imports ``scripts``;
- no registry module imports a method module, directly or through other modules;
- no module of ``rl/`` outside ``rl/methods/`` and ``rl/experiments/`` imports a method's front door;
- no import cycle among the four packages, and none among the modules (inside packages too).

``import a.b.c`` loads ``a`` and ``a.b`` first, so it is an edge to them too, except where the importer
lives inside them: Python initialises a package before its children, so a child's edge to its own
ancestor package is no import of that package's code (only ``from a.b import name`` of a name that is
not a submodule is).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rl", "rewards", "curriculum", "rollout")
# the shared registries: a method registers itself into them, they never import it
REGISTRIES = ("rl.advantages", "rl.losses", "curriculum.samplers", "rewards", "rewards.registry", "rl.engines")
# the built-in method modules (plus every module that registers a preset, found below)
METHOD_MODULES = {"rl.methods.decs", "rewards.decs.reward", "rewards.length.penalties", "curriculum.decs_kappa"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, node.lineno))
            for a in node.names:  # `from pkg import submodule`
                found.append((f"{mod}.{a.name}", node.lineno))
                if a.name != "*":
                    found.append((f"{mod}:{a.name}", node.lineno))  # a name taken from `mod` itself
        elif isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if fname == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    found.append((node.args[0].value, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    """module -> library modules it imports (only names that are modules of the four packages).

    ``import a.b.c`` loads a, a.b and a.b.c; a prefix that is an ancestor package of the importer is
    left out (it is initialised before the importer in any case), unless the importer takes a name
    defined in that package itself (``from a.b import f``, f not a submodule)."""
    mods = modules()
    g: dict[str, set[str]] = {}
    for name, path in mods.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
        if path.name == "__init__.py":
            ancestors.add(name)
        deps = set()
        for mod, _ in imports_of(name, path):
            if ":" in mod:  # `from pkg import name`: an edge to pkg when name is not a submodule
                pkg, attr = mod.split(":")
                if pkg in mods and f"{pkg}.{attr}" not in mods and pkg != name:
                    deps.add(pkg)
                continue
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                cand = ".".join(parts[:i])
                if cand in mods and cand != name and cand not in ancestors:
                    deps.add(cand)
        g[name] = deps
    return g


def method_modules() -> set[str]:
    out = set(METHOD_MODULES)
    for name, path in modules().items():
        if name != "rl.presets" and "register_method(" in path.read_text():
            out.add(name)
    return out


def reachable(g: dict[str, set[str]], start: str) -> dict[str, str]:
    """module -> the module it was reached from, for everything ``start`` imports transitively."""
    seen: dict[str, str] = {}
    stack = [start]
    while stack:
        m = stack.pop()
        for d in g.get(m, ()):
            if d not in seen and d != start:
                seen[d] = m
                stack.append(d)
    return seen


def chain(seen: dict[str, str], start: str, end: str) -> str:
    path = [end]
    while path[-1] != start:
        path.append(seen[path[-1]])
    return " -> ".join(reversed(path))


def test_rewards_and_rollout_never_import_rl():
    bad = []
    for name, path in modules().items():
        if name.split(".")[0] not in ("rewards", "rollout"):
            continue
        for mod, line in imports_of(name, path):
            if mod == "rl" or mod.startswith("rl."):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {mod}")
    assert not bad, "rewards/ and rollout/ must not import rl:\n" + "\n".join(bad)


def test_nothing_imports_scripts():
    bad = []
    for name, path in modules().items():
        for mod, line in imports_of(name, path):
            if mod == "scripts" or mod.startswith("scripts."):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_registries_import_no_method():
    g = graph()
    methods = method_modules()
    assert {"rl.methods.decs", "rewards.decs.reward", "rewards.length.penalties", "curriculum.decs_kappa"} <= methods
    bad = []
    for reg in REGISTRIES:
        if reg not in g:
            continue
        seen = reachable(g, reg)
        for m in sorted(methods & set(seen)):
            bad.append(chain(seen, reg, m))
    assert not bad, "registry modules must not import a method (load it in rl.presets.load_methods):\n" + "\n".join(bad)


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_the_modules():
    g = graph()
    circles = strongly_connected(g)
    assert not circles, "import circles (each a set of modules that import each other):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_the_cycle_finder_finds_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(g) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_engine_never_imports_a_method():
    """No module of rl/ outside rl/methods/ (the front doors) and rl/experiments/ (the proof harnesses,
    which drive named methods by design) imports a method's front door, directly or through others.
    The engine reaches methods only through rl.presets.load_methods (by name, at run time)."""
    g = graph()
    front_doors = {m for m in g if m.startswith("rl.methods.") or m == "rl.methods"}
    assert {"rl.methods.decs", "rl.methods.hdpo", "rl.methods.mgrpo", "rl.methods.dereason"} <= front_doors
    bad = []
    for mod in sorted(g):
        if not mod.startswith("rl.") or mod.startswith(("rl.methods", "rl.experiments")):
            continue
        seen = reachable(g, mod)
        bad += [chain(seen, mod, m) for m in sorted(front_doors & set(seen))]
    assert not bad, "\n".join(bad)


def test_the_trainer_core_imports_no_method():
    """The config, the loop and the CLI dispatcher reach the methods only through rl.presets.load_methods
    (by module name at run time), never by an import: a new method edits none of them."""
    from rl.presets import BUILTIN_METHOD_MODULES

    g = graph()
    methods = method_modules()
    assert set(BUILTIN_METHOD_MODULES) <= set(g)
    core = ("rl.config", "rl.presets", "rl.grpo_trainer", "rl.trainer_base", "rl.rewarding", "rl.batch", "rl.commands.cli",
            "rl.training_run", "rl.sft_trainer")
    bad = []
    for mod in core:
        seen = reachable(g, mod)
        bad += [chain(seen, mod, m) for m in sorted(methods & set(seen))]
    assert not bad, "\n".join(bad)


def test_no_cycle_among_the_packages():
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    where: dict[tuple[str, str], str] = {}
    for m, deps in graph().items():
        for d in deps:
            a, b = m.split(".")[0], d.split(".")[0]
            if a != b:
                edges[a].add(b)
                where.setdefault((a, b), f"{m} -> {d}")
    # depth-first search for a cycle in the package graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(p: str) -> list[str] | None:
        state[p] = 1
        stack.append(p)
        for q in sorted(edges[p]):
            if state.get(q) == 1:
                return stack[stack.index(q):] + [q]
            if q not in state:
                found = visit(q)
                if found:
                    return found
        stack.pop()
        state[p] = 2
        return None

    for p in PACKAGES:
        if p not in state:
            cycle = visit(p)
            assert cycle is None, "package import cycle: " + " -> ".join(cycle) + " (" + "; ".join(
                where[(a, b)] for a, b in zip(cycle, cycle[1:])) + ")"


def test_no_private_name_crosses_modules():
    """``from m import _x`` between library modules means ``_x`` is part of m's interface: name it so."""
    bad = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {a.name} from {node.module}")
    assert not bad, "\n".join(bad)


def test_the_public_import_paths_of_before_the_layout_still_work():
    """Users' code and plugins written before the layout of docs/architecture.md keep importing."""
    import importlib

    paths = {
        "rl.config": ["GRPOConfig", "SFTConfig", "TrainConfig", "ConfigError", "load_config", "OPTIMIZERS"],
        "rl.grpo_trainer": ["GRPOTrainer"],
        "rl.sft_trainer": ["SFTTrainer"],
        "rl.methods": ["register_method", "MethodPreset", "load_methods", "get_method", "METHODS"],
        "rl.advantages": ["register_advantage", "get_advantage", "ADVANTAGES"],
        "rl.losses": ["register_loss", "register_composition", "LossTerm", "LOSSES", "COMPOSITIONS"],
        "rl.engines": ["register_engine", "ENGINES"],
        "curriculum.samplers": ["register_assembler", "BatchAssembler"],
        "rewards": ["register_reward", "REWARDS", "get_reward_func"],
        "rewards.decs": ["DECSRedundancyReward"],
        "rewards.length": ["LengthPenaltyReward", "CosineLengthReward"],
    }
    missing = [f"{m}.{n}" for m, names in paths.items() for n in names if not hasattr(importlib.import_module(m), n)]
    assert not missing, missing
    from rl.methods import register_method
    from rl.presets import register_method as canonical

    assert register_method is canonical
