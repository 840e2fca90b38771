"""Machinery shared by the SFT and GRPO trainers: accelerator, model/optimizer/scheduler
setup, checkpoint save/resume, SIGTERM handling, tracking.

Subclasses implement ``training_step(step) -> metrics`` and may add state to checkpoints
through ``extra_state`` / ``load_extra_state``.
"""

from __future__ import annotations

import math
import random
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rl import checkpoint as ckpt_lib
from rl import checkpoint_check
from rl import role_adapters, sharding
from rl.config import OPTIMIZERS, TrainConfig
from rl.malloc import tune_malloc
from rl.redaction import redact
from rl.modeling import apply_lora, is_peft_model, load_model, load_tokenizer, merged_copy
from rl.tracking import Tracker


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class BaseTrainer:
    def __init__(self, model: Any, args: TrainConfig, processing_class: Any = None) -> None:
        self.args = args
        tune_malloc()  # a growing KV cache is otherwise mapped and faulted in afresh at every step (rl/malloc.py)
        if args.num_threads > 0:
            torch.set_num_threads(args.num_threads)
        _allow_new_mixed_precision("bf16" if args.bf16 else "no")
        # without CUDA, cpu=True lets accelerate pick MULTI_CPU (gloo) under torchrun; an FSDP2 accelerate
        # config shards the model, on CPU too (rl/sharding.py)
        self.accelerator = sharding.make_accelerator("bf16" if args.bf16 else "no")
        if args.bf16 and self.accelerator.device.type == "cpu" and cpu_lacks_native_bf16():
            import warnings

            warnings.warn("bf16=True on a CPU without native bf16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo): "
                          "autocast emulates it, and an SFT step of the tiny model measured 14x slower than fp32 on "
                          "an AVX2-only AMD EPYC (scripts/bench_sft.py); set bf16=False here", stacklevel=2)
        seed_everything(args.seed)
        # before any model loads: the checkpoint to resume from (complete, readable, code-free), and an
        # output_dir that a new run may write into (rl/checkpoint_check.py)
        def log_main(message: str) -> None:
            if self.accelerator.is_main_process:
                print(message, flush=True)

        self._resume_path = checkpoint_check.resolve_resume(
            args.resume_from_checkpoint, args.output_dir, self.accelerator.num_processes, log_main)
        checkpoint_check.check_output_dir(args.output_dir, args.resume_from_checkpoint, args.overwrite_output_dir,
                                          log_main, self.accelerator.is_main_process)
        # model / tokenizer: a path or hub id, or objects the user built
        model_name = model if isinstance(model, str) else args.model
        self.tokenizer = processing_class if processing_class is not None else load_tokenizer(args.tokenizer or model_name)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if isinstance(model, str):
            model = load_model(model)
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.role_adapters = list(getattr(args, "role_adapters", None) or [])
        self.role_grad_norms: dict[str, float] = {}  # per role adapter, the last step's (logged by the GRPO update)
        if args.use_peft and self.role_adapters:  # one adapter, one optimizer group per role (rl/role_adapters.py)
            model = role_adapters.add_role_adapters(model, self.role_adapters, args.lora_r, args.lora_alpha,
                                                    args.lora_dropout, list(args.lora_target_modules))
        elif args.use_peft:
            model = apply_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout, list(args.lora_target_modules))
        self.optimizer = torch.optim.AdamW(
            role_adapters.role_param_groups(model, self.role_adapters) if self.role_adapters else
            [p for p in model.parameters() if p.requires_grad],
            lr=args.learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
            weight_decay=args.weight_decay,
            **OPTIMIZERS[args.optim],
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            args.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=args.num_warmup_steps,
            num_training_steps=args.max_steps,
        )
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.global_step = 0
        self._stop_signal: int | None = None
        self.tracker: Tracker | None = None
        self._eval_fn: Callable[[], dict[str, float]] | None = None

    # --- helpers -------------------------------------------------------------------------
    @property
    def unwrapped_model(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def log_line(self, message: str) -> None:
        if self.tracker is not None:
            self.tracker.write(message)
        elif self.is_main:
            print(message, flush=True)

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over processes (every process must pass the same keys)."""
        if self.accelerator.num_processes == 1 or not metrics:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(keys, t.tolist()))

    def clip_and_step(self) -> float:
        """Clip gradients, step optimizer and scheduler; returns the pre-clip grad norm."""
        if self.role_adapters:  # each role's adapter clipped alone; the norm of all of them returned
            self.role_grad_norms = role_adapters.clip_role_groups(self.optimizer, self.args.max_grad_norm)
            norm = sum(v * v for v in self.role_grad_norms.values()) ** 0.5
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            norm = sharding.clip_grad_norm(self.accelerator, params, self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def is_sharded(self) -> bool:
        """FSDP2 / ZeRO-3: no process holds the full model (see rl/sharding.py)."""
        return sharding.is_sharded(self.accelerator)

    def gathered_weights(self, needed: bool = True):
        """Context: the full parameters on every process and no collective in forwards (sharded runs;
        every process enters together), e.g. around generation. A no-op without sharding."""
        return sharding.maybe_gathered(self.model, self.accelerator, needed)

    def build_reference_model(self) -> Any:
        """A frozen copy of the policy's current weights; under sharding a fresh model sharded the same way."""
        if self.is_sharded:
            return sharding.build_reference_model(self.model, self.accelerator)
        import copy

        return copy.deepcopy(self.unwrapped_model).eval().requires_grad_(False)

    # --- checkpointing -----------------------------------------------------------------------
    def extra_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state shared by all processes, this process's own state)."""
        return {}, {}

    def load_extra_state(self, shared: dict[str, Any], local: dict[str, Any]) -> None:
        pass

    def on_weights_loaded(self) -> None:
        """Called on every process right after a checkpoint's weights are loaded into the model
        (a rollout engine with its own copy of the weights is synced here)."""

    def save_checkpoint(self) -> Path:
        shared, local = self.extra_state()
        shared = {"config": redact(self.args.to_dict()), **shared}
        if self.is_sharded:
            from rl import sharded_checkpoint

            path = sharded_checkpoint.save_checkpoint(self, shared, local)
            self.log_line(f"[parsimony] saved {path}")
            return path
        path = ckpt_lib.save_checkpoint(
            self.args.output_dir,
            self.global_step,
            self.unwrapped_model,
            self.tokenizer,
            self.optimizer,
            self.scheduler,
            {"shared": shared, "local": local},
            rank=self.accelerator.process_index,
            is_main_process=self.is_main,
            save_total_limit=self.args.save_total_limit,
            barrier=self.accelerator.wait_for_everyone,
        )
        self.log_line(f"[parsimony] saved {path}")
        return path

    def maybe_resume(self) -> None:
        path = self._resume_path  # resolved and checked before the model loaded (rl/checkpoint_check.py)
        if path is None:
            if self.args.resume_from_checkpoint == "latest":
                self.log_line(f"[parsimony] no complete checkpoint in {self.args.output_dir}; starting fresh")
            return
        if self.is_sharded:
            from rl import sharded_checkpoint

            sharded_checkpoint.load_checkpoint(self, path)  # model, optimizer, scheduler
            self.on_weights_loaded()
        else:
            ckpt_lib.load_model_weights(self.unwrapped_model, path)
            self.on_weights_loaded()
            self.optimizer.load_state_dict(ckpt_lib.read_torch(path / "optimizer.pt"))
            self.scheduler.load_state_dict(ckpt_lib.read_torch(path / "scheduler.pt"))
        shared, local = ckpt_lib.load_trainer_state(path, self.accelerator.process_index)
        self.global_step = int(shared["step"])
        self.load_extra_state(shared, local.get("local", {}))
        ckpt_lib.set_rng_state(local["rng"])
        self.log_line(f"[parsimony] resumed from {path} at step {self.global_step}")

    # --- signals -----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict:
        previous = {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # second signal: give up immediately
                raise KeyboardInterrupt
            self._stop_signal = signum
            print(f"[parsimony] got signal {signum}: saving a checkpoint after this step, then exiting", flush=True)

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return previous

    def _should_stop(self) -> bool:
        flag = torch.tensor([1.0 if self._stop_signal is not None else 0.0], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            flag = self.accelerator.reduce(flag, reduction="max")
        return bool(flag.item() > 0)

    # --- the loop ------------------------------------------------------------------------------
    def training_step(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the trainer started (engines with threads or processes); idempotent. Nothing here."""

    def set_eval_fn(self, fn: Callable[[], dict[str, float]]) -> None:
        """Held-out evaluation run every ``eval_steps`` (see ``rl.eval.training.attach_eval``)."""
        self._eval_fn = fn

    def budget_spent(self) -> bool:
        """Whether a budget other than ``max_steps`` has run out (the same answer on every process): the
        run then ends as if at its last step. None here; the GRPO trainer has one of generated tokens."""
        return False

    def budget_line(self) -> str:
        """What :meth:`budget_spent` found, for the log."""
        return "budget spent"

    def on_step_end(self, metrics: dict[str, float]) -> None:
        """After logging: periodic evaluation, logged under ``eval/``."""
        every = getattr(self.args, "eval_steps", 0)
        if every > 0 and self._eval_fn is not None and self.global_step % every == 0:
            results = self._eval_fn()
            if self.tracker is not None and results:
                self.tracker.log(self.global_step, {f"eval/{k}": v for k, v in results.items()})

    def train(self) -> dict[str, Any]:
        """Run until ``max_steps`` (or a stop signal); returns a summary."""
        args = self.args
        self.maybe_resume()
        self.tracker = Tracker(
            args.output_dir,
            args.report_to,
            total_steps=args.max_steps,
            config=redact(args.to_dict()),
            run_name=args.run_name,
            is_main_process=self.is_main,
            initial_step=self.global_step,
            disable_progress_bar=args.disable_progress_bar,
        )
        self.log_line(
            f"[parsimony] {type(self).__name__}: processes: {self.accelerator.num_processes}, "
            f"device: {self.accelerator.device}, steps: {self.global_step} -> {args.max_steps}"
        )
        previous = self._install_signal_handlers()
        start = time.time()
        last: dict[str, float] = {}
        interrupted = False
        try:
            while self.global_step < args.max_steps and not self.budget_spent():
                metrics = self.training_step()
                if metrics.get("skipped"):
                    if self._should_stop():  # a stop signal while every batch is skipped still stops
                        interrupted = True
                        self.save_checkpoint()
                        break
                    continue
                self.global_step += 1
                metrics["lr"] = self.scheduler.get_last_lr()[0]
                last = metrics
                if self.global_step % args.logging_steps == 0 or self.global_step == args.max_steps:
                    self.tracker.log(self.global_step, metrics)
                self.tracker.advance()
                self.on_step_end(metrics)
                if args.save_steps > 0 and self.global_step % args.save_steps == 0:
                    self.save_checkpoint()
                if self.budget_spent():
                    self.log_line(f"[parsimony] step {self.global_step}: {self.budget_line()}; the run ends here")
                    break
                if self._should_stop():
                    interrupted = True
                    if not (args.save_steps > 0 and self.global_step % args.save_steps == 0):
                        self.save_checkpoint()
                    break
            if not interrupted and args.save_final:
                self.save_final()
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)
            self.tracker.close()
        elapsed = time.time() - start
        return {"global_step": self.global_step, "interrupted": interrupted, "seconds": elapsed, "last_metrics": last,
                "budget_spent": self.budget_spent()}

    def save_final(self) -> Path:
        out = Path(self.args.output_dir) / "final"
        if self.is_sharded:  # the full state gathered onto the main process, written by save_pretrained
            from rl import sharded_checkpoint

            return sharded_checkpoint.save_consolidated(self.model, self.accelerator, self.tokenizer, out)
        self.accelerator.wait_for_everyone()
        if self.is_main and self.role_adapters:  # final/<role>/: the base with that role's adapter merged
            role_adapters.export_role_models(self.unwrapped_model, self.role_adapters, self.tokenizer, out)
        elif self.is_main:
            model = self.unwrapped_model
            if is_peft_model(model):  # LoRA: the adapter under final/adapter, the merged model in final/
                model.save_pretrained(out / "adapter", safe_serialization=True)
                model = merged_copy(model)
            model.save_pretrained(out, safe_serialization=True)
            self.tokenizer.save_pretrained(out)
        self.accelerator.wait_for_everyone()
        return out


def cpu_lacks_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when ``/proc/cpuinfo`` (or the text given) names CPU flags and none of them is a native
    bf16 unit (``avx512_bf16``, ``amx_bf16``); False where the flags cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return bool(flags) and not flags & {"avx512_bf16", "amx_bf16"}


def _allow_new_mixed_precision(mixed_precision: str) -> None:
    """accelerate keeps one process-wide state; a second trainer in the same process (SFT then
    GRPO, or a comparison of runs) with another precision would be refused. The process group
    (PartialState) is kept; only the precision/plugin state is cleared."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", state.get("mixed_precision", mixed_precision))) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def nan_safe_mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")
