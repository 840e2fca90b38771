"""The evaluation core: seeded sampling, generation + grading, the in-memory API and the
evaluation during training."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from rl.eval.benchmarks import Benchmark, EvalProblem, load_benchmark
from rl.eval.evaluate import (
    EvalError,
    EvalGenerator,
    EvalSettings,
    SeededSampler,
    evaluate_benchmark,
    evaluate_dataset,
    evaluate_problems,
    render_eval_prompt,
    sample_key,
    stream_uniform,
)
from rl.eval.run import parse_model_specs
from rollout.types import Trajectory


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from rl.modeling import load_model, load_tokenizer

    return load_model(str(tiny_model_dir)).eval(), load_tokenizer(str(tiny_model_dir))


# ---------------------------------------------------------------------------------------
# seeded sampling
# ---------------------------------------------------------------------------------------


def test_stream_uniform_is_deterministic_and_in_range():
    k = sample_key(0, "aime24", 3, 1)
    assert k == sample_key(0, "aime24", 3, 1)
    assert len({k, sample_key(1, "aime24", 3, 1), sample_key(0, "aime25", 3, 1), sample_key(0, "aime24", 4, 1),
                sample_key(0, "aime24", 3, 2)}) == 5
    us = [stream_uniform(k, t) for t in range(2000)]
    assert all(0.0 <= u < 1.0 for u in us)
    assert abs(sum(us) / len(us) - 0.5) < 0.03
    assert us == [stream_uniform(k, t) for t in range(2000)]


def _call(sampler, scores, start_len=5, step=0):
    ids = torch.zeros((scores.shape[0], start_len), dtype=torch.long)
    if step:
        sampler(ids, scores)  # first call fixes the prompt length
        ids = torch.zeros((scores.shape[0], start_len + step), dtype=torch.long)
    out = sampler(ids, scores)
    assert torch.isfinite(out).sum(-1).eq(1).all()  # exactly one allowed token per row
    return out.argmax(-1)


def test_seeded_sampler_matches_the_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    keys = [sample_key(0, "b", i, 0) for i in range(4000)]
    scores = probs.log().repeat(len(keys), 1)
    picks = _call(SeededSampler(keys, temperature=1.0), scores)
    freq = torch.bincount(picks, minlength=4).float() / len(keys)
    assert torch.allclose(freq, probs, atol=0.03), freq
    # temperature 0.5 squares the probabilities (then renormalises)
    sharp = probs**2 / (probs**2).sum()
    freq = torch.bincount(_call(SeededSampler(keys, temperature=0.5), scores), minlength=4).float() / len(keys)
    assert torch.allclose(freq, sharp, atol=0.03), freq
    # top-k 2 keeps the two best tokens
    freq = torch.bincount(_call(SeededSampler(keys, 1.0, top_k=2), scores), minlength=4).float() / len(keys)
    assert freq[:2].sum() == 0 and abs(freq[3] - 4 / 7) < 0.03
    # top-p 0.5: 0.4 alone is below 0.5, so 0.3 is kept too
    freq = torch.bincount(_call(SeededSampler(keys, 1.0, top_p=0.5), scores), minlength=4).float() / len(keys)
    assert freq[:2].sum() == 0 and abs(freq[3] - 4 / 7) < 0.03
    freq = torch.bincount(_call(SeededSampler(keys, 1.0, top_p=0.35), scores), minlength=4).float() / len(keys)
    assert freq[3] == 1.0


def test_seeded_sampler_rows_do_not_depend_on_their_batch():
    torch.manual_seed(0)
    scores = torch.randn(6, 50)
    keys = [sample_key(7, "x", i, j) for i in range(3) for j in range(2)]
    full = _call(SeededSampler(keys, 0.8, top_p=0.9), scores)
    for r in range(6):
        alone = _call(SeededSampler([keys[r]], 0.8, top_p=0.9), scores[r : r + 1])
        assert alone.item() == full[r].item()
    # a different step of the same stream draws again
    steps = {_call(SeededSampler([keys[0]] * 1, 1.0), torch.zeros(1, 50), step=s).item() for s in range(1, 30)}
    assert len(steps) > 5
    with pytest.raises(RuntimeError, match="rows"):
        SeededSampler(keys[:2], 1.0)(torch.zeros((3, 4), dtype=torch.long), torch.zeros(3, 50))


# ---------------------------------------------------------------------------------------
# generation + grading with a scripted engine (no model)
# ---------------------------------------------------------------------------------------


class CharTokenizer:
    chat_template = None

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


class ScriptedEngine:
    """Returns the scripted completions of each prompt (identified by its text)."""

    def __init__(self, script, tool_calls=False):
        self.script = script
        self.tool_calls = tool_calls
        self.prompts_seen: list[str] = []

    def generate(self, prompt_ids, n, sampling):
        groups = []
        for g, ids in enumerate(prompt_ids):
            prompt = "".join(chr(i) for i in ids)
            self.prompts_seen.append(prompt)
            texts = self.script[prompt]
            assert len(texts) == n
            groups.append([
                Trajectory(prompt_ids=list(ids), completion_ids=list(range(len(t.split()))), text=t,
                           finish_reason="length" if t.endswith("...") else "stop", group_index=g,
                           meta={"tool_calls": j} if self.tool_calls else {})
                for j, t in enumerate(texts)
            ])
        return groups

    def sync_weights(self, model):
        pass


def test_math_grading_records_and_summary():
    problems = [EvalProblem(0, "What is 2+2?", "4"), EvalProblem(1, "Half of 1?", "\\frac{1}{2}"),
                EvalProblem(2, "Skip me", "0")]
    engine = ScriptedEngine({
        "What is 2+2?": ["so \\boxed{4}", "hmm \\boxed{5}", "The answer is 4"],
        "Half of 1?": ["it is 1/2 so \\boxed{0.5}", "thinking ...", "\\boxed{\\dfrac{1}{2}}"],
    }, tool_calls=True)
    got = []
    settings = EvalSettings(n=3, temperature=1.0, batch_size=3)
    records = evaluate_problems(problems, generator=EvalGenerator(engine=engine), tokenizer=CharTokenizer(),
                                settings=settings, benchmark="toy", model_name="m", done={2}, on_records=got.append)
    assert engine.prompts_seen == ["What is 2+2?", "Half of 1?"]  # problem 2 was done already
    assert len(got) == 2 and sum(len(b) for b in got) == 6  # one batch per problem (3 sequences each)
    by = {(r["problem"], r["sample"]): r for r in records}
    assert [by[(0, j)]["correct"] for j in range(3)] == [True, False, True]
    assert [by[(1, j)]["correct"] for j in range(3)] == [True, False, True]
    assert by[(0, 1)]["extracted"] == "5" and by[(0, 1)]["status"] == "wrong"
    assert by[(1, 1)]["truncated"] and by[(1, 1)]["finish_reason"] == "length"
    assert by[(0, 0)]["tokens"] == 2 and by[(1, 2)]["tool_calls"] == 2
    assert all(r["model"] == "m" and r["benchmark"] == "toy" and r["gen_seconds"] > 0 for r in records)
    assert by[(1, 0)]["completion"] == "it is 1/2 so \\boxed{0.5}"

    from rl.eval.metrics import summarize_samples

    s = summarize_samples(records)
    assert s["pass@1"] == pytest.approx(2 / 3) and s["maj@n"] == 1.0 and s["mean_tool_calls"] == 1.0
    assert s["pass@k"]["3"] == 1.0 and s["truncated_frac"] == pytest.approx(1 / 6)


def test_choice_grading_for_gpqa_style_benchmarks():
    prompt = "Which?\nA) 1\nB) 2\nC) 3\nD) 4\nPut the answer after ANSWER:"
    bench = Benchmark("gpqa", [EvalProblem(0, prompt, "B) 2")], mode="choice")
    engine = ScriptedEngine({prompt: ["ANSWER: B", "ANSWER: A", "I pick (B)", "\\boxed{2}"]})
    records = evaluate_benchmark(bench, generator=EvalGenerator(engine=engine), tokenizer=CharTokenizer(),
                                 settings=EvalSettings(n=4, temperature=1.0))
    assert [r["correct"] for r in records] == [True, False, True, False]
    assert [r["extracted"] for r in records] == ["B", "A", "B", None]
    assert "tool_calls" not in records[0]


def test_render_eval_prompt(tiny):
    _, tok = tiny
    msgs = [{"role": "user", "content": "Compute: 1 + 2"}]
    text = render_eval_prompt(tok, msgs)
    assert text.startswith("<|im_start|>user\nCompute: 1 + 2<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert render_eval_prompt(tok, "Compute: 1 + 2") == text
    assert "<|im_start|>system\nBe brief.<|im_end|>" in render_eval_prompt(tok, msgs, "Be brief.")
    assert render_eval_prompt(tok, msgs, chat_template=False) == "Compute: 1 + 2"
    assert render_eval_prompt(tok, "Q", "S", chat_template=False) == "S\n\nQ"
    assert render_eval_prompt(CharTokenizer(), msgs) == "Compute: 1 + 2"  # no template: raw text


# ---------------------------------------------------------------------------------------
# the tiny model
# ---------------------------------------------------------------------------------------


def _completions(records):
    return {(r["problem"], r["sample"]): (r["completion"], r["tokens"]) for r in records}


def test_results_do_not_depend_on_batch_composition_or_resume_point(tiny):
    model, tok = tiny
    bench = load_benchmark("task:overthink", task_num_examples=5, seed=1)
    base = dict(n=2, temperature=1.0, top_p=0.95, max_new_tokens=10, seed=11)

    def run(batch_size, done=frozenset(), **over):
        gen = EvalGenerator(model, tok)
        recs = evaluate_benchmark(bench, generator=gen, tokenizer=tok, settings=EvalSettings(batch_size=batch_size,
                                  **{**base, **over}), done=set(done))
        return _completions(recs), gen.calls

    a, calls_a = run(2)  # one problem per generate call
    b, calls_b = run(64)  # everything in one call
    assert (calls_a, calls_b) == (5, 1)
    assert a == b and len(a) == 10
    assert len({a[(p, 0)][0] for p in range(5)} | {a[(p, 1)][0] for p in range(5)}) > 5  # samples differ
    c, calls_c = run(6, done={0, 3})  # a resumed run: other batches, other padding
    assert calls_c == 1 and set(c) == {(p, s) for p in (1, 2, 4) for s in (0, 1)}
    assert all(a[k] == v for k, v in c.items())
    d, _ = run(64, seed=12)
    assert d != a
    g1, _ = run(1, temperature=0.0, n=1)
    g2, _ = run(64, temperature=0.0, n=1)
    assert g1 == g2


def test_evaluate_dataset_keeps_its_keys(tiny):
    from curriculum.tasks import get_task_dataset

    model, tok = tiny
    ds = get_task_dataset("overthink", 3, seed=1, split="test")
    res = evaluate_dataset(model, tok, ds, n_samples=2, greedy=False, temperature=1.0, max_new_tokens=8,
                           batch_size=4, text_metrics={"chars": len})
    for key in ("accuracy", "mean_tokens", "median_tokens", "mean_tokens_correct", "mean_tokens_incorrect",
                "truncated_frac", "num_problems", "num_samples", "seconds", "tokens_per_second", "chars",
                "maj@n", "pass@k", "samples"):
        assert key in res, key
    assert res["num_problems"] == 3 and res["num_samples"] == 6 and len(res["samples"]) == 6
    for s in res["samples"]:
        for key in ("index", "completion", "ground_truth", "extracted", "correct", "status", "tokens", "truncated"):
            assert key in s
    assert res["accuracy"] == pytest.approx(sum(s["correct"] for s in res["samples"]) / 6)
    assert res["mean_tokens"] == pytest.approx(sum(s["tokens"] for s in res["samples"]) / 6)
    assert res["chars"] == pytest.approx(sum(len(s["completion"]) for s in res["samples"]) / 6)
    assert isinstance(res["mean_tokens_correct"], float)  # 0.0 when nothing is correct (legacy)
    again = evaluate_dataset(model, tok, ds, n_samples=2, greedy=False, temperature=1.0, max_new_tokens=8, batch_size=2)
    assert [s["completion"] for s in again["samples"]] == [s["completion"] for s in res["samples"]]


def test_evaluation_during_training(tiny, tmp_path):
    from rl.eval.training import attach_eval, eval_benchmarks_for

    model, tok = tiny
    path = tmp_path / "extra.jsonl"
    path.write_text(json.dumps({"prompt": "Compute left to right: 1 + 2", "answer": "3"}) + "\n")
    cfg = SimpleNamespace(eval_dataset=None, dataset="task:overthink", eval_num_examples=3, seed=0, dataset_kwargs={},
                          max_completion_length=6, system_prompt=None, eval_steps=1)
    benches = eval_benchmarks_for(cfg)
    assert [b.name for b in benches] == ["task:overthink"] and len(benches[0]) == 3

    fns, lines = [], []
    trainer = SimpleNamespace(is_main=True, unwrapped_model=model, tokenizer=tok, global_step=4,
                              log_line=lines.append, set_eval_fn=fns.append)
    attach_eval(trainer, cfg)
    metrics = fns[0]()
    assert set(metrics) >= {"accuracy", "mean_tokens", "truncated_frac", "num_problems"}
    assert metrics["num_problems"] == 3 and all(isinstance(v, float) for v in metrics.values())
    assert lines and lines[0].startswith("[eval] step 4: task:overthink: accuracy")

    # evaluation leaves training's random stream alone (it seeds torch per batch inside a fork)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fns[0]()
    assert torch.equal(torch.rand(3), expected)

    cfg.eval_dataset = f"task:overthink,{path}"
    fns.clear()
    attach_eval(trainer, cfg)
    metrics = fns[0]()
    assert metrics["extra/num_problems"] == 1 and metrics["task:overthink/num_problems"] == 3
    assert metrics["accuracy"] == pytest.approx((metrics["extra/accuracy"] + metrics["task:overthink/accuracy"]) / 2)

    cfg.eval_dataset, cfg.dataset = None, "some/hub-id"
    assert eval_benchmarks_for(cfg) is None
    fns.clear()
    attach_eval(trainer, cfg)
    assert not fns and "evaluation is off" in lines[-1]


def _require_shared_data():
    # tests/conftest.py by path: `import conftest` may resolve to another directory's conftest
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_parsimony_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.require_shared_data()


def test_training_eval_names_shared_benchmarks():
    from rl.eval.training import eval_benchmarks_for

    _require_shared_data()
    cfg = SimpleNamespace(eval_dataset="math500, gpqa", dataset="task:overthink", eval_num_examples=2, seed=0,
                          dataset_kwargs={})
    benches = eval_benchmarks_for(cfg)
    assert [(b.name, len(b), b.mode) for b in benches] == [("math500", 2, "math"), ("gpqa", 2, "choice")]


def test_parse_model_specs():
    specs = parse_model_specs(["outputs/sft/final", "grpo=outputs/grpo/final", "Qwen/Qwen2.5-Math-1.5B", "x/final"],
                              ["none", "ad", "none", "none"])
    assert [(s.name, s.path, s.adapter) for s in specs] == [
        ("sft-final", "outputs/sft/final", None), ("grpo", "outputs/grpo/final", "ad"),
        ("Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-Math-1.5B", None), ("x-final", "x/final", None)]
    assert [s.name for s in parse_model_specs(["a/m", "b/m"])] == ["m", "m-2"]
    assert [s.adapter for s in parse_model_specs(["a", "b"], ["lora"])] == ["lora", "lora"]
    with pytest.raises(EvalError, match="one per model"):
        parse_model_specs(["a", "b", "c"], ["x", "y"])
    with pytest.raises(EvalError):
        EvalSettings(n=0)
    with pytest.raises(EvalError):
        EvalSettings(top_p=0)
