"""Documented commands on a fresh clone (issue 31 items 1 and 2): a recipe that starts from a checkpoint
names the one command that builds it (header, docs, error), and the named benchmarks of
docs/evaluation.md are found without ``--data-dir``."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from curriculum.data import DatasetError
from rl.commands.cli import main as cli
from rl.training_run import recipe_path, start_command

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


def built_by(cmd: str) -> str:
    """The model folder a start command writes."""
    argv = shlex.split(cmd)
    flag = lambda name: argv[argv.index(name) + 1] if name in argv else None  # noqa: E731
    if argv[:2] == ["parsimony", "make-tiny-model"]:
        return flag("--out")
    if argv[:2] == ["parsimony", "sft"]:
        out = flag("--output_dir") or yaml.safe_load((REPO / recipe_path(argv)).read_text())["output_dir"]
        return f"{out}/final"
    if argv[:2] == ["parsimony", "compare"]:
        return f"{flag('--out')}/sft/final"
    raise AssertionError(f"unknown start command {cmd!r}")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_a_recipe_that_starts_from_a_checkpoint_names_the_command_that_builds_it(path):
    recipe = yaml.safe_load(path.read_text()) or {}
    model = str(recipe.get("model", ""))
    if not model.startswith("outputs/"):  # a hub id, an embedded model, or not a training recipe
        return
    cmd = start_command(path)
    assert cmd, f"{path}: header lacks '# start checkpoint: <command>'"
    assert built_by(cmd) == model, (cmd, model)


def test_the_missing_start_checkpoint_is_one_line_with_the_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fresh clone: no outputs/
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    assert cli(["train", "--config", "recipes/grpo/tiny.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: model: 'outputs/tiny-sft/final' does not exist yet: this recipe starts from the checkpoint "
                   "that `parsimony make-tiny-model --out outputs/tiny-model`, then `parsimony sft --config "
                   "recipes/sft/tiny.yaml` build; run them first (or pass --model PATH)"]
    assert cli(["sft", "--config", "recipes/sft/tiny.yaml"]) == 2
    assert "`parsimony make-tiny-model --out outputs/tiny-model` builds; run it first" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_the_docs_give_the_build_commands_in_order():
    readme = (REPO / "README.md").read_text()
    use = readme[readme.index("## Use"):]
    order = [use.index(c) for c in ("parsimony make-tiny-model --out outputs/tiny-model",
                                    "parsimony sft   --config recipes/sft/tiny.yaml",
                                    "parsimony train --config recipes/grpo/tiny.yaml")]
    assert order == sorted(order)
    assert "parsimony sft --config recipes/sft/tiny.yaml" in (REPO / "docs/grpo.md").read_text()


# --- item 2: the named benchmarks ------------------------------------------------------------------

@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """No shared data next to the repository, an empty cache, no $PARSIMONY_BENCHMARK_DIR."""
    import rl.eval.benchmark_data as data

    monkeypatch.delenv("PARSIMONY_BENCHMARK_DIR", raising=False)
    monkeypatch.setenv("PARSIMONY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "shared_dir", lambda: tmp_path / "no-shared")
    return tmp_path / "cache" / "benchmarks"


def test_a_named_benchmark_is_downloaded_once_into_the_cache(fresh_clone):
    from rl.eval.benchmarks import load_benchmark, load_registered

    calls = []

    def hub(name, split):
        calls.append((name, split))
        return [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "And 2 + 2?", "answer": 4}]

    bench = load_registered("math500", loader=hub)
    assert calls == [("HuggingFaceH4/MATH-500", "test")]
    assert (fresh_clone / "math" / "test.parquet").is_file()
    assert [p.answer for p in bench.problems] == ["2", "4"] and "\\boxed{}" in bench.problems[0].prompt[0]["content"]
    again = load_benchmark("math500")  # from the cache now: no loader needed
    assert [p.answer for p in again.problems] == ["2", "4"] and again.source.startswith(str(fresh_clone))


def test_a_benchmark_that_cannot_be_fetched_says_where_to_put_it(fresh_clone):
    from rl.eval.benchmarks import load_registered

    def offline(name, split):
        raise ConnectionError("Couldn't reach the Hub")

    with pytest.raises(DatasetError, match=r"aime24.*fetching HuggingFaceH4/aime_2024.*PARSIMONY_BENCHMARK_DIR"):
        load_registered("aime24", loader=offline)
    with pytest.raises(DatasetError, match=r"gpqa.*gpqa_diamond/test.parquet is in none of"):
        load_registered("gpqa")


def test_a_test_parquet_is_named_after_its_folder(tmp_path):
    import datasets

    from rl.eval.benchmarks import load_benchmark

    (tmp_path / "mybench").mkdir()
    datasets.Dataset.from_list([{"prompt": "1+1?", "answer": "2"}]).to_parquet(tmp_path / "mybench" / "test.parquet")
    assert load_benchmark(str(tmp_path / "mybench" / "test.parquet")).name == "mybench"
    (tmp_path / "aime2024").mkdir()  # a registered directory name: that benchmark's name and grading
    datasets.Dataset.from_list([{"prompt": "1+1?", "answer": "2"}]).to_parquet(tmp_path / "aime2024" / "test.parquet")
    assert load_benchmark(str(tmp_path / "aime2024" / "test.parquet")).name == "aime2024"


def test_the_evaluation_docs_commands_parse(fresh_clone):
    """Every `parsimony eval` command of docs/evaluation.md parses as written."""
    from rl.commands.evaluate import build_parser

    text = (REPO / "docs/evaluation.md").read_text().replace("\\\n", " ")
    commands = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("parsimony eval ")]
    assert len(commands) >= 5
    for cmd in commands:
        args = build_parser().parse_args(shlex.split(cmd.split(" #")[0])[2:])
        assert args.models
