"""Rollout engines as a registry: a name in ``GRPOConfig.engine`` -> a builder.

``rollout/`` holds the engines themselves and never reads a ``GRPOConfig``; this module is where
a config becomes an engine. A builder is ``fn(args, model, tokenizer, accelerator) ->
RolloutEngine`` and returns an engine that already generates from ``model``'s weights::

    from rl.engines import register_engine

    @register_engine("my-engine")
    def build_my_engine(args, model, tokenizer, accelerator):
        return MyEngine(model, tokenizer)          # generate(), sync_weights(model)

Then ``engine: my-engine`` in a recipe selects it (``GRPOConfig`` validates the name against
this registry). The trainer calls ``engine.sync_weights(model)`` after every optimizer step and
after a checkpoint is loaded, so an engine that holds its own copy of the weights stays on the
policy.

Built in: ``hf`` (``rollout.hf.HFEngine``, generates with the trainer's own model) and ``vllm``
(colocated ``vllm.LLM`` per process, or a ``parsimony vllm-serve`` server with
``rollout_mode: server``).
"""

from __future__ import annotations

# torch and the engines are imported inside the builders: GRPOConfig validates ``engine`` against
# this registry, and a ``--dry_run`` must stay cheap

from pathlib import Path
from typing import Any, Callable

from rl.errors import ConfigError
from rollout.types import RolloutEngine

EngineBuilder = Callable[[Any, Any, Any, Any], RolloutEngine]

ENGINES: dict[str, EngineBuilder] = {}

__all__ = [
    "ENGINES",
    "EngineBuilder",
    "colocated_launch_kwargs",
    "default_max_model_len",
    "get_engine",
    "make_rollout_engine",
    "off_policy_engine",
    "register_engine",
]


def register_engine(name: str) -> Callable[[EngineBuilder], EngineBuilder]:
    """Decorator: register ``fn(args: GRPOConfig, model, tokenizer, accelerator) -> RolloutEngine``
    under ``name`` (what ``GRPOConfig.engine`` names)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an engine name must be a non-empty string, got {name!r}")

    def deco(fn: EngineBuilder) -> EngineBuilder:
        if name in ENGINES:
            raise ValueError(f"engine {name!r} is already registered")
        ENGINES[name] = fn
        return fn

    return deco


def get_engine(name: str) -> EngineBuilder:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; registered: {sorted(ENGINES)}") from None


def make_rollout_engine(args: Any, model: Any, tokenizer: Any, accelerator: Any) -> RolloutEngine:
    """The engine ``args.engine`` names, built and already generating from ``model``.

    ``async_rollouts``: wrapped in ``rollout.off_policy.OffPolicyEngine`` (one request in flight
    beside training); ``hf`` then generates in a child process from its own copy of the weights,
    since the in-process HF engine samples from the very weights the update changes."""
    if not getattr(args, "async_rollouts", False):
        return get_engine(args.engine)(args, model, tokenizer, accelerator)
    from rollout.off_policy import OffPolicyEngine

    if args.engine == "hf":
        import torch

        from rollout.hf_process import HFProcessEngine

        base = HFProcessEngine(model, tokenizer, decode=getattr(args, "hf_decode", "generate"),
                               threads=torch.get_num_threads(), unwrap=accelerator.unwrap_model)
    else:
        base = get_engine(args.engine)(args, model, tokenizer, accelerator)
    return OffPolicyEngine(base)


def off_policy_engine(engine: RolloutEngine) -> RolloutEngine:
    """``async_rollouts`` with an engine the caller built: wrapped, and never closed by the trainer. An
    HF engine on the live model is refused (the update would change the weights under the sampler)."""
    from rollout.hf import HFEngine
    from rollout.off_policy import OffPolicyEngine

    if isinstance(engine, OffPolicyEngine):
        return engine
    if isinstance(engine, HFEngine):
        raise ValueError("async_rollouts: an HFEngine generates from the live model; pass no engine (the trainer "
                         "starts an HF engine in a child process) or a vLLM engine")
    return OffPolicyEngine(engine, close_engine=False)


# --- helpers for the vLLM builder -----------------------------------------------------------------


def default_max_model_len(model: Any, args: Any) -> int:
    """Prompt + completion budget, capped at the model's own context (vLLM refuses more)."""
    from rollout.weights import unwrap

    want = args.max_prompt_length + args.max_completion_length
    if getattr(args, "environment", None) is not None:  # an episode's completion: turns + observations
        want = args.max_prompt_length + max(args.max_completion_length, getattr(args, "max_episode_tokens", 0) or 0)
    limit = getattr(unwrap(model).config, "max_position_embeddings", None)
    return min(want, int(limit)) if limit else want


