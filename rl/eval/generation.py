"""How evaluation completions are generated: settings, prompt rendering, seeded sampling.

* :class:`EvalSettings`: n, temperature, top-p / top-k, lengths, seed, system prompt
  (validated; :class:`EvalError` is the evaluation's one-line user error).
* :func:`render_eval_prompt`: chat messages or a string -> the text the model continues
  (:func:`curriculum.data.render_prompt`, the renderer training uses).
* :class:`EvalGenerator`: ``n`` completions per prompt from a model (the HF engine with
  per-sample seeded streams) or from any :class:`~rollout.types.RolloutEngine`.

Seeded sampling: with the HF engine, sampling does not use torch's global random stream.
Every sequence draws its tokens from its own counter-based stream keyed by
``(seed, benchmark, problem index, sample index, token position)`` (:func:`sample_key`,
:func:`stream_uniform`, applied by the :class:`SeededSampler` logits processor), so a
completion depends on nothing but its identity. Grading and batching are
:mod:`rl.eval.evaluate`'s job.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from curriculum.data import render_prompt
from rl.eval.errors import EvalError
from rollout.hf import HFEngine
from rollout.types import RolloutEngine, SamplingConfig, Trajectory




# ---------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------


@dataclass
class EvalSettings:
    """How completions are generated. ``temperature == 0`` means greedy decoding."""

    n: int = 1  # samples per problem
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    batch_size: int = 64  # sequences (problems x n) per generate call
    seed: int = 0
    system_prompt: str | None = None
    chat_template: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise EvalError(f"--n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise EvalError(f"--temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise EvalError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise EvalError(f"--top-k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise EvalError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise EvalError(f"--batch-size must be >= 1, got {self.batch_size}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change completions (resume refuses a run whose differ)."""
        d = asdict(self)
        d.pop("batch_size")  # results do not depend on batch composition
        return d


# ---------------------------------------------------------------------------------------
# prompts
# ---------------------------------------------------------------------------------------


# evaluation renders prompts with training's renderer (one renderer: a row is the same prompt
# in training and in evaluation); the old name stays importable
render_eval_prompt = render_prompt


# ---------------------------------------------------------------------------------------
# seeded sampling
# ---------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def sample_key(seed: int, benchmark: str, problem: int, sample: int) -> int:
    """The random-stream key of one completion: depends on nothing but its identity."""
    k = _mix64(int(seed) & _M64)
    k = _mix64(k ^ zlib.crc32(benchmark.encode()))
    k = _mix64(k ^ (int(problem) & _M64))
    return _mix64(k ^ (int(sample) & _M64))


def stream_uniform(key: int, step: int) -> float:
    """The ``step``-th uniform draw in [0, 1) of the stream ``key``."""
    return (_mix64(key ^ _mix64(step)) >> 11) / float(1 << 53)


try:  # transformers is a hard dependency; this keeps the import lazy-safe for docs tools
    from transformers import LogitsProcessor as _LogitsProcessorBase
except Exception:  # pragma: no cover
    _LogitsProcessorBase = object  # type: ignore[misc,assignment]


class SeededSampler(_LogitsProcessorBase):
    """A logits processor that *samples*: temperature, top-k and top-p are applied to the
    scores, one token per row is drawn by inverse-CDF with the row's own uniform
    (:func:`stream_uniform`), and the returned scores are 0 for that token and -inf for
    every other one, so ``generate``'s greedy step picks it. Rows are the flattened
    ``(prompt, sample)`` pairs in the order the engine builds its batch."""

    def __init__(self, keys: Sequence[int], temperature: float, top_p: float = 1.0, top_k: int = 0):
        self.keys = list(keys)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self._start_len: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._start_len is None:
            self._start_len = input_ids.shape[1]
        step = input_ids.shape[1] - self._start_len
        if scores.shape[0] != len(self.keys):
            raise RuntimeError(f"SeededSampler: {scores.shape[0]} rows but {len(self.keys)} stream keys")
        logits = scores.float() / self.temperature  # [B, V]
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]  # [B, 1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # [B, V]
            probs = sorted_logits.softmax(-1)
            before = probs.cumsum(-1) - probs  # mass of the strictly better tokens
            drop_sorted = before >= self.top_p  # keeps the smallest prefix reaching top_p (>= 1 token)
            drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        probs = logits.softmax(-1).double()  # [B, V]
        cdf = probs.cumsum(-1)  # [B, V]
        u = torch.tensor([stream_uniform(k, step) for k in self.keys], dtype=torch.float64, device=cdf.device)
        u = (u * cdf[:, -1]).unsqueeze(-1)  # [B, 1]
        choice = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)  # [B, 1]
        # never pick a token of probability 0 (float rounding at the top of the cdf)
        zero = probs.gather(1, choice) <= 0
        if bool(zero.any()):
            choice = torch.where(zero, probs.argmax(-1, keepdim=True), choice)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(1, choice, 0.0)


