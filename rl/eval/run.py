"""``parsimony eval``'s orchestration: several models x several benchmarks, resumable.

:func:`parse_model_specs` turns ``--models`` / ``--adapter`` into :class:`ModelSpec` objects;
:func:`load_model_for_eval` (HF, LoRA adapters merged) and :func:`make_vllm_generator` load
them; :func:`run_eval` evaluates every model on every benchmark through
:func:`rl.eval.evaluate.evaluate_benchmark`, appending to ``samples.jsonl`` (resume) and writing
the results files through :mod:`rl.eval.report` (see ``scripts/evaluate.py``).
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rl.eval.benchmarks import Benchmark
from rl.eval.evaluate import evaluate_benchmark
from rl.eval.generation import EvalError, EvalGenerator, EvalSettings


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
    from rl.eval import report
    from rl.malloc import tune_malloc

    tune_malloc()
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
    from rl.eval import report

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
