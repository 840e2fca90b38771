"""The HF engine in a child process, generating from its own copy of the weights.

``HFEngine`` generates from the trainer's live model, so generation and the update cannot
overlap: the update would change the weights under the sampler. ``HFProcessEngine`` holds a
copy of the model in shared memory, served by a spawned child process (its own torch threads)
that runs an ``HFEngine`` on it. ``sync_weights(model)`` copies the weights into that shared copy
while the child is idle (between requests), so a request always samples from one set of weights.

Each request carries a seed (``torch.manual_seed`` in the child before sampling), so a request
is reproducible from its seed and its weights alone: what exact resume needs.

A request that fails in the child comes back as a ``RuntimeError`` with the child's traceback;
a child that dies is reported with its exit code (and the engine refuses further requests).
"""

from __future__ import annotations

import copy
import time
import traceback
from typing import Any, Sequence

import torch

from rollout.types import EngineBase, SamplingConfig, Trajectory

_START_TIMEOUT_S = 300.0  # spawning imports torch + transformers in the child


def _serve(conn: Any, model: Any, tokenizer: Any, decode: str, threads: int) -> None:
    """The child's loop: ``(prompt_ids, n, sampling, seed)`` in, ``("ok", groups)`` or ``("error", tb)`` out."""
    from rollout.hf import HFEngine

    torch.set_num_threads(threads)
    engine = HFEngine(model, tokenizer, decode=decode)
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the parent is gone
            return
        if msg is None:
            return
        prompt_ids, n, sampling, seed = msg
        try:
            if seed is not None:
                torch.manual_seed(seed)
            conn.send(("ok", engine.generate(prompt_ids, n, sampling)))
        except Exception:  # reported to the parent, which raises it
            conn.send(("error", traceback.format_exc()))


class HFProcessEngine(EngineBase):
    """``HFEngine`` in a spawned child over a shared-memory copy of ``model``.

    ``threads``: torch threads of the child (it runs beside the trainer's own threads).
    ``request_timeout``: seconds one request may take before the engine gives up on it.
    """

    def __init__(self, model: Any, tokenizer: Any, decode: str = "generate", threads: int = 1,
                 unwrap=None, request_timeout: float = 3600.0) -> None:
        unwrap = unwrap or (lambda m: getattr(m, "module", m))
        self._unwrap = unwrap
        live = unwrap(model)
        shadow = copy.deepcopy(live).eval()
        for p in shadow.parameters():
            p.requires_grad_(False)
        shadow.share_memory()
        self._params = dict(shadow.named_parameters())
        if list(self._params) != [n for n, _ in live.named_parameters()]:
            raise RuntimeError("the model's copy has other parameter names than the model")
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.request_timeout = request_timeout
        ctx = torch.multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, shadow, tokenizer, decode, threads), daemon=True,
                                 name="parsimony-rollouts")
        self._proc.start()
        child.close()
        self._receive(_START_TIMEOUT_S, "start")

    @torch.no_grad()
    def sync_weights(self, model: Any) -> None:
        """Copy ``model``'s weights into the child's copy, now: call it between requests (``generate``
        is synchronous; ``OffPolicyEngine`` defers syncs while a request is in flight)."""
        src = dict(self._unwrap(model).named_parameters())
        for name, dst in self._params.items():
            dst.copy_(src[name].detach().to(dst.device, dst.dtype))

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig,
                 seed: int | None = None) -> list[list[Trajectory]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if self._proc is None:
            raise RuntimeError("the rollout process was closed")
        if not self._proc.is_alive():
            raise RuntimeError(f"the rollout process has exited (exit code {self._proc.exitcode})")
        try:
            self._conn.send(([list(p) for p in prompt_ids], n, sampling, seed))
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError) as e:  # died between the check and the send
            raise self._died("generate") from e
        return self._receive(self.request_timeout, "generate")

    def _died(self, what: str) -> RuntimeError:
        """The error for a child that is gone: its exit code once the OS has reaped it (a killed child can
        break the pipe a moment before ``is_alive()`` turns False)."""
        self._proc.join(timeout=5)
        return RuntimeError(f"the rollout process died during {what} (exit code {self._proc.exitcode})")

    def _receive(self, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        try:
            while not self._conn.poll(0.5):
                if not self._proc.is_alive():
                    raise self._died(what)
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the rollout process did not answer {what} within {timeout:.0f} s; stopped it")
            status, value = self._conn.recv()
        except (BrokenPipeError, ConnectionResetError, EOFError) as e:  # the pipe closed under us: the child is gone
            raise self._died(what) from e
        if status == "error":
            last = value.strip().splitlines()[-1] if value.strip() else "unknown error"
            raise RuntimeError(f"rollout process: {what} failed: {last}\n{value}")
        return value

    def close(self) -> None:
        """Stop the child (idempotent)."""
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        if proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self._conn.close()
        self._proc = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass
