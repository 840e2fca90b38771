"""``parsimony`` console entry point.

Each subcommand is a module with ``main(argv) -> int``: a command of :mod:`rl.commands`, or a proof
harness of :mod:`rl.experiments`; this module only dispatches. ``scripts/<name>.py`` wrap the same modules, so ``accelerate launch scripts/train_grpo.py``
works the same way from a checkout, and a plain wheel install has every subcommand.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "make-tiny-model": ("rl.commands.make_tiny_model", "build the embedded tiny Qwen2 model + tokenizer"),
    "import-model": ("rl.commands.import_model", "a real pretrained model (SmolLM2-135M-Instruct from a package, or a GGUF file) as a transformers folder"),
    "sft": ("rl.commands.train_sft", "supervised fine-tuning (full or LoRA)"),
    "train": ("rl.commands.train_grpo", "GRPO training (and the methods that plug into it)"),
    "eval": ("rl.commands.evaluate", "evaluate checkpoints on math benchmarks or a task split"),
    "quickstart": ("rl.experiments.quickstart", "tiny model -> SFT -> GRPO -> before/after report, on CPU"),
    "compare": ("rl.experiments.compare", "accuracy vs tokens: GRPO, length baselines and DECS on the same budget"),
    "leaderboard": ("rl.commands.leaderboard", "regenerate docs/leaderboard.md (tables, Pareto plots) from `compare` summary.json files"),
    "compare-agents": ("rl.experiments.compare_agents", "M-GRPO's proof: single agent, frozen executor, M-GRPO shared / separate at one budget"),
    "compare-trl": ("rl.experiments.compare_trl", "learning parity: the same GRPO run in TRL and in parsimony, evaluated alike"),
    "methods": ("rl.commands.methods", "list the registered methods (presets) and pieces: rewards, advantages, losses, ..."),
    "vllm-serve": ("rl.commands.vllm_serve", "vLLM generation/judge server with a weight-update endpoint"),
    "score-difficulty": ("rl.commands.score_difficulty", "DeReason: score reasoning intensity 1-5 (judge, pass_rate, column), split SFT/RL"),
    "pipeline": ("rl.methods.dereason_pipeline", "DeReason, resumable: score -> split -> SFT (easy) -> GRPO (hard) -> eval, from one recipe"),
    "adapt-think-ref": ("rl.methods.adapt_think_ref", "AdaptThink: the start model's accuracy per training prompt (R_ref), sampled K times"),
    "compare-schedules": ("rl.experiments.compare_schedules", "DeReason vs SFT-only, RL-only, SFT->RL and a random split at equal tokens"),
}

USAGE = ("usage: parsimony <command> [options]   (parsimony <command> --help for its options; parsimony --version)\n\n"
         "commands:\n")


def print_help() -> None:
    width = max(len(k) for k in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    print(USAGE + "\n".join(lines))


def version() -> str:
    """The installed distribution's version, else the checkout's ``pyproject.toml`` one."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("parsimony-rl")
    except PackageNotFoundError:
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        return found.group(1) if found else "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help()
        return 0
    if argv[0] in ("--version", "-V", "version"):
        print(f"parsimony {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        from rl.cli_flags import did_you_mean

        hint = did_you_mean(name, SUBCOMMANDS, cutoff=0.6)
        print(f"error: parsimony: unknown command {name!r}{hint}; `parsimony --help` lists the commands", file=sys.stderr)
        return 2
    from rl.malloc import tune_malloc

    tune_malloc()  # before any model loads: glibc's thresholds for CPU decoding and training (rl/malloc.py)
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sys.argv = [f"parsimony {name}"] + rest
    try:
        run_cli(module.main, rest)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else (print(e.code, file=sys.stderr) or 1)
    return 0


def run_cli(fn, argv=None) -> None:
    """Run a script's ``fn(argv)``; user errors become one clear line and exit code 2."""
    from curriculum.data import DatasetError
    from rl.errors import CheckpointError, ConfigError
    from rl.model_import import ModelImportError
    from rl.modeling import ModelLoadError
    from rollout.mgrpo.store import StoreError
    from rollout.sandbox import SandboxUnavailableError
    from rollout.vllm import VLLMUnavailable
    from rollout.vllm_server import RolloutServerError

    try:
        code = fn(argv)
    except (ConfigError, CheckpointError, DatasetError, ModelLoadError, FileNotFoundError, VLLMUnavailable, RolloutServerError,
            StoreError, ModelImportError, SandboxUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