def colocated_launch_kwargs(args: Any, num_processes: int, cuda: bool | None = None) -> dict[str, Any]:
    """Extra ``vllm.LLM`` arguments for one colocated engine per training process.

    Under a multi-GPU launch every process must build its engine on its own GPU, inside the
    launcher's process group: vLLM's ``external_launcher`` backend does that (it reads RANK /
    LOCAL_RANK like torchrun). Tensor parallelism would make several training processes share one
    engine and therefore one set of prompts, which this trainer does not do: use server mode.
    """
    import torch

    if num_processes > 1 and args.vllm_tensor_parallel_size > 1:
        raise ConfigError(
            "vllm_tensor_parallel_size: colocated engines run one per training process (tensor parallel 1); "
            "for tensor parallelism use rollout_mode: server with `parsimony vllm-serve --tensor-parallel-size N`"
        )
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda and num_processes > 1:
        return {"distributed_executor_backend": "external_launcher"}
    return {}


# --- built-in engines -------------------------------------------------------------------------------


@register_engine("hf")
def build_hf_engine(args: Any, model: Any, tokenizer: Any, accelerator: Any) -> RolloutEngine:
    """``transformers`` ``generate`` on the trainer's own model (nothing to sync)."""
    from rollout.hf import HFEngine

    return HFEngine(model, tokenizer, max_batch_size=0, unwrap=accelerator.unwrap_model,
                    decode=getattr(args, "hf_decode", "generate"))


@register_engine("vllm")
def build_vllm_engine(args: Any, model: Any, tokenizer: Any, accelerator: Any) -> RolloutEngine:
    """``rollout_mode: colocate``: one ``vllm.LLM`` per training process, started from the model's
    source (or an export of it); ``server``: the HTTP client of a ``parsimony vllm-serve``. Either
    way the trainer's current weights are pushed before it is returned."""
    if args.rollout_mode == "server":
        from rollout.vllm_server import VLLMServerEngine

        engine: Any = VLLMServerEngine(
            args.server_url,
            tokenizer,
            timeout=args.server_timeout,
            is_sender=accelerator.is_main_process,
            barrier=accelerator.wait_for_everyone,
            weight_transfer=args.server_weight_transfer,
        )
    else:
        from rollout.factory import engine_model_dir
        from rollout.vllm import VLLMEngine

        rank = accelerator.process_index
        engine_kwargs = colocated_launch_kwargs(args, accelerator.num_processes)
        model_dir = engine_model_dir(model, tokenizer, Path(args.output_dir) / f"vllm-start-rank{rank}")
        engine = VLLMEngine(
            model_dir,
            tokenizer,
            dtype=args.vllm_dtype,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            tensor_parallel_size=args.vllm_tensor_parallel_size,
            max_model_len=args.vllm_max_model_len or default_max_model_len(model, args),
            seed=args.seed + rank,  # each process samples its own rollouts
            enable_sleep_mode=args.vllm_enable_sleep_mode,
            cpu_kv_cache_gib=args.vllm_cpu_kv_cache_gib,
            engine_kwargs=engine_kwargs,
            enable_prefix_caching=getattr(args, "environment", None) is not None,
        )
    engine.sync_weights(model)
    return engine
