"""``parsimony pipeline``: the DeReason stages end to end on the tiny model, skipped when done,
resumed mid-stage after an interruption, refused when a finished stage's settings changed."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from rl.methods.dereason_pipeline import load_recipe, main, score_argv
from rl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

TINY = [
    "data.num_examples=120",
    "threads=0",
    "sft.max_steps=6", "sft.per_device_train_batch_size=8", "sft.save_steps=2", "sft.warmup_steps=1",
    "rl.max_steps=2", "rl.per_device_train_batch_size=4", "rl.num_generations=2", "rl.max_completion_length=16",
    "rl.warmup_steps=0", "rl.save_steps=1",
    "eval.num_examples=12", "eval.max_new_tokens=16", "eval.models=[sft, rl]",
]


def run(out: Path, model: Path, *extra: str) -> int:
    argv = ["--config", str(REPO / "recipes/dereason/tiny.yaml"), "--out", str(out), "--set", f"model={model}"]
    for s in TINY + list(extra):
        argv += ["--set", s]
    return main(argv)


def sft_weights(out: Path):
    from safetensors.torch import load_file

    return load_file(str(out / "sft" / "final" / "model.safetensors"))


def test_the_recipe_resolves():
    recipe = load_recipe(str(REPO / "recipes/dereason/tiny.yaml"), [])
    assert recipe["data"]["dataset"] == "task:mixed" and recipe["split"] == {"rl_fraction": 0.1}
    argv = score_argv(recipe, Path("/o"), "m")
    assert argv[:4] == ["--dataset", "task:mixed", "--out", "/o"]
    assert "--rl_fraction" in argv and "--column" in argv
    assert main(["--config", str(REPO / "recipes/dereason/tiny.yaml"), "--dry_run"]) == 0


def test_the_scale_recipe_resolves():
    recipe = load_recipe(str(REPO / "recipes/dereason/qwen3-4b-base.yaml"), [])
    assert recipe["score"]["scorer"] == "judge"
    from rl.config import GRPOConfig, SFTConfig
    from rl.methods.dereason import build_config

    build_config(SFTConfig, recipe["sft"], "sft", model="m", dataset="d", output_dir="o")
    build_config(GRPOConfig, recipe["rl"], "rl", model="m", dataset="d", output_dir="o")


@pytest.mark.parametrize(
    "sets, message",
    [
        (["colour=1"], r"unknown key\(s\) \['colour'\]"),
        (["split.threshold=4"], "exactly one of threshold or rl_fraction"),
        (["score.temprature=0"], r"score: unknown key\(s\) \['temprature'\]"),
        (["data.sizes=3"], r"data: unknown key\(s\) \['sizes'\]"),
        (["sft=3"], "sft must be a mapping"),
    ],
)
def test_bad_recipes_name_the_key(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(str(REPO / "recipes/dereason/tiny.yaml"), sets)


def test_an_unknown_stage_field_names_the_section(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"sft: unknown key\(s\) \['max_stepz'\]"):
        run(tmp_path / "o", tiny_model_dir, "sft.max_stepz=3")


def test_pipeline_runs_skips_and_resumes_mid_stage(tmp_path, tiny_model_dir, monkeypatch, capsys):
    # an uninterrupted run, for reference
    ref = tmp_path / "ref"
    assert run(ref, tiny_model_dir) == 0
    state = json.loads((ref / "pipeline.json").read_text())
    assert [state[s]["status"] for s in ("model", "score", "sft", "rl", "eval")] == ["given", "done", "done", "done", "done"]
    report = json.loads((ref / "score" / "report.json").read_text())
    assert report["split"]["rl"] == 12 and report["split"]["sft"] == 108  # the hardest 10%
    assert report["split"]["rl_counts"] == {"4": 12}  # all from the three-step component
    results = json.loads((ref / "eval" / "results.json").read_text())["results"]
    assert set(results) == {"sft", "rl"}
    assert results["rl"]["greedy"]["n_hard"] + results["rl"]["greedy"]["n_easy"] == 12
    out = capsys.readouterr().out
    assert "| stage | status | seconds | output |" in out and "| model | decoding | accuracy | easy | hard |" in out

    # the same run, interrupted by SIGTERM during SFT step 3: the trainer saves checkpoint-3 and exits
    from rl.sft_trainer import SFTTrainer

    original = SFTTrainer.on_step_end

    def interrupting(self, metrics):
        original(self, metrics)
        if self.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(SFTTrainer, "on_step_end", interrupting)
    run_dir = tmp_path / "run"
    assert run(run_dir, tiny_model_dir) == 130
    state = json.loads((run_dir / "pipeline.json").read_text())
    assert state["score"]["status"] == "done" and state["sft"]["status"] == "interrupted" and "rl" not in state
    assert (run_dir / "sft" / "checkpoint-3").is_dir() and not (run_dir / "sft" / "final").exists()
    monkeypatch.setattr(SFTTrainer, "on_step_end", original)
    capsys.readouterr()

    # re-run: score is skipped, SFT resumes at step 3, the rest runs
    assert run(run_dir, tiny_model_dir) == 0
    out = capsys.readouterr().out
    assert "[pipeline] stage sft: resumed" in out and "resumed from" in out and "at step 3" in out
    assert "[pipeline] stage score" not in out
    state = json.loads((run_dir / "pipeline.json").read_text())
    assert state["score"]["status"] == "skipped" and state["sft"]["status"] == "done"
    # exact resume: the resumed SFT model is the uninterrupted one, and so is everything after it
    a, b = sft_weights(ref), sft_weights(run_dir)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((run_dir / "eval" / "results.json").read_text())["results"] == results

    # a third run does nothing
    assert run(run_dir, tiny_model_dir) == 0
    state = json.loads((run_dir / "pipeline.json").read_text())
    assert all(state[s]["status"] in ("skipped", "given") for s in state)

    # a finished stage with changed settings is refused, naming the stage and the key
    with pytest.raises(ConfigError, match=r"stage sft: .* \(changed: \['max_steps'\]\)"):
        run(run_dir, tiny_model_dir, "sft.max_steps=7")


def test_cli_dispatch_lists_the_commands(capsys):
    from rl.commands.cli import main as cli_main

    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "pipeline" in out and "compare-schedules" in out


def test_stages_run_one_at_a_time(tmp_path, tiny_model_dir):
    out = tmp_path / "o"
    argv = ["--config", str(REPO / "recipes/dereason/tiny.yaml"), "--out", str(out), "--set", f"model={tiny_model_dir}"]
    for s in TINY:
        argv += ["--set", s]
    assert main(argv + ["--stages", "model,score"]) == 0
    state = json.loads((out / "pipeline.json").read_text())
    assert set(state) == {"model", "score"}
    with pytest.raises(ConfigError, match="stage sft is not complete; run it first"):
        main(argv + ["--stages", "eval"])
    with pytest.raises(ConfigError, match=r"unknown stage\(s\) \['train'\]"):
        main(argv + ["--stages", "train"])
    assert main(argv + ["--stages", "sft"]) == 0
    assert set(json.loads((out / "pipeline.json").read_text())) == {"model", "score", "sft"}
