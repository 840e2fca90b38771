"""Training and evaluation read a row the same way: one ground-truth reader and one prompt
renderer (issue 10, defect 8).

The training side is what the GRPO trainer runs (``GRPOTrainer._prompt_ids`` to render,
``score_completions`` with the row's columns and the ``accuracy`` reward to score); the
evaluation side is what ``parsimony eval`` / ``evaluate_dataset`` run (``rows_to_problems`` or
the dataset rows, rendered and graded inside ``evaluate_problems``), through an engine that
records the prompt ids it is given and answers with fixed completions.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from rewards.math import AccuracyReward, MathGrader
from rl.eval.benchmarks import rows_to_problems
from rl.eval.evaluate import evaluate_dataset
from rl.grpo_trainer import GRPOTrainer
from rl.rewarding import score_completions
from rollout.types import Trajectory


class FixedEngine:
    """Answers every prompt with the next completion text; records the prompt ids."""

    def __init__(self, tokenizer, texts):
        self.tokenizer = tokenizer
        self.texts = list(texts)
        self.prompts: list[list[int]] = []

    def generate(self, prompt_ids, n, sampling):
        out = []
        for ids in prompt_ids:
            self.prompts.append(list(ids))
            text = self.texts.pop(0)
            comp = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append([Trajectory(prompt_ids=list(ids), completion_ids=comp, text=text) for _ in range(n)])
        return out

    def sync_weights(self, model):
        pass


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=1) as g:
        yield g


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from rl.modeling import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


ROWS = [  # list-valued ground truths: several accepted answers
    {"prompt": [{"role": "user", "content": "Compute left to right: 1+2"}], "reward_model": {"ground_truth": ["3", "4"]}},
    {"prompt": [{"role": "user", "content": "Compute left to right: 2*2"}], "reward_model": {"ground_truth": ["3", "4"]}},
    {"prompt": [{"role": "user", "content": "Compute left to right: 2+3"}], "reward_model": {"ground_truth": ["3", "4"]}},
    {"prompt": "Compute left to right: 9-4", "answer": [5.0]},
    {"prompt": "Compute left to right: 9-5", "ground_truth": ["4", "four"]},
]
# a dataset has the same columns in every row (None where a row has no value)
ROWS = [{"prompt": r["prompt"], "reward_model": r.get("reward_model"), "answer": r.get("answer"),
         "ground_truth": r.get("ground_truth")} for r in ROWS]
COMPLETIONS = ["so \\boxed{3}", "so \\boxed{4}", "so \\boxed{5}", "so \\boxed{5}", "so \\boxed{four}"]
EXPECTED = [1.0, 1.0, 0.0, 1.0, 1.0]


def _training_scores(rows, completions, grader):
    reward = AccuracyReward(grader=grader)
    scores, _, _, _ = score_completions(
        [reward], ["accuracy"], [1.0], prompts=[r["prompt"] for r in rows], completions=completions,
        completion_ids=[[1] for _ in rows], rows=rows, pop_metrics=False,
    )
    return [float(x) for x in scores["accuracy"]]


def test_list_ground_truth_same_verdict_in_training_and_evaluation(tok, grader):
    train = _training_scores(ROWS, COMPLETIONS, grader)
    res = evaluate_dataset(None, tok, ROWS, engine=FixedEngine(tok, COMPLETIONS), grader=grader, max_new_tokens=8)
    evals = [1.0 if s["correct"] else 0.0 for s in sorted(res["samples"], key=lambda s: s["problem"])]
    assert train == EXPECTED
    assert evals == EXPECTED


def test_list_ground_truth_same_verdict_through_rows_to_problems(tok, grader):
    """``parsimony eval`` on a file (rows_to_problems, default and explicit answer column)."""
    problems = rows_to_problems(ROWS)
    assert problems[0].answer == ["3", "4"] and problems[3].answer == "5"
    res = evaluate_dataset(None, tok, problems, engine=FixedEngine(tok, COMPLETIONS), grader=grader, max_new_tokens=8)
    assert [1.0 if s["correct"] else 0.0 for s in sorted(res["samples"], key=lambda s: s["problem"])] == EXPECTED
    explicit = rows_to_problems(ROWS[:3], answer_column="reward_model.ground_truth")
    assert [p.answer for p in explicit] == [["3", "4"]] * 3


def _training_prompt(tok, row, system_prompt=None):
    fake = SimpleNamespace(tokenizer=tok, args=SimpleNamespace(system_prompt=system_prompt, max_prompt_length=4096))
    return GRPOTrainer._prompt_ids(fake, [row])[0]


def _eval_prompt(tok, row, system_prompt=None):
    engine = FixedEngine(tok, ["\\boxed{1}"])
    evaluate_dataset(None, tok, [dict(row, answer="1")], engine=engine, system_prompt=system_prompt, max_new_tokens=4)
    return engine.prompts[0]


@pytest.mark.parametrize("system_prompt", [None, "Be brief."])
@pytest.mark.parametrize("template", [True, False])
@pytest.mark.parametrize("prompt", [
    [{"role": "user", "content": "Compute left to right: 3+4*2"}],
    "Compute left to right: 3+4*2",
    [{"role": "system", "content": "Think."}, {"role": "user", "content": "Compute left to right: 1+1"}],
])
def test_same_row_same_prompt_in_training_and_evaluation(tok, prompt, template, system_prompt):
    """The same row is the same prompt (ids) for the GRPO rollouts and for evaluation, with
    and without a chat template (a base model's tokenizer has none)."""
    t = tok if template else copy.copy(tok)
    if not template:
        t.chat_template = None
    row = {"prompt": prompt}
    assert _training_prompt(t, row, system_prompt) == _eval_prompt(t, row, system_prompt)
