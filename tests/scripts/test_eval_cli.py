"""``parsimony eval`` end to end on the tiny model: outputs, resume, determinism, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rl.eval.metrics import majority_vote, pass_at_k
from rl.eval.evaluate import EvalError, EvalGenerator

REPO = Path(__file__).resolve().parents[2]
TIMING = ("wall_seconds", "tokens_per_second")


from rl.commands import evaluate as evaluate_script  # noqa: E402


def _require_shared_data():
    spec = importlib.util.spec_from_file_location("_parsimony_root_conftest", REPO / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.require_shared_data()


def _env():
    env = dict(os.environ, WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _local_jsonl(tmp_path) -> Path:
    path = tmp_path / "mine.jsonl"
    rows = [{"prompt": f"Compute left to right: {a} + {b}", "answer": a + b} for a, b in ((1, 2), (3, 4), (5, 1))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _samples(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def _strip_timing(results):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in results]


def _check_results_match_samples(results, samples, n):
    """Every number of results.json recomputed from samples.jsonl by hand."""
    for r in results:
        if r["benchmark"] == "overall":
            recs = [s for s in samples if s["model"] == r["model"]]
            key = lambda s: (s["benchmark"], s["problem"])  # noqa: E731
        else:
            recs = [s for s in samples if s["model"] == r["model"] and s["benchmark"] == r["benchmark"]]
            key = lambda s: s["problem"]  # noqa: E731
        problems: dict = {}
        for s in recs:
            problems.setdefault(key(s), []).append(s)
        assert r["num_samples"] == len(recs) == n * r["num_problems"] == n * len(problems)
        assert r["pass@1"] == pytest.approx(sum(s["correct"] for s in recs) / len(recs))
        assert r["mean_tokens"] == pytest.approx(sum(s["tokens"] for s in recs) / len(recs))
        assert r["truncated_frac"] == pytest.approx(sum(s["truncated"] for s in recs) / len(recs))
        groups = [sorted(p, key=lambda s: s["sample"]) for p in problems.values()]
        maj = sum(majority_vote([s["extracted"] for s in g], [s["correct"] for s in g])[1] for g in groups)
        assert r["maj@n"] == pytest.approx(maj / len(groups))
        for k in range(1, n + 1):
            expected = sum(pass_at_k(n, sum(s["correct"] for s in g), k) for g in groups) / len(groups)
            assert r["pass@k"][str(k)] == pytest.approx(expected)
        assert r["generated_tokens"] == sum(s["tokens"] for s in recs)


def test_cli_two_models_end_to_end(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    out = tmp_path / "eval"
    local = _local_jsonl(tmp_path)
    cmd = [sys.executable, "-m", "rl.commands.cli", "eval", "--models", f"base={tiny_model_dir}", f"tuned={copy}",
           "--benchmarks", "task:overthink", str(local), "--limit", "3", "--max-new-tokens", "8", "--n", "2",
           "--temperature", "1.0", "--output-dir", str(out), "--task-examples", "10", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| model | benchmark | problems | pass@1 | maj@2 | pass@2 |" in proc.stdout
    assert "problem/s" in proc.stderr or "s/problem" in proc.stderr  # the progress bar's rate
    for name in ("results.json", "samples.jsonl", "results.md", "run_config.json"):
        assert (out / name).is_file(), name
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "results.md").read_text().strip() in proc.stdout

    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["benchmark"]) for r in results] == [
        ("base", "task:overthink"), ("base", "mine"), ("base", "overall"),
        ("tuned", "task:overthink"), ("tuned", "mine"), ("tuned", "overall")]
    samples = _samples(out)
    assert len(samples) == 2 * 2 * 3 * 2
    for s in samples:
        for key in ("model", "benchmark", "problem", "sample", "extracted", "correct", "tokens", "completion"):
            assert key in s
    _check_results_match_samples(results, samples, n=2)
    assert results[2]["num_problems"] == 6 and results[0]["n"] == 2 and results[0]["temperature"] == 1.0
    # the copy has the same weights: with per-sample seeds the completions are the same too
    by_model = {m: {(s["benchmark"], s["problem"], s["sample"]): s["completion"] for s in samples if s["model"] == m}
                for m in ("base", "tuned")}
    assert by_model["base"] == by_model["tuned"]
    assert _strip_timing(results[:3]) == [
        {**r, "model": "base", "model_path": str(tiny_model_dir)} for r in _strip_timing(results[3:])]


class CountingFactory:
    """Loads the tiny model like the CLI does and remembers what was generated."""

    def __init__(self):
        self.loaded: list[str] = []
        self.generators: list[EvalGenerator] = []

    def __call__(self, spec):
        from rl.eval.run import load_model_for_eval

        self.loaded.append(spec.name)
        model, tok = load_model_for_eval(spec, device="cpu")
        gen = EvalGenerator(model, tok)
        self.generators.append(gen)
        return gen, tok

    @property
    def generated_problems(self) -> int:
        return sum(g.generated_problems for g in self.generators)


def _args(model_dir, out, local, *extra):
    return ["--models", f"a={model_dir}", f"b={model_dir}", "--benchmarks", "task:overthink", str(local),
            "--limit", "3", "--task-examples", "10", "--n", "2", "--temperature", "1.0", "--max-new-tokens", "8",
            "--output-dir", str(out), "--no-progress", *extra]


def test_resume_generates_only_missing_problems_and_matches_uninterrupted_run(tiny_model_dir, tmp_path, capsys):
    local = _local_jsonl(tmp_path)
    full = tmp_path / "full"
    f0 = CountingFactory()
    assert evaluate_script.main(_args(tiny_model_dir, full, local, "--batch-size", "4"), generator_factory=f0) == 0
    assert f0.loaded == ["a", "b"] and f0.generated_problems == 12

    # an "interrupted" run: model a finished problems 0 and 2 of the task and half of problem 1,
    # nothing of the file benchmark; model b finished everything; the last write was cut short
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(full / "run_config.json", part / "run_config.json")
    lines = (full / "samples.jsonl").read_text().splitlines()
    keep = []
    for line in lines:
        s = json.loads(line)
        if s["model"] == "b" or (s["benchmark"] == "task:overthink" and (s["problem"] in (0, 2) or s["sample"] == 0)):
            keep.append(line)
    (part / "samples.jsonl").write_text("\n".join(keep) + "\n" + lines[-1][: len(lines[-1]) // 2])

    f1 = CountingFactory()
    assert evaluate_script.main(_args(tiny_model_dir, part, local, "--batch-size", "1"), generator_factory=f1) == 0
    assert f1.loaded == ["a"]  # b was finished: not even loaded
    assert f1.generated_problems == 1 + 3  # task problem 1 (half done = not done) + the 3 file problems
    assert [g.calls for g in f1.generators] == [4]

    full_results = json.loads((full / "results.json").read_text())
    part_results = json.loads((part / "results.json").read_text())
    assert _strip_timing(part_results) == _strip_timing(full_results)

    def key_set(out):
        return sorted((s["model"], s["benchmark"], s["problem"], s["sample"], s["completion"], s["correct"])
                      for s in _samples(out))

    assert key_set(part) == key_set(full)  # no duplicates, nothing lost, same completions

    # running a finished evaluation again generates nothing and gives the same results
    f2 = CountingFactory()
    assert evaluate_script.main(_args(tiny_model_dir, part, local), generator_factory=f2) == 0
    assert f2.loaded == [] and _strip_timing(json.loads((part / "results.json").read_text())) == _strip_timing(full_results)
    assert "nothing to generate" in capsys.readouterr().err


def test_resume_refuses_other_settings_unless_overwrite(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    local = _local_jsonl(tmp_path)
    base = ["--models", str(tiny_model_dir), "--benchmarks", str(local), "--limit", "1", "--max-new-tokens", "4",
            "--output-dir", str(out), "--no-progress"]
    assert evaluate_script.main(base) == 0
    with pytest.raises(EvalError, match=r"other settings \(temperature: 0.6 -> 0.7\)"):
        evaluate_script.main(base + ["--temperature", "0.7"])
    assert evaluate_script.main(base + ["--temperature", "0.7", "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())[0]["temperature"] == 0.7
    assert not (out / "accuracy_vs_tokens.png").exists()  # one model: no plot


def test_lora_adapter_and_wandb_logging(tiny_model_dir, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from rl.modeling import load_model

    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(load_model(str(tiny_model_dir)),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(adapter))  # a fresh LoRA is the identity (B = 0)

    logged = []

    class FakeTracker:
        def __init__(self, output_dir, report_to, total_steps, config=None, run_name=None, **kw):
            logged.append(("init", run_name, config))

        def log(self, step, metrics):
            logged.append(("log", step, metrics))

        def close(self):
            logged.append(("close",))

    import rl.tracking

    monkeypatch.setattr(rl.tracking, "Tracker", FakeTracker)
    out = tmp_path / "eval"
    argv = ["--models", f"base={tiny_model_dir}", f"lora={tiny_model_dir}", "--adapter", "none", str(adapter),
            "--benchmarks", "task:overthink", "--limit", "2", "--task-examples", "4", "--max-new-tokens", "6",
            "--temperature", "0", "--output-dir", str(out), "--no-progress", "--report-to", "console,wandb"]
    assert evaluate_script.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["adapter"] for r in results] == [None, None, str(adapter), str(adapter)]
    samples = _samples(out)
    base = [s["completion"] for s in samples if s["model"] == "base"]
    assert base and base == [s["completion"] for s in samples if s["model"] == "lora"]
    assert logged[0][0] == "init" and logged[-1] == ("close",)
    metrics = logged[1][2]
    assert metrics["eval/lora/task:overthink/pass@1"] == results[2]["pass@1"]
    assert "eval/base/overall/mean_tokens" in metrics


def test_shared_benchmarks_through_the_cli(tiny_model_dir, tmp_path):
    data = _require_shared_data() / "benchmarks"
    out = tmp_path / "eval"
    argv = ["--models", str(tiny_model_dir), "--benchmarks", "aime24", "gpqa", "--data-dir", str(data),
            "--limit", "2", "--max-new-tokens", "4", "--batch-size", "8", "--output-dir", str(out), "--no-progress"]
    assert evaluate_script.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["benchmark"], r["grading"], r["num_problems"]) for r in results] == [
        ("aime24", "math", 2), ("gpqa", "choice", 2), ("overall", "mixed", 4)]
    assert {s["ground_truth"] for s in _samples(out) if s["benchmark"] == "aime24"} == {"33", "23"}


def test_user_errors_are_one_line(tiny_model_dir, tmp_path):
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(EvalError, match=r"^--engine vllm: the vllm package is not installed"):
            evaluate_script.main(["--models", str(tiny_model_dir), "--benchmarks", "task:overthink", "--engine", "vllm",
                                  "--output-dir", str(tmp_path / "v"), "--limit", "1"])
    with pytest.raises(EvalError, match="--benchmarks"):
        evaluate_script.main(["--models", str(tiny_model_dir), "--output-dir", str(tmp_path / "x")])
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "--models", str(tiny_model_dir),
                           "--benchmarks", "aime99", "--output-dir", str(tmp_path / "y")],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown benchmark 'aime99'") and "Traceback" not in proc.stderr
