"""Build the rollout engine a ``GRPOConfig`` asks for: HF, colocated vLLM, or a vLLM server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rollout.types import RolloutEngine
from rollout.weights import save_weights_file, unwrap


def engine_model_dir(model: Any, tokenizer: Any, export_dir: str | os.PathLike) -> str:
    """A directory (or hub id) vLLM can start from: the model's own source when it has one,
    otherwise an export of its config, tokenizer and current weights.

    The engine is started from it once; the trainer's live weights are synced right after, so a
    resumed run or a PEFT policy generates from the right weights either way.
    """
    model = unwrap(model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    source = str(getattr(base.config, "_name_or_path", "") or "")
    if source and Path(source, "config.json").is_file():
        has_tokenizer = any(Path(source, f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        if has_tokenizer:
            return source
    out = Path(export_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights_file(model, out / "model.safetensors")
    base.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def default_max_model_len(model: Any, args: Any) -> int:
    """Prompt + completion budget, capped at the model's own context (vLLM refuses more)."""
    want = args.max_prompt_length + args.max_completion_length
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

    from rl.config import ConfigError

    if num_processes > 1 and args.vllm_tensor_parallel_size > 1:
        raise ConfigError(
            "vllm_tensor_parallel_size: colocated engines run one per training process (tensor parallel 1); "
            "for tensor parallelism use rollout_mode: server with `parsimony vllm-serve --tensor-parallel-size N`"
        )
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda and num_processes > 1:
        return {"distributed_executor_backend": "external_launcher"}
    return {}


def make_rollout_engine(args: Any, model: Any, tokenizer: Any, accelerator: Any) -> RolloutEngine:
    """The engine for ``args.engine`` / ``args.rollout_mode``, already generating from ``model``."""
    if args.engine == "hf":
        from rollout.hf import HFEngine

        return HFEngine(model, tokenizer, max_batch_size=0, unwrap=accelerator.unwrap_model)
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
        )
    engine.sync_weights(model)
    return engine
