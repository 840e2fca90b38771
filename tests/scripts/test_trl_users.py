"""Coming from TRL (issue 31 items 13-17): TRL's config names, its Python API and reward contract, data
columns as GSM8K and MATH store them, and TRL's metric names. TRL 1.16 is installed beside us."""

from __future__ import annotations

from types import SimpleNamespace

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rl.config import GRPOConfig, SFTConfig
from rl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = dict(per_device_train_batch_size=4, num_generations=2, max_completion_length=8, max_steps=1)


# --- 13: the config vocabulary ---------------------------------------------------------------------

@pytest.mark.parametrize("loss_type, mode", [("dapo", "token-mean"), ("bnpo", "token-mean"),
                                             ("grpo", "seq-mean-token-mean"), ("dr_grpo", "seq-mean-token-sum-norm")])
def test_trl_loss_types_are_our_aggregation(loss_type, mode):
    cfg = GRPOConfig(model="m", loss_type=loss_type, **TINY)
    assert cfg.loss_agg_mode == mode and cfg.loss_type == "clipped"
    assert GRPOConfig(model="m", loss_type="cispo", **TINY).loss_type == "cispo"  # ours too
    with pytest.raises(ConfigError, match="loss_type: 'sapo'.*coming-from-trl"):
        GRPOConfig(model="m", loss_type="sapo", **TINY)


def test_trl_vllm_and_reward_names():
    cfg = GRPOConfig(model="m", use_vllm=True, vllm_mode="server", vllm_server_base_url="http://h:9000/",
                     vllm_importance_sampling_cap=2.0, scale_rewards=False, log_completions=True,
                     steps_per_generation=1, **TINY)
    assert (cfg.engine, cfg.rollout_mode, cfg.server_url, cfg.vllm_is_cap, cfg.scale_rewards) == (
        "vllm", "server", "http://h:9000", 2.0, "none")
    assert GRPOConfig(model="m", scale_rewards=True, **TINY).scale_rewards == "group"
    assert GRPOConfig(model="m", vllm_importance_sampling_correction=False, **TINY).vllm_is_cap == 0.0
    cfg = GRPOConfig(model="m", reward_funcs=["accuracy_reward", "think_format_reward"], **TINY)
    assert cfg.reward_funcs == ["accuracy", "think_format"]
    # epochs: TRL's max_steps > 0 wins over them; alone they are refused with the pointer to max_steps
    assert GRPOConfig(model="m", num_train_epochs=3, **TINY).max_steps == 1
    with pytest.raises(ConfigError, match="num_train_epochs=3: use max_steps"):
        GRPOConfig(model="m", num_train_epochs=3, per_device_train_batch_size=4, num_generations=2)
    with pytest.raises(ConfigError, match="steps_per_generation=4"):
        GRPOConfig(model="m", steps_per_generation=4, **TINY)
    assert SFTConfig(model="m", num_train_epochs=2, max_seq_length=64).max_length == 64  # SFT has epochs


