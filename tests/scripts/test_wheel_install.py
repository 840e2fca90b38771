"""A regular (non-editable) wheel install has every subcommand: the command code lives in the
package (``rl/commands``), not in ``scripts/``, which a wheel does not ship."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_install_runs_subcommands_outside_the_repo(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = wheels.glob("parsimony_rl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rl/commands/train_grpo.py" in names and not any(n.startswith(("scripts/", "tests/")) for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # the wheel's packages come first on the path, ahead of the editable checkout
    env = dict(os.environ, PYTHONPATH=str(target), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    where = subprocess.run([sys.executable, "-c", "import rl, rl.commands; print(rl.__file__)"], cwd=outside, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target), where
    exe = target / "bin" / "parsimony"
    assert exe.is_file()
    proc = subprocess.run([sys.executable, str(exe), "make-tiny-model", "--out", str(outside / "m")], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["parameters"] > 0 and (outside / "m" / "config.json").is_file()
    helps = subprocess.run([sys.executable, str(exe), "train", "--help"], cwd=outside, env=env, capture_output=True,
                           text=True, timeout=300)
    assert helps.returncode == 0 and "--num_generations" in helps.stdout
