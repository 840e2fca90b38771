"""``parsimony compare-schedules``: the five schedules' data sets, and a smoke run at equal tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.experiments.compare_schedules import SCHEDULES, main, schedule_sets

REPO = Path(__file__).resolve().parents[2]


def test_schedule_sets():
    rows = [{"extra_info": {"difficulty": d}} for d in [1, 4, 2, 5, 1, 1, 4, 2, 3, 1]]
    sets = schedule_sets(rows, threshold=4, seed=0)
    sft, rl = sets["dereason"]
    assert rl == [1, 3, 6] and sft == [0, 2, 4, 5, 7, 8, 9]
    r_sft, r_rl = sets["random"]
    assert (len(r_sft), len(r_rl)) == (7, 3) and sorted(r_sft + r_rl) == list(range(10))
    assert sets["random"] == schedule_sets(rows, 4, 0)["random"] != schedule_sets(rows, 4, 1)["random"]
    assert sets["all"] == (list(range(10)), list(range(10)))
    with pytest.raises(ValueError, match="row 1: no difficulty"):
        schedule_sets([{"extra_info": {"difficulty": 1}}, {"extra_info": {}}], 4, 0)
    with pytest.raises(ValueError, match="empty on one side"):
        schedule_sets(rows, threshold=6, seed=0)
    # the focused subset: the hardest 20%, ties (the three 4s) cut by the seeded shuffle
    f_sft, f_rl = schedule_sets(rows, seed=0, rl_fraction=0.2)["dereason"]
    assert 3 in f_rl and len(f_rl) == 2 and set(f_rl) <= {1, 3, 6} and sorted(f_sft + f_rl) == list(range(10))


@pytest.mark.slow
def test_compare_schedules_smoke(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "cmp"
    sets = ["data.num_examples=80", "threads=0", f"model={tiny_model_dir}",
            "sft.max_steps=4", "sft.per_device_train_batch_size=8", "sft.save_steps=0", "sft.warmup_steps=0",
            "rl.max_steps=2", "rl.per_device_train_batch_size=4", "rl.num_generations=2", "rl.max_completion_length=12",
            "rl.warmup_steps=0", "rl.save_steps=0", "eval.num_examples=8", "eval.max_new_tokens=8", "eval.decodings=[greedy]"]
    argv = ["--task", "mixed", "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary] == list(SCHEDULES)
    for r in summary:
        assert {"method", "accuracy", "accuracy_hard", "accuracy_easy", "train_tokens"} <= set(r)
    by = {r["method"]: r for r in summary}
    budget = json.loads((out / "budget.json").read_text())
    assert by["dereason"]["sft_tokens"] == budget["sft_tokens"] and by["dereason"]["rl_tokens"] == budget["rl_tokens"]
    assert by["dereason"]["sft_steps"] == 4 and by["dereason"]["rl_steps"] == 2
    assert by["sft_only"]["rl_tokens"] == 0 and by["rl_only"]["sft_tokens"] == 0
    # the token-budgeted GRPO stages spend at least their budget, and stop at the step that reaches it
    assert by["rl_only"]["rl_tokens"] >= budget["sft_tokens"] + budget["rl_tokens"]
    assert by["sft_then_rl"]["rl_tokens"] >= budget["rl_tokens"] and by["random_split"]["rl_tokens"] >= budget["rl_tokens"]
    # the two-stage schedules' SFT stages are evaluated on their own (what RL then added); one-stage ones are not
    for name in ("dereason", "sft_then_rl", "random_split"):
        stage = json.loads((out / name / "sft_eval.json").read_text())["greedy"]
        assert by[name]["sft_stage_accuracy"] == stage["accuracy"] and by[name]["sft_stage_accuracy_hard"] == stage["accuracy_hard"]
    assert by["sft_only"]["sft_stage_accuracy"] is None and not (out / "sft_only" / "sft_eval.json").exists()
    assert (out / "plot.png").stat().st_size > 0 and "| method | decoding |" in (out / "summary.md").read_text()
    assert "| dereason | greedy |" in capsys.readouterr().out
    # cached: a re-run trains nothing and writes the same summary
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert "starting fresh" not in capsys.readouterr().out
