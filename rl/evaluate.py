"""Accuracy and efficiency of a model on a prompt dataset or benchmark.

This is the core that the quickstart, ``eval_steps`` during training and
``parsimony eval`` share: generate with an engine, grade with the same grader the
reward uses (``rewards.math``), and report accuracy and token counts.

Layers:

* :func:`evaluate_problems` generates and grades the problems of one benchmark in
  batches and hands each finished batch of sample records to a callback (``parsimony
  eval`` appends them to ``samples.jsonl``, which is what makes a run resumable).
* :func:`evaluate_dataset` is the in-memory entry point for a ``datasets.Dataset`` (or any
  list of rows) used by the quickstart and training; it returns the metrics of
  :func:`rl.eval_metrics.summarize_samples` plus the per-sample records.
* :func:`run_eval` is ``parsimony eval``: several models x several benchmarks, resume,
  results.json / results.md / plot / W&B (see ``scripts/evaluate.py``).

Determinism: with the HF engine, sampling does not use torch's global random stream.
Every sequence draws its tokens from its own counter-based stream keyed by
``(seed, benchmark, problem index, sample index, token position)`` (:class:`SeededSampler`),
so a completion does not depend on which other problems share its batch, on the batch size
or on where an interrupted run resumed. Torch is also seeded before each batch with
``seed + index of the batch's first problem`` for engines that sample with torch's global
generator.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from curriculum.data import get_ground_truth
from rl.benchmarks import Benchmark, EvalProblem
from rl.config import ConfigError
from rl.eval_metrics import summarize_samples
from rollout.hf import HFEngine
from rollout.types import RolloutEngine, SamplingConfig, Trajectory


class EvalError(ConfigError):
    """A user error in an evaluation request; the message is one clear line (``run_cli``
    prints it as ``error: ...`` and exits with code 2)."""


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


def _raw_text(prompt: Any, system_prompt: str | None) -> str:
    if isinstance(prompt, str):
        parts = [prompt]
    else:
        parts = [str(m.get("content", "")) for m in prompt]
    if system_prompt and (isinstance(prompt, str) or not prompt or prompt[0].get("role") != "system"):
        parts = [system_prompt] + parts
    return "\n\n".join(parts)


def render_eval_prompt(tokenizer: Any, prompt: Any, system_prompt: str | None = None, chat_template: bool = True) -> str:
    """Chat messages or a string -> the text the model continues.

    With ``chat_template`` (and a tokenizer that has one) the messages, or a string wrapped
    as one user message, go through the template with the generation prompt; the optional
    system prompt is prepended as a system message. Without it, the message contents (system
    prompt first) are joined with blank lines and used as they are.
    """
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if system_prompt and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return _raw_text(prompt, system_prompt)


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


# ---------------------------------------------------------------------------------------
# generate + grade one benchmark
# ---------------------------------------------------------------------------------------

RecordSink = Callable[[list[dict[str, Any]]], None]


def _grader_for(mode: str, grader: Any = None) -> Any:
    if grader is not None:
        return grader
    from rewards.math import get_default_grader

    return get_default_grader(mode)


def evaluate_problems(
    problems: Sequence[EvalProblem],
    *,
    generator: EvalGenerator,
    tokenizer: Any,
    settings: EvalSettings,
    benchmark: str = "dataset",
    model_name: str = "model",
    mode: str = "math",
    grader: Any = None,
    done: set[int] | frozenset[int] = frozenset(),
    on_records: RecordSink | None = None,
    progress: Any = None,
    keep_completions: bool = True,
) -> list[dict[str, Any]]:
    """Generate ``settings.n`` completions for each problem not in ``done`` (problem
    indices), grade them and return one record per completion.

    Problems are batched (``settings.batch_size // n`` per generate call, longest prompts
    first to limit padding). After each batch, its records (all ``n`` samples of every
    problem in it) go to ``on_records`` and ``progress.update(problems in batch)`` is called.
    A record holds ``model, benchmark, problem, sample, ground_truth, extracted, correct,
    status, tokens, truncated, finish_reason, gen_seconds`` (the batch's wall time shared
    equally by its samples), ``completion`` (when ``keep_completions``) and ``tool_calls``
    when the engine reports them in ``Trajectory.meta``.
    """
    grader = _grader_for(mode, grader)
    pending = [p for p in problems if p.index not in done]
    if not pending:
        return []
    start = getattr(grader, "start", None)
    if callable(start):  # worker start-up is not generation time
        start()
    texts = [render_eval_prompt(tokenizer, p.prompt, settings.system_prompt, settings.chat_template) for p in pending]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(pending)), key=lambda i: (-len(ids[i]), pending[i].index))
    per_call = max(1, settings.batch_size // settings.n)
    out: list[dict[str, Any]] = []
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        batch = [pending[i] for i in chunk]
        t0 = time.perf_counter()
        torch.manual_seed(settings.seed + min(p.index for p in batch))
        keys = [sample_key(settings.seed, benchmark, p.index, j) for p in batch for j in range(settings.n)]
        groups = generator.generate([ids[i] for i in chunk], settings, keys)
        completions = [t.text for g in groups for t in g]
        truths = [p.answer for p, g in zip(batch, groups) for _ in g]
        grades = grader.grade(completions, truths)
        seconds = (time.perf_counter() - t0) / max(1, len(completions))
        records: list[dict[str, Any]] = []
        k = 0
        for p, g in zip(batch, groups):
            if len(g) != settings.n:
                raise RuntimeError(f"engine returned {len(g)} completions for problem {p.index}, expected {settings.n}")
            for j, t in enumerate(g):
                gr = grades[k]
                rec: dict[str, Any] = {
                    "model": model_name,
                    "benchmark": benchmark,
                    "problem": p.index,
                    "sample": j,
                    "ground_truth": p.answer,
                    "extracted": gr.extracted,
                    "correct": bool(gr.score > 0),
                    "status": gr.status,
                    "tokens": len(t.completion_ids),
                    "truncated": bool(t.truncated),
                    "finish_reason": t.finish_reason,
                    "gen_seconds": seconds,
                }
                tool_calls = (t.meta or {}).get("tool_calls")
                if tool_calls is not None:
                    rec["tool_calls"] = int(tool_calls)
                if keep_completions:
                    rec["completion"] = t.text
                records.append(rec)
                k += 1
        if on_records is not None:
            on_records(records)
        if progress is not None:
            progress.update(len(batch))
        out.extend(records)
    return out


def evaluate_benchmark(
    bench: Benchmark, *, generator: EvalGenerator, tokenizer: Any, settings: EvalSettings, model_name: str = "model",
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`evaluate_problems` for a :class:`~rl.benchmarks.Benchmark` (its name and mode)."""
    return evaluate_problems(
        bench.problems, generator=generator, tokenizer=tokenizer, settings=settings, benchmark=bench.name,
        model_name=model_name, mode=bench.mode, **kwargs,
    )