class _SeededModel:
    """Stands in for the model inside :class:`HFEngine`: forwards every attribute to the
    model and adds a :class:`SeededSampler` to ``generate`` when armed. Each ``generate``
    call takes the next ``batch`` rows of the armed keys (the engine may split a call into
    chunks of whole groups)."""

    def __init__(self, model: Any):
        self.__dict__["_model"] = model
        self.__dict__["_armed"] = None  # (keys, temperature, top_p, top_k)
        self.__dict__["_cursor"] = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_model"], name)

    def arm(self, keys: Sequence[int] | None, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0) -> None:
        self.__dict__["_armed"] = None if keys is None else (list(keys), temperature, top_p, top_k)
        self.__dict__["_cursor"] = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        armed = self.__dict__["_armed"]
        model = self.__dict__["_model"]
        if armed is None:
            return model.generate(*args, **kwargs)
        from transformers import LogitsProcessorList

        keys, temperature, top_p, top_k = armed
        rows = kwargs["input_ids"].shape[0]
        cur = self.__dict__["_cursor"]
        self.__dict__["_cursor"] = cur + rows
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(SeededSampler(keys[cur : cur + rows], temperature, top_p, top_k))
        return model.generate(*args, logits_processor=processors, **kwargs)


class EvalGenerator:
    """Generates ``n`` completions per prompt for evaluation.

    Built from a model (HF engine with per-sample seeded streams) or from any
    :class:`RolloutEngine` (then sampling uses the engine's own randomness, seeded per batch).
    """

    def __init__(self, model: Any = None, tokenizer: Any = None, engine: RolloutEngine | None = None):
        if engine is None:
            if model is None or tokenizer is None:
                raise ValueError("EvalGenerator needs a model and tokenizer, or an engine")
            model = getattr(model, "module", model)  # DDP / accelerate wrappers: generate on the module
            self._proxy: _SeededModel | None = _SeededModel(model)
            self.engine: RolloutEngine = HFEngine(self._proxy, tokenizer)
        else:
            self._proxy = None
            self.engine = engine
        self.calls = 0  # generate() calls made (tests use it to prove what was regenerated)
        self.generated_problems = 0

    @property
    def per_sample_seeding(self) -> bool:
        return self._proxy is not None

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], settings: EvalSettings, keys: Sequence[int] | None = None
    ) -> list[list[Trajectory]]:
        self.calls += 1
        self.generated_problems += len(prompt_ids)
        if settings.greedy:
            sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens, greedy=True, return_logprobs=False)
            armed = None
        elif self._proxy is not None:
            # the engine decodes greedily over the sampler's one-hot scores
            sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens, greedy=True, return_logprobs=False)
            armed = keys
        else:
            sampling = SamplingConfig(
                max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p,
                top_k=settings.top_k, greedy=False, return_logprobs=False,
            )
            armed = None
        if self._proxy is not None:
            self._proxy.arm(armed, settings.temperature, settings.top_p, settings.top_k)
        try:
            return self.engine.generate(prompt_ids, settings.n, sampling)
        finally:
            if self._proxy is not None:
                self._proxy.arm(None)

