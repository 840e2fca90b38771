"""A method plugin installed beside parsimony shows up through the ``parsimony.methods``
entry points, with no parsimony file changed: the package of docs/extending.md is written to
tmp_path, installed with pip into its own directory, and used from a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "extending.md"


def doc_files() -> dict[str, str]:
    """The fenced blocks of docs/extending.md whose info string names a file (``file=<path>``)."""
    text = DOC.read_text()
    files = {m.group(1): m.group(2) for m in re.finditer(r"```\w+ file=(\S+)\n(.*?)```", text, flags=re.S)}
    assert {"pyproject.toml", "parsimony_brief/__init__.py", "parsimony_brief/method.py"} <= set(files), sorted(files)
    return files


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin_src")
    for rel, body in doc_files().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(body)
    site = tmp_path_factory.mktemp("plugin_site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    eps = list(site.glob("parsimony_brief-*.dist-info/entry_points.txt"))
    assert eps and "parsimony.methods" in eps[0].read_text()
    return site


def _env(site: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rl.commands.cli", *args], capture_output=True, text=True, env=_env(site),
                          cwd=cwd, timeout=300)


@pytest.mark.slow
def test_installed_plugin_is_listed_and_resolves(plugin_site, tmp_path):
    proc = _cli(plugin_site, "methods", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout)
    assert info["plugin_errors"] == {}
    brief = info["methods"]["brief"]
    assert brief["module"] == "parsimony_brief.method"
    assert (brief["reward_funcs"], brief["advantage_estimator"], brief["loss_composition"]) == (
        ["brief_accuracy"], "brief_dr", "brief_single")
    assert info["rewards"]["brief_accuracy"]["settings"] == {"brief_alpha": 0.2}
    assert info["advantage estimators"]["brief_dr"]["settings"] == {"brief_adv_scale": 1.0}
    assert "brief_single" in info["compositions"]
    assert "decs" in info["methods"] and "decs_kappa" in info["samplers"]  # the built-ins are still there

    text = _cli(plugin_site, "methods", cwd=tmp_path).stdout
    assert "brief  [parsimony_brief.method]" in text and "brief_accuracy" in text

    # a tiny config with method: brief resolves (dry run: no model, no dataset)
    recipe = tmp_path / "brief.yaml"
    recipe.write_text("model: /no/such/model\nmethod: brief\nnum_generations: 2\nper_device_train_batch_size: 4\n")
    proc = _cli(plugin_site, "train", "--config", str(recipe), "--dry_run", "--method_kwargs", '{"brief_alpha": 0.5}',
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["method"] == "brief" and cfg["reward_funcs"] == ["brief_accuracy"]
    assert cfg["advantage_estimator"] == "brief_dr" and cfg["loss_composition"] == "brief_single"
    assert cfg["method_kwargs"] == {"brief_alpha": 0.5, "brief_adv_scale": 1.0}
    # the plugin's settings are validated like the built-ins'
    proc = _cli(plugin_site, "train", "--config", str(recipe), "--dry_run", "--method_kwargs", '{"brief_alpah": 0.5}',
                cwd=tmp_path)
    assert proc.returncode == 2
    assert "brief_alpah" in proc.stderr and "brief_alpha" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(plugin_site, "train", "--config", str(recipe), "--dry_run", "--method_kwargs", '{"brief_alpha": 3}',
                cwd=tmp_path)
    assert proc.returncode == 2 and "brief_alpha: must be a number in [0, 1]" in proc.stderr
    # without the plugin on the path, the method is unknown: nothing of it lives in parsimony
    env = _env(plugin_site)
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", "--config", str(recipe), "--dry_run"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "unknown method 'brief'" in proc.stderr


@pytest.mark.slow
def test_plugin_method_trains_one_step(plugin_site, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    proc = _cli(plugin_site, "train", "--model", str(tiny_model_dir), "--method", "brief", "--output_dir", str(out),
                "--max_steps", "1", "--dataset_num_examples", "16", "--num_generations", "2",
                "--per_device_train_batch_size", "4", "--max_completion_length", "8", "--report_to", "jsonl",
                "--save_final", "false", "--disable_progress_bar", "true", "--learning_rate", "1e-3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and any(k.startswith("rewards/brief_accuracy") for k in rows[-1])
