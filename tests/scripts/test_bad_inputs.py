"""Bad input on the command line, in a recipe or in the data ends in one ``error:`` line and exit code 2,
before any model loads and with nothing written (issue 31 items 5-12); the flags follow one syntax."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rl.commands.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model (or a tokenizer) fails the test: every bad input must be caught before. The
    trainers are imported first, so that the modules bound to the loaders keep the real ones after."""
    import rl.grpo_trainer  # noqa: F401
    import rl.modeling
    import rl.sft_trainer  # noqa: F401

    def refuse(*a, **k):
        raise AssertionError("a model was loaded")

    for name in ("load_model", "load_tokenizer"):
        real = getattr(rl.modeling, name)
        for mod_name, module in list(sys.modules.items()):
            if mod_name.split(".")[0] in ("rl", "curriculum") and getattr(module, name, None) is real:
                monkeypatch.setattr(module, name, refuse)


def one_error_line(capsys, argv: list[str]) -> str:
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def recipe(tmp_path: Path, text: str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BASE = "model: m\ndataset: task:overthink\nnum_generations: 2\nper_device_train_batch_size: 4\n"

# (recipe text, extra flags, what the error line names): held-out variants of the bad inputs
BAD_TRAIN = [
    (BASE + "learning_rate: [1\n", [], "not valid YAML"),                             # 7: malformed YAML
    ("- model: m\n", [], "must hold a mapping"),                                      # 7: not a mapping
    (BASE, ["--dataset", "task:overthnik"], "unknown task 'overthnik' (did you mean 'overthink'?)"),  # 8
    (BASE.replace("task:overthink", "task:nope"), [], "dataset: unknown task 'nope'"),  # 8, in the recipe
    (BASE, ["--eval_dataset", "task:explor"], "eval_dataset: unknown task"),           # 8
    (BASE + "max_steps: 2.5\n", [], "max_steps: expects a whole number, got 2.5"),    # 10
    (BASE.replace("num_generations: 2", "num_generations: 2.5"), [], "num_generations: expects a whole number"),
    (BASE + "bf16: maybe\n", [], "bf16: expects true or false"),                      # 10
    (BASE + "temperature: hot\n", [], "temperature: expects a number"),               # 10
    (BASE + "reward_weights: [1, two]\n", [], "reward_weights[1]: expects a number"), # 10
    (BASE + "method_kwargs: 3\n", [], "method_kwargs: must be a mapping"),              # 10
    (BASE + "num_generation: 4\n", [], "'num_generation' (did you mean 'num_generations'?)"),
    (BASE, ["--temperatur", "0.5"], "--temperatur (did you mean '--temperature'?)"),  # 6: no abbreviations
    (BASE, ["--learning_rat", "1e-5"], "--learning_rat (did you mean '--learning_rate'?)"),
    (BASE, ["--temperature", "-0.5"], "temperature: must be > 0, got -0.5"),           # 6: a negative value
    (BASE, ["--learning_rate", "-1e-5"], "learning_rate: must be >= 0, got -1e-05"),   # 6: in exponent form too
    (BASE, ["--max_steps", "many"], "--max_steps"),                                    # 6: one line, no usage dump
    (BASE + "loss_type: sapo\n", [], "loss_type: 'sapo'"),                             # 13
    (BASE + "num_train_epochs: 2\n", [], "num_train_epochs=2: use max_steps"),         # 13
    (BASE + "vllm_mode: remote\n", [], "vllm_mode: colocate | server"),                # 13
    (BASE + "use_vllm: true\nengine: hf\n", [], "use_vllm: means engine: 'vllm'"),     # 13
    (BASE + "max_steps: -1\n", [], "max_steps: -1"),                                   # 13
    (BASE + "push_to_hub: true\n", [], "push_to_hub=True"),                            # 13
    (BASE.replace("model: m\n", ""), [], "model: is required"),                        # 14: the CLI needs it
]


@pytest.mark.parametrize("text, flags, message", BAD_TRAIN)
@pytest.mark.parametrize("dry", [True, False])
def test_bad_train_input_is_one_line_before_any_model(text, flags, message, dry, tmp_path, capsys, no_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--config", recipe(tmp_path, text), "--output_dir", str(tmp_path / "out"), *flags]
    line = one_error_line(capsys, argv + (["--dry_run"] if dry else []))
    assert message in line, line
    assert not (tmp_path / "out").exists()


BAD_DATA = [
    (["--dataset", "missing.parquet"], "does not exist"),
    (["--dataset", "dd", "--dataset_split", "validation"], "a DatasetDict without split 'validation'"),  # 12
    (["--dataset", "rows.jsonl", "--dataset_kwargs", '{"prompt_column": "query"}'], "prompt_column 'query'"),  # 15
    (["--dataset", "rows.jsonl", "--dataset_kwargs", '{"digits": 3}'], "dataset_kwargs ['digits'] are a task's"),
]


@pytest.mark.parametrize("flags, message", BAD_DATA)
def test_bad_data_is_one_line_before_any_model(flags, message, tmp_path, capsys, no_model, monkeypatch):
    import datasets

    monkeypatch.chdir(tmp_path)
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "1+1?", "answer": "2"}])}).save_to_disk("dd")
    Path("rows.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "so #### 2"}) + "\n")
    capsys.readouterr()
    argv = ["train", "--config", recipe(tmp_path, BASE), "--output_dir", str(tmp_path / "out"), *flags]
    assert message in one_error_line(capsys, argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["sft", "--model", "m", "--max_length", "12.5"], "--max_length"),
    (["sft", "--model", "m", "--dataset", "task:overthnk", "--dry_run"], "unknown task 'overthnk'"),
    (["eval", "--models", "m", "--benchmarks", "aime99"], "unknown benchmark 'aime99'"),
    (["eval", "--models", "m", "--benchmarks", "task:overthink", "--tempreature", "0"], "did you mean '--temperature'"),
    (["eval", "--models", "m", "--benchmarks", "task:overthink", "--n", "two"], "argument --n"),
    (["score-difficulty", "--dataset", "task:overthink", "--scorer", "nope"], "invalid choice: 'nope'"),
    (["trian"], "unknown command 'trian' (did you mean 'train'?)"),
    (["evaluate"], "unknown command 'evaluate'"),
])
def test_other_commands_one_line(argv, message, capsys, no_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in one_error_line(capsys, argv)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("assignment, message", [
    ("sft.max_stepz=8", "sft: unknown key(s) ['max_stepz']"),          # 11
    ("sft.max_steps=abc", "sft: max_steps: expects a whole number"),   # 11
    ("rl.num_generations=3.5", "rl: num_generations: expects a whole number"),
    ("rl.dataset_split=7", None),                                      # a number where a string goes: read as text
    ("rl.method=nope", "rl: "),
    ("eval.max_new_tokens=lots", "eval.max_new_tokens: expects a whole number"),
    ("score.scorer=oracle", "invalid choice: 'oracle'"),
])
@pytest.mark.parametrize("dry", [True, False])
def test_pipeline_sets_checked_before_any_stage(assignment, message, dry, tmp_path, capsys, no_model):
    out = tmp_path / "p"
    argv = ["pipeline", "--config", str(REPO / "recipes/dereason/tiny.yaml"), "--out", str(out), "--set", assignment]
    if message is None:
        assert cli(argv + ["--dry_run"]) == 0
        return
    assert message in one_error_line(capsys, argv + (["--dry_run"] if dry else []))
    assert not out.exists()


# --- the flag syntax (item 6) ----------------------------------------------------------------------

def test_both_spellings_lists_with_spaces_or_commas_and_negative_numbers(capsys):
    import yaml

    base = ["train", "--config", str(REPO / "recipes/grpo/tiny.yaml"), "--dry_run"]
    assert cli(base + ["--report-to", "console", "jsonl", "--lora_target_modules=q_proj,v_proj",
                       "--max-steps", "3", "--epsilon_high", "0.3", "--adam_beta1", "-0.5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["report_to"] == ["console", "jsonl"] and cfg["lora_target_modules"] == ["q_proj", "v_proj"]
    assert cfg["max_steps"] == 3 and cfg["epsilon_high"] == 0.3 and cfg["adam_beta1"] == -0.5
    assert cli(base + ["--report_to", "console,jsonl", "--config=" + str(REPO / "recipes/grpo/tiny.yaml")]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["report_to"] == ["console", "jsonl"]


def test_argparse_commands_take_both_spellings_and_comma_lists():
    from rl.commands.evaluate import build_parser
    from rl.commands.score_difficulty import build_parser as score_parser
    from rl.experiments.compare import parse_args as compare_args

    a = build_parser().parse_args(["--models", "a", "b", "--benchmarks", "aime24,math500", "amc23", "--top_p", "0.9",
                                   "--report_to", "console", "wandb", "--temperature", "-1e-5", "--max_new_tokens", "8"])
    assert a.models == ["a", "b"] and a.benchmarks == ["aime24", "math500", "amc23"] and a.top_p == 0.9
    assert a.report_to == "console,wandb" and a.temperature == -1e-5 and a.max_new_tokens == 8
    s = score_parser().parse_args(["--dataset", "task:overthink", "--scorer", "column", "--judge-url", "http://x:1",
                                  "--out", "x"])
    assert s.judge_url == "http://x:1"
    c = compare_args(["--methods", "grpo", "decs", "--report_to", "jsonl,console"])
    assert c.methods == "grpo,decs" and c.report_to == "jsonl,console"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--models", "a", "--bench", "math500"])  # no prefix abbreviations


def test_help_shows_the_flags_every_doc_uses():
    for cmd, flags in (("train", ("--config", "--dry_run", "--role")), ("sft", ("--config", "--dry_run"))):
        out = subprocess.run([sys.executable, "-m", "rl.commands.cli", cmd, "--help"], capture_output=True, text=True,
                             cwd=REPO, timeout=120).stdout
        for flag in flags:
            assert f"\n  {flag} " in out, (cmd, flag)


def test_version_and_a_mistyped_command():
    out = subprocess.run([sys.executable, "-m", "rl.commands.cli", "--version"], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("parsimony ")
    out = subprocess.run([sys.executable, "-m", "rl.commands.cli", "trian"], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: parsimony: unknown command 'trian' (did you mean 'train'?); `parsimony --help` lists the commands"]


def test_a_yaml_scalar_reward_list_is_one_item(capsys, tmp_path):
    import yaml

    assert cli(["train", "--config", recipe(tmp_path, BASE + "reward_funcs: accuracy\n"), "--dry_run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["reward_funcs"] == ["accuracy"]
    assert cli(["train", "--config", recipe(tmp_path, BASE + "reward_funcs: accuracy, format\n"), "--dry_run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["reward_funcs"] == ["accuracy", "format"]