def trl_yaml(tmp_path: Path, model: Path, data: Path, **extra) -> Path:
    """A `trl grpo --config` recipe, written with TRL 1.16's documented names (GRPOConfig, ScriptArguments,
    ModelConfig); the hub ids are local paths (no network here)."""
    recipe = {
        "model_name_or_path": str(model), "dataset_name": str(data), "dataset_train_split": "train",
        "reward_funcs": ["accuracy_reward"], "output_dir": str(tmp_path / "out"), "learning_rate": 1.0e-6,
        "lr_scheduler_type": "linear", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
        "num_generations": 2, "max_completion_length": 8, "max_steps": 2, "use_vllm": False, "vllm_mode": "colocate",
        "loss_type": "dapo", "scale_rewards": True, "beta": 0.0, "epsilon": 0.2, "log_completions": False,
        "logging_steps": 1, "logging_strategy": "steps", "save_strategy": "steps", "save_steps": 500,
        "report_to": ["none"], "bf16": False, "gradient_checkpointing": False, "seed": 42, "dtype": "float32",
        "disable_dropout": True, "shuffle_dataset": True, **extra,
    }
    path = tmp_path / "trl_grpo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def deepmath_rows(path: Path, n: int = 8) -> Path:
    """trl-lib/DeepMath-103K's layout: a chat prompt and the answer in `solution`."""
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {a + 1}? Answer in \\boxed{{}}."}],
            "solution": str(2 * a + 1)} for a in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_trl_yaml_resolves_and_runs(tmp_path, tiny_model_dir, capsys):
    from rl.commands.cli import main as cli

    path = trl_yaml(tmp_path, tiny_model_dir, deepmath_rows(tmp_path / "deepmath.jsonl"))
    assert cli(["train", "--config", str(path), "--dry_run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["model"], cfg["engine"], cfg["loss_agg_mode"], cfg["scale_rewards"], cfg["reward_funcs"]) == (
        str(tiny_model_dir), "hf", "token-mean", "group", ["accuracy"])
    assert cli(["train", "--config", str(path), "--report_to", "jsonl", "--disable_progress_bar"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    # 16: TRL's metric names beside ours
    for key in ("completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std", "learning_rate",
                "reward", "reward_std", "rewards/accuracy/mean", "clip_ratio/region_mean", "grad_norm", "entropy"):
        assert key in rows[-1], key
    assert rows[-1]["learning_rate"] == rows[-1]["lr"]


def test_a_trl_yaml_with_what_we_lack_fails_on_one_line_with_the_mapping(tmp_path, tiny_model_dir, capsys):
    from rl.commands.cli import main as cli

    path = trl_yaml(tmp_path, tiny_model_dir, tmp_path / "d.jsonl", loss_type="luspo", max_steps=-1,
                    push_to_hub=True, num_train_epochs=1)
    assert cli(["train", "--config", str(path), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: TRL setting(s)")
    for part in ("push_to_hub=True", "num_train_epochs=1: use max_steps", "loss_type: 'luspo'", "max_steps: -1",
                 "docs/coming-from-trl.md"):
        assert part in err[0], part
    # TRL's names on the command line too
    assert cli(["train", "--config", str(path), "--loss_type", "grpo", "--max_steps", "3", "--push_to_hub", "false",
                "--vllm-mode", "colocate", "--use_vllm", "--dry_run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["loss_agg_mode"], cfg["max_steps"], cfg["engine"]) == ("seq-mean-token-mean", 3, "vllm")


# --- 14: the Python API and the reward contract ----------------------------------------------------

TRL_DOC_EXAMPLE = '''
# TRL 1.16's documented GRPO example (GRPOTrainer's docstring in trl/trainer/grpo_trainer.py), with the import
# line changed; the hub ids are local paths here (no network), and args keep the run to 2 tiny steps.
from rl.grpo_trainer import GRPOConfig, GRPOTrainer  # was: from trl import GRPOTrainer
from trl.rewards import accuracy_reward
from datasets import load_dataset

dataset = load_dataset("json", data_files="{data}", split="train")  # was: load_dataset("trl-lib/DeepMath-103K", ...)

trainer = GRPOTrainer(
    model="{model}",  # was: "Qwen/Qwen2.5-0.5B-Instruct"
    reward_funcs=accuracy_reward,
    train_dataset=dataset,
    args=GRPOConfig(output_dir="{out}", max_steps=2, per_device_train_batch_size=4, num_generations=2,
                    max_completion_length=8, report_to="jsonl", logging_steps=1, disable_progress_bar=True),
)
trainer.train()
'''


def test_trls_documented_example_runs_with_its_own_reward(tmp_path, tiny_model_dir):
    script = tmp_path / "train_grpo.py"
    out = tmp_path / "out"
    script.write_text(TRL_DOC_EXAMPLE.format(data=deepmath_rows(tmp_path / "d.jsonl"), model=tiny_model_dir, out=out))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "rewards/accuracy_reward/mean" in rows[0]


def test_trls_tldr_example_runs_in_process(tmp_path, tiny_model_dir):
    """TRL's other documented example (docs: GRPO Trainer, quick start): a text dataset without answers
    (trl-lib/tldr's layout) and a length reward; GRPOConfig without model."""
    from datasets import Dataset

    from rl.grpo_trainer import GRPOConfig as Config, GRPOTrainer  # was: from trl import GRPOConfig, GRPOTrainer

    dataset = Dataset.from_list([{"prompt": f"Summarise post {i}: the cat sat on the mat.", "completion": "x"}
                                 for i in range(8)])

    def reward_len(completions, **kwargs):
        return [-abs(20 - len(completion)) for completion in completions]

    training_args = Config(output_dir=str(tmp_path / "Qwen2-0.5B-GRPO"), **TINY, report_to="none")
    trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=reward_len, args=training_args,
                          train_dataset=dataset)
    assert trainer.train()["global_step"] == 1
    assert training_args.model == str(tiny_model_dir)


def test_config_without_model_takes_the_trainers():
    cfg = GRPOConfig(output_dir="o", **TINY)  # TRL: the model is the trainer's argument
    assert cfg.model == ""


def test_rewards_get_trls_completions_and_the_trainer_state():
    from rl.rewarding import RewardState, score_completions

    seen = {}

    def trl_reward(completions, trainer_state, **kwargs):  # written for TRL
        seen["completions"], seen["state"] = completions, trainer_state
        return [float(len(c[0]["content"]) if isinstance(c, list) else len(c)) for c in completions]

    chat = [[{"role": "user", "content": "q"}], "a text prompt"]
    rewards, *_ = score_completions([trl_reward], ["r"], [1.0], chat, ["abc", "de"], [[1], [2]], [{}, {}],
                                    trainer_state=RewardState(3, 10))
    assert seen["completions"] == [[{"role": "assistant", "content": "abc"}], "de"]
    assert seen["state"].global_step == 3 and seen["state"].max_steps == 10
    assert rewards["r"] == [3.0, 2.0]


def test_built_in_rewards_score_both_forms_alike(math_grader_or_none=None):
    """Every built-in reward that reads text gets the same value from a chat completion as from its text."""
    from rl.presets import load_methods
    from rl.rewarding import chat_completions
    from rewards import REWARDS, get_reward_func

    load_methods()
    texts = ["so the answer is \\boxed{7}", "<think>hmm</think> \\boxed{3}", "no answer"]
    prompts = [[{"role": "user", "content": "What is 3 + 4?"}]] * 3
    columns = {"answer": ["7", "7", "7"], "meta": [{}, {}, {}], "target_length": [4, 4, 4]}
    ids = [[1] * 5, [1] * 6, [1] * 2]
    skip = {"decs_redundancy", "mgrpo_reward", "tool_call_penalty"}  # need a tokenizer / an episode / tool meta
    for name in sorted(set(REWARDS) - skip):
        fn_text, fn_chat = get_reward_func(name), get_reward_func(name)
        if name == "adapt_think":  # R_ref(x) is a required setting: measured at first sight here
            args = SimpleNamespace(method_kwargs={"adapt_think_ref_accuracy": "first_seen"}, num_generations=3)
            fn_text.setup(None, args)
            fn_chat.setup(None, args)
        a = fn_text(prompts=prompts, completions=texts, completion_ids=ids, **columns)
        b = fn_chat(prompts=prompts, completions=chat_completions(prompts, texts), completion_ids=ids, **columns)
        assert a == b, name


# --- 15: data columns -----------------------------------------------------------------------------

def test_gsm8k_and_math_columns_are_read(tmp_path):
    import datasets

    from curriculum.data import get_ground_truth, load_dataset_spec, validate_dataset

    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("\n".join(json.dumps({"question": f"q{i}", "answer": f"work\n#### {i},000"}) for i in range(3)))
    ds = load_dataset_spec(str(gsm))
    validate_dataset(ds)
    assert [r["prompt"] for r in ds] == ["q0", "q1", "q2"] and [get_ground_truth(r) for r in ds] == ["0000", "1000", "2000"]
    math = tmp_path / "math.parquet"
    datasets.Dataset.from_list([{"problem": "p", "solution": "So $x = \\boxed{\\frac{1}{2}}$.", "level": "1"}]).to_parquet(math)
    ds = load_dataset_spec(str(math))
    validate_dataset(ds)
    assert ds[0]["prompt"] == "p" and get_ground_truth(ds[0]) == "\\frac{1}{2}"
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"q": "x?", "gold": "5"}) + "\n")
    ds = load_dataset_spec(str(own), task_kwargs={"prompt_column": "q", "answer_column": "gold"})
    assert ds[0]["prompt"] == "x?" and get_ground_truth(ds[0]) == "5"


def test_a_saved_datasetdict_reads_the_split(tmp_path):
    import datasets

    from curriculum.data import load_dataset_spec

    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"prompt": "a", "answer": "1"}] * 3),
        "test": datasets.Dataset.from_list([{"prompt": "b", "answer": "2"}]),
    }).save_to_disk(tmp_path / "dd")
    assert len(load_dataset_spec(str(tmp_path / "dd"))) == 3
    test = load_dataset_spec(str(tmp_path / "dd"), split="test")
    assert test.column_names == ["prompt", "answer"] and test[0]["prompt"] == "b"


# --- 17: the page ---------------------------------------------------------------------------------

def test_the_page_maps_every_name_the_code_maps():
    from rl.trl_names import NOT_OURS, RENAMED, TRL_LOSS_TYPES, TRL_REWARDS

    page = (REPO / "docs/coming-from-trl.md").read_text()
    for name in [*RENAMED, *TRL_REWARDS, *NOT_OURS, "use_vllm", "vllm_mode", "scale_rewards"]:
        assert f"`{name}" in page, name
    for loss_type in TRL_LOSS_TYPES:
        assert f"`loss_type: {loss_type}`" in page, loss_type
    for default in ("seed", "logging_steps", "max_completion_length", "gradient_checkpointing", "adam_beta2",
                    "lr_scheduler_type", "save_steps", "optim"):
        assert f"`{default}`" in page, default