# ---------------------------------------------------------------------------------------
# the in-memory entry point (quickstart, eval during training)
# ---------------------------------------------------------------------------------------


def evaluate_dataset(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    *,
    n_samples: int = 1,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 64,
    system_prompt: str | None = None,
    engine: RolloutEngine | None = None,
    grader: Any = None,
    text_metrics: dict[str, Callable[[str], float]] | None = None,
    seed: int = 0,
    mode: str = "math",
    top_k: int = 0,
    chat_template: bool = True,
    name: str = "dataset",
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (rows with ``prompt`` and a ground truth, a
    :class:`~rl.benchmarks.Benchmark`, or a list of :class:`~rl.benchmarks.EvalProblem`).

    Returns ``accuracy`` (= pass@1 averaged over the ``n_samples``), ``maj@n``, ``pass@k``
    ({"1": .., ..}), mean / median tokens (all, ``*_correct``, ``*_incorrect``; the legacy
    keys ``mean_tokens_correct`` / ``mean_tokens_incorrect`` are 0.0 when the set is empty),
    ``truncated_frac``, ``no_answer_frac``, ``num_problems``, ``num_samples``, ``seconds``,
    ``tokens_per_second``, each of ``text_metrics`` averaged over samples, and the
    per-sample records under ``"samples"`` (each also has ``index`` = its problem index).
    """
    if isinstance(dataset, Benchmark):
        problems, mode, name = dataset.problems, dataset.mode, dataset.name
    else:
        rows = list(dataset)
        if rows and isinstance(rows[0], EvalProblem):
            problems = rows
        else:
            problems = [EvalProblem(i, r["prompt"], get_ground_truth(r) or "") for i, r in enumerate(rows)]
    settings = EvalSettings(
        n=n_samples, temperature=0.0 if greedy else temperature, top_p=top_p, top_k=top_k,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, system_prompt=system_prompt,
        chat_template=chat_template,
    )
    generator = EvalGenerator(model, tokenizer) if engine is None else EvalGenerator(engine=engine)
    start = time.time()
    samples = evaluate_problems(
        problems, generator=generator, tokenizer=tokenizer, settings=settings, benchmark=name, mode=mode,
        grader=grader,
    )
    elapsed = time.time() - start
    samples.sort(key=lambda s: (s["problem"], s["sample"]))
    for s in samples:
        s["index"] = s["problem"]
    result = summarize_samples(samples)
    result["accuracy"] = result["pass@1"] if result["pass@1"] is not None else 0.0
    for key in ("mean_tokens", "median_tokens", "mean_tokens_correct", "mean_tokens_incorrect", "truncated_frac"):
        if result.get(key) is None:
            result[key] = 0.0
    result["seconds"] = elapsed
    result["tokens_per_second"] = result["generated_tokens"] / elapsed if elapsed > 0 else 0.0
    for metric, fn in (text_metrics or {}).items():
        vals = [fn(x.get("completion", "")) for x in samples]
        result[metric] = sum(vals) / len(vals) if vals else 0.0
    result["samples"] = samples
    return result


# ---------------------------------------------------------------------------------------
# parsimony eval: several models x benchmarks, resumable
# ---------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    path: str
    adapter: str | None = None


def parse_model_specs(models: Sequence[str], adapters: Sequence[str] | None = None) -> list[ModelSpec]:
    """``--models a b name=path`` (+ ``--adapter``: one shared or one per model; ``none``
    skips a model) -> named specs. Names default to the directory name (or the hub id's
    last part); duplicates get ``-2``, ``-3`` ... suffixes."""
    if not models:
        raise EvalError("--models: give at least one checkpoint directory or hub id")
    adapters = list(adapters or [])
    if adapters and len(adapters) not in (1, len(models)):
        raise EvalError(f"--adapter: give one adapter for all models or one per model ({len(models)}), got {len(adapters)}")
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(models):
        name, sep, path = item.partition("=")
        if not sep or "/" in name or not name:
            name, path = "", item
        if not name:
            p = Path(path)
            name = p.name if p.name not in ("final", "") else f"{p.parent.name}-{p.name}"
            name = name or path.rstrip("/").split("/")[-1]
        if name in seen:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        else:
            seen[name] = 1
        adapter = (adapters[0] if len(adapters) == 1 else adapters[i]) if adapters else None
        if adapter is not None and adapter.lower() == "none":
            adapter = None
        specs.append(ModelSpec(name, path, adapter))
    return specs


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise EvalError(f"--dtype must be auto, float32, bfloat16 or float16, got {dtype!r}") from None


def load_model_for_eval(spec: ModelSpec, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """(model in eval mode on ``device``, tokenizer). A LoRA adapter is loaded with peft and
    merged; the tokenizer comes from the adapter directory when it has one."""
    from rl.modeling import ModelLoadError, load_model, load_tokenizer

    dev = _resolve_device(device)
    model = load_model(spec.path, dtype=_resolve_dtype(dtype, dev))
    tok_source = spec.path
    if spec.adapter:
        adapter = Path(spec.adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise ModelLoadError(f"--adapter {spec.adapter!r}: no adapter_config.json there (a peft LoRA directory)")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        if (adapter / "tokenizer_config.json").is_file():
            tok_source = str(adapter)
    tokenizer = load_tokenizer(tok_source)
    return model.to(dev).eval(), tokenizer


def make_vllm_generator(spec: ModelSpec, settings: EvalSettings, **engine_kwargs: Any) -> tuple[EvalGenerator, Any]:
    """The vLLM engine for ``spec``; one clear error line when it is not available."""
    if spec.adapter:
        raise EvalError("--adapter is only supported with --engine hf (merge the adapter first for vllm)")
    if importlib.util.find_spec("vllm") is None:
        raise EvalError("--engine vllm: the vllm package is not installed (pip install -e '.[vllm]'); use --engine hf")
    try:
        found = importlib.util.find_spec("rollout.vllm") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise EvalError("--engine vllm: rollout/vllm.py (the vLLM engine) is not part of this installation; use --engine hf")
    from rl.modeling import load_tokenizer

    mod = importlib.import_module("rollout.vllm")
    factory = getattr(mod, "VLLMEngine", None)
    if factory is None:
        raise EvalError("--engine vllm: rollout.vllm has no VLLMEngine")
    tokenizer = load_tokenizer(spec.path)
    try:
        engine = factory(spec.path, tokenizer=tokenizer, seed=settings.seed, **engine_kwargs)
    except TypeError as e:
        raise EvalError(f"--engine vllm: could not construct VLLMEngine ({e})") from None
    return EvalGenerator(engine=engine), tokenizer


@dataclass
class RunOptions:
    """What ``parsimony eval`` was asked for, besides models, benchmarks and settings."""

    output_dir: str = "outputs/eval"
    engine: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    report_to: tuple[str, ...] = ("console",)
    overwrite: bool = False
    progress: bool = True
    run_name: str | None = None
    plot: bool = True


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_eval(
    models: Sequence[ModelSpec],
    benchmarks: Sequence[Benchmark],
    settings: EvalSettings,
    options: RunOptions,
    *,
    generator_factory: Callable[[ModelSpec], tuple[EvalGenerator, Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate every model on every benchmark, resuming from ``samples.jsonl``.

    Writes ``samples.jsonl`` (appended per finished batch), ``run_config.json``,
    ``results.json``, ``results.md`` and, with several models, ``accuracy_vs_tokens.png``
    in ``options.output_dir``; logs to W&B when asked. Returns ``{"results", "paths",
    "generated_problems", "generate_calls"}``. ``generator_factory`` replaces model loading
    (tests count generate calls through it).
    """
    from rl import eval_report as report

    if not benchmarks:
        raise EvalError("no benchmarks to evaluate (use --benchmarks and/or --hub-dataset)")
    names = [b.name for b in benchmarks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EvalError(f"benchmark name(s) {dup} appear twice (give a file or hub dataset another name)")
    if settings.greedy and settings.n > 1:
        _log(f"[eval] note: temperature 0 is greedy decoding, so the {settings.n} samples per problem are identical")
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.check_run_config(out, settings, options, overwrite=options.overwrite)
    store = report.SampleStore(out / "samples.jsonl", settings.n, fresh=options.overwrite)
    if store.dropped_lines:
        _log(f"[eval] resume: dropped {store.dropped_lines} line(s) of unfinished problems / interrupted writes from {store.path}")
    report.write_run_config(out, settings, models, benchmarks, options)
    totals = {"generated_problems": 0, "generate_calls": 0}
    try:
        _generate_all(models, benchmarks, settings, options, store, totals, generator_factory)
    except KeyboardInterrupt:
        _log(f"[eval] interrupted: finished problems are saved in {store.path}; run the same command to resume")
        raise

    results = report.build_results(store, models, benchmarks, settings)
    paths = report.write_outputs(out, results, models, settings, plot=options.plot)
    print(report.markdown_table(results, settings.n), flush=True)
    _log(f"[eval] wrote {', '.join(str(p) for p in paths.values())}")
    if "wandb" in options.report_to:
        report.log_wandb(out, results, settings, models, benchmarks, options, paths)
    return {"results": results, "paths": paths, **totals}


def _generate_all(
    models: Sequence[ModelSpec],
    benchmarks: Sequence[Benchmark],
    settings: EvalSettings,
    options: RunOptions,
    store: Any,
    totals: dict[str, int],
    generator_factory: Callable[[ModelSpec], tuple[EvalGenerator, Any]] | None,
) -> None:
    """Load each model that has unfinished problems, one at a time, and generate them."""
    from rl import eval_report as report

    for spec in models:
        todo = [b for b in benchmarks if not {p.index for p in b.problems} <= store.finished(spec.name, b.name, settings.n)]
        if not todo:
            _log(f"[eval] {spec.name}: every benchmark already finished in {store.path}; nothing to generate")
            continue
        model = None
        if generator_factory is not None:
            generator, tokenizer = generator_factory(spec)
        elif options.engine == "vllm":
            generator, tokenizer = make_vllm_generator(spec, settings)
        elif options.engine == "hf":
            _log(f"[eval] loading {spec.name} from {spec.path}" + (f" + adapter {spec.adapter}" if spec.adapter else ""))
            model, tokenizer = load_model_for_eval(spec, options.device, options.dtype)
            generator = EvalGenerator(model, tokenizer)
        else:
            raise EvalError(f"--engine must be hf or vllm, got {options.engine!r}")
        for bench in todo:
            done = store.finished(spec.name, bench.name, settings.n)
            bar = report.progress_bar(
                total=len(bench), initial=len(done & {p.index for p in bench.problems}),
                desc=f"{spec.name}/{bench.name}", enabled=options.progress,
            )
            try:
                evaluate_benchmark(
                    bench, generator=generator, tokenizer=tokenizer, settings=settings, model_name=spec.name,
                    done=done, on_records=store.append, progress=bar,
                )
            finally:
                bar.close()
        totals["generated_problems"] += generator.generated_problems
        totals["generate_calls"] += generator.calls
        del generator, model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
