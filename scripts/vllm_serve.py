"""A vLLM generation server for rollouts and judges, with a weight-update endpoint:

A thin wrapper over :mod:`rl.commands.vllm_serve` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/vllm_serve.py ...`` works from a checkout.
"""

from rl.commands.vllm_serve import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
