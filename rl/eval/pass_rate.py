"""The ``pass_rate`` difficulty scorer: sample ``k`` answers per problem with the current model
(the HF engine of :mod:`rl.eval`), grade them, and map the pass rate to a 1-5 difficulty with
:func:`curriculum.dereason.difficulty.difficulty_from_pass_rate`. It lives here, not in ``curriculum``,
because it generates with the evaluation code (``curriculum`` never imports ``rl``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Sequence

from curriculum.dereason.difficulty import DifficultyScorer, Score, difficulty_from_pass_rate, row_prompt


# --- pass rate -----------------------------------------------------------------------------------
class PassRateScorer(DifficultyScorer):
    """``k`` sampled answers per problem from ``model`` (the HF engine of :mod:`rl.eval`), graded
    against the row's ground truth; difficulty = :func:`difficulty_from_pass_rate` of the pass rate.
    The sampling is seeded per problem text, so a problem gets the same samples whatever else is
    in the run (and a resumed run reproduces an uninterrupted one). ``engine``: any
    :class:`rollout.types.RolloutEngine` (e.g. vLLM) instead of HF ``generate`` on ``model``; it then
    samples with its own seeding."""

    name = "pass_rate"

    def __init__(
        self, model: Any, tokenizer: Any, *, k: int = 8, temperature: float = 1.0, top_p: float = 1.0,
        max_new_tokens: int = 256, batch_size: int = 64, seed: int = 0, system_prompt: str | None = None,
        mode: str = "math", model_name: str = "", engine: Any = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.model, self.tokenizer, self.k, self.engine = model, tokenizer, int(k), engine
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.batch_size, self.seed, self.system_prompt, self.mode = batch_size, seed, system_prompt, mode
        self.model_name = model_name or str(getattr(getattr(model, "config", None), "_name_or_path", "") or "model")

    def settings(self) -> dict[str, Any]:
        return {"model": self.model_name, "k": self.k, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed, "system_prompt": self.system_prompt,
                "mode": self.mode}

    def key_fields(self, row: dict) -> Any:
        from curriculum.data import get_ground_truth

        return {"prompt": row_prompt(row), "answer": get_ground_truth(row)}

    def score_many(self, rows: Sequence[dict]) -> Iterator[tuple[int, Score]]:
        from curriculum.data import get_ground_truth
        from rl.eval.benchmarks import EvalProblem
        from rl.eval.evaluate import evaluate_problems
        from rl.eval.generation import EvalGenerator, EvalSettings

        problems, position = [], {}
        for i, r in enumerate(rows):
            truth = get_ground_truth(r)
            if truth is None:
                yield i, Score(None, None, "no ground truth (reward_model.ground_truth, ground_truth or answer)")
                continue
            # a content-derived index seeds the samples (rl.eval.generation.sample_key)
            index = int(hashlib.sha256(json.dumps(row_prompt(r), sort_keys=True, default=str).encode()).hexdigest()[:8], 16)
            while index in position:
                index += 1
            position[index] = i
            problems.append(EvalProblem(index=index, prompt=row_prompt(r), answer=truth))
        if not problems:
            return
        settings = EvalSettings(n=self.k, temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                                batch_size=max(self.k, self.batch_size), seed=self.seed, system_prompt=self.system_prompt)
        generator = EvalGenerator(self.model, self.tokenizer) if self.engine is None else EvalGenerator(engine=self.engine)
        out: list[tuple[int, Score]] = []

        def sink(records: list[dict]) -> None:
            per: dict[int, list[bool]] = {}
            for rec in records:
                per.setdefault(rec["problem"], []).append(bool(rec["correct"]))
            for idx, correct in per.items():
                rate = sum(correct) / len(correct)
                raw = {"correct": int(sum(correct)), "k": len(correct), "pass_rate": rate}
                out.append((position[idx], Score(difficulty_from_pass_rate(rate), raw)))

        # batch by batch, so finished problems reach the cache while later ones are generated
        per_call = max(1, settings.batch_size // self.k)
        for start in range(0, len(problems), per_call):
            evaluate_problems(problems[start : start + per_call], generator=generator, tokenizer=self.tokenizer,
                              settings=settings, benchmark="difficulty", mode=self.mode, on_records=sink,
                              keep_completions=False)
            yield from out
            out.clear()
