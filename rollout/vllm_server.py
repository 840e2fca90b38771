"""Rollouts from a ``parsimony vllm-serve`` server over HTTP (``rollout_mode: server``).

Generation uses the server's OpenAI-compatible ``/v1/completions`` with prompt token ids, ``n``
completions per prompt, the sampled tokens' ids and log-probs. After each optimizer step the
trainer's main process writes the policy weights to one safetensors file in shared memory and
asks the server's workers to load it in place (``/collective_rpc`` -> ``WeightSyncExtension``).
That is the tested CPU / same-node path (``weight_transfer="file"``). With
``weight_transfer="nccl"`` the push is an NCCL broadcast through vLLM's weight-transfer API
(``rollout/vllm_nccl.py``; GPU only, not run in CI).

A dead or hung server never hangs training. HTTP goes through the shared
:class:`rollout.http.HTTPClient`: every request has a timeout; connection errors and 5xx / 429
answers are retried with backoff; a generation request that timed out, or whose connection broke
after it was sent, is not sent again (the server may still be generating it). Then a
``RolloutServerError`` names the server and how to resume. There is no circuit breaker here:
rollouts have no fallback, so a dead server stops training with that error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rollout.http import HTTPClient, HTTPRequestError
from rollout.types import EngineBase, SamplingConfig, Trajectory


class RolloutServerError(RuntimeError):
    """The generation server could not be reached or answered with an error."""


def _default_weights_dir() -> str:
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="parsimony-weights-", dir=base)


class VLLMServerEngine(EngineBase):
    """A ``RolloutEngine`` backed by a running ``parsimony vllm-serve``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        tokenizer: the trainer's tokenizer (pad id, decoding).
        timeout: seconds per request (a generation batch must finish within it).
        retries: attempts per request on connection errors and 5xx / 429 answers, with
            exponential backoff (a generation that timed out is never re-sent).
        is_sender: whether this process pushes weights (the main process under DDP).
        barrier: called after a push so that every process generates from the new weights.
        weights_dir: where the weights file is written; must be readable by the server.
    """

    def __init__(
        self,
        base_url: str,
        tokenizer: Any,
        *,
        timeout: float = 600.0,
        retries: int = 3,
        backoff: float = 1.0,
        is_sender: bool = True,
        barrier: Callable[[], None] | None = None,
        weights_dir: str | None = None,
        model_name: str | None = None,
        weight_transfer: str = "file",
    ) -> None:
        if weight_transfer not in ("file", "nccl"):
            raise ValueError(f"weight_transfer must be 'file' or 'nccl', got {weight_transfer!r}")
        self.base_url = base_url.rstrip("/")
        self.tokenizer = tokenizer
        self._http = HTTPClient(self.base_url, timeout=float(timeout), retries=max(1, int(retries)) - 1,
                                backoff=float(backoff), max_connections=4, name=f"vLLM server {self.base_url}")
        self.is_sender = is_sender
        self.barrier = barrier
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._weights_dir = weights_dir
        self._owns_weights_dir = weights_dir is None
        self.model_name = model_name or self._first_model()
        self._nccl = None
        if self.is_sender:
            ping = self._post("/collective_rpc", {"method": "parsimony_ping"}, what="weight-update check", idempotent=True)
            if "parsimony" not in json.dumps(ping):
                raise RolloutServerError(
                    f"{self.base_url} is not a `parsimony vllm-serve` server (no weight-update extension); "
                    "start it with `parsimony vllm-serve --model ...`"
                )
            if weight_transfer == "nccl":  # one ping answer per server worker
                from rollout.vllm_nccl import NCCLWeightPusher

                workers = len(ping.get("results", [])) if isinstance(ping, dict) else 1
                self._nccl = NCCLWeightPusher(self.base_url, max(1, workers), timeout=self.timeout)
        self.last_sync_seconds = 0.0

    # --- HTTP -----------------------------------------------------------------------------------
    # the request settings live on the shared client; ``retries`` counts attempts, as before
    timeout = property(lambda self: self._http.timeout, lambda self, v: setattr(self._http, "timeout", float(v)))
    backoff = property(lambda self: self._http.backoff, lambda self, v: setattr(self._http, "backoff", float(v)))
    retries = property(lambda self: self._http.retries + 1, lambda self, v: setattr(self._http, "retries", max(1, int(v)) - 1))

    def _request(self, method: str, path: str, body: dict | None, what: str, timeout: float | None = None,
                 idempotent: bool | None = None) -> Any:
        try:
            response = self._http.request(method, path, body, timeout=timeout, idempotent=idempotent, what=what)
        except HTTPRequestError as e:
            if e.kind == "status":
                raise RolloutServerError(
                    f"vLLM server {self.base_url}{path} answered {e.status} to the {what}"
                    f"{f' after {e.attempts} attempts' if e.attempts > 1 else ''}: {e.body}"
                ) from None
            how = {"timeout": "timed out in", "disconnect": "lost the connection in"}.get(e.kind, "failed")
            raise RolloutServerError(
                f"vLLM server {self.base_url} {how} the {what} after {e.attempts} attempt{'s' if e.attempts != 1 else ''} ({e}). "
                "Is `parsimony vllm-serve` running there? Restart it, then resume training with "
                "--resume_from_checkpoint latest."
            ) from None
        raw = response.content
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise RolloutServerError(f"vLLM server {self.base_url}{path}: the {what} answer is not JSON: {raw[:200]!r}") from None

    def _post(self, path: str, body: dict, what: str, timeout: float | None = None, idempotent: bool | None = None) -> Any:
        return self._request("POST", path, body, what, timeout, idempotent)

    def _first_model(self) -> str:
        models = self._request("GET", "/v1/models", None, "model listing", timeout=min(self.timeout, 30.0))
        try:
            return models["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise RolloutServerError(f"vLLM server {self.base_url} lists no model: {models!r}") from None

    # --- RolloutEngine ----------------------------------------------------------------------------
    def generate(
        self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig
    ) -> list[list[Trajectory]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not prompt_ids:
            return []
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": [list(map(int, p)) for p in prompt_ids],
            "n": n,
            "max_tokens": sampling.max_new_tokens,
            "return_token_ids": True,
            "include_stop_str_in_output": True,
            "skip_special_tokens": True,
        }
        if sampling.greedy:
            body["temperature"] = 0.0
        else:
            body.update(temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k > 0:
                body["top_k"] = sampling.top_k
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.return_logprobs:
            body["logprobs"] = 0
        if sampling.min_new_tokens > 0:  # vLLM's extra sampling parameter: no eos before that many tokens
            body["min_tokens"] = sampling.min_new_tokens
        out = self._post("/v1/completions", body, what="generation request")
        return self._parse(out, prompt_ids, n, self.tokenizer)

    @staticmethod
    def _parse(out: dict, prompt_ids: Sequence[Sequence[int]], n: int, tokenizer: Any = None) -> list[list[Trajectory]]:
        """The server's choices -> groups; ``text`` is the tokenizer's decoding of the returned ids
        (as the other engines give it), the server's own text only when no ids came back."""
        choices = sorted(out.get("choices", []), key=lambda c: c["index"])
        if len(choices) != len(prompt_ids) * n:
            raise RolloutServerError(f"expected {len(prompt_ids) * n} completions, the server returned {len(choices)}")
        groups: list[list[Trajectory]] = [[] for _ in prompt_ids]
        for c in choices:
            g = c["index"] // n
            ids = [int(x) for x in (c.get("token_ids") or [])]
            lp = None
            if c.get("logprobs") and c["logprobs"].get("token_logprobs") is not None:
                lp = [float(x) for x in c["logprobs"]["token_logprobs"]]
            groups[g].append(
                Trajectory(
                    prompt_ids=list(prompt_ids[g]),
                    completion_ids=ids,
                    logprobs=lp,
                    finish_reason="length" if c.get("finish_reason") == "length" else "stop",
                    text=tokenizer.decode(ids, skip_special_tokens=True) if hasattr(tokenizer, "decode") and ids
                    else c.get("text", ""),
                    group_index=g,
                )
            )
        return groups

    def sync_weights(self, model: Any) -> None:
        """Push ``model``'s weights (adapters merged) to the server; all processes wait for it."""
        t0 = time.time()
        if self.is_sender and self._nccl is not None:
            self._nccl.push(model)
        elif self.is_sender:
            from rollout.weights import save_weights_file

            if self._weights_dir is None:
                self._weights_dir = _default_weights_dir()
            path = os.path.join(self._weights_dir, "policy.safetensors")
            save_weights_file(model, path)
            try:
                self._post("/collective_rpc", {"method": "parsimony_load_weights_file", "args": [path]}, what="weight update")
            finally:
                if os.path.exists(path):
                    os.remove(path)
        else:  # FSDP2: the sender's gathers need every process
            from rollout.weights import drain_weights

            drain_weights(model)
        if self.barrier is not None:
            self.barrier()
        self.last_sync_seconds = time.time() - t0

    def close(self) -> None:
        if getattr(self, "_http", None) is not None:
            self._http.close()
        if getattr(self, "_nccl", None) is not None:
            self._nccl.close()
            self._nccl = None
        if self._owns_weights_dir and self._weights_dir and os.path.isdir(self._weights_dir):
            shutil.rmtree(self._weights_dir, ignore_errors=True)
        self._weights_dir = None

    def __del__(self) -> None:  # the shared-memory directory must not outlive the trainer
        try:
            self.close()
        except Exception:
            pass
