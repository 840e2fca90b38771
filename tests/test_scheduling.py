"""tests/scheduling.py: the parallel pass starts the longest test files first, from measured seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.scheduling import UNKNOWN_SECONDS, longest_files_first

REPO = Path(__file__).resolve().parents[1]


def test_files_go_longest_first_and_each_file_stays_together_in_order():
    ids = ["a.py::t1", "b.py::t1", "a.py::t2", "c.py::t1", "b.py::t2", "d.py::t1"]
    seconds = {"a.py": 5.0, "b.py": 300.0, "c.py": 30.0}  # d.py unmeasured: counts UNKNOWN_SECONDS
    order = [ids[i] for i in longest_files_first(ids, seconds)]
    assert UNKNOWN_SECONDS == 60.0
    assert order == ["b.py::t1", "b.py::t2", "d.py::t1", "c.py::t1", "a.py::t1", "a.py::t2"]
    # nothing measured: the collection order, files kept together
    assert [ids[i] for i in longest_files_first(ids, {})] == ["a.py::t1", "a.py::t2", "b.py::t1", "b.py::t2",
                                                               "c.py::t1", "d.py::t1"]


def test_a_recorded_run_writes_each_files_seconds_and_the_next_collection_follows_them(tmp_path):
    (tmp_path / "test_fast.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_c():\n    time.sleep(0.3)\n")
    durations = tmp_path / "durations.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), PARSIMONY_DURATIONS_FILE=str(durations))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tests.scheduling", "-p", "no:cacheprovider", str(tmp_path)]

    def run(*extra, record):
        return subprocess.run(cmd + list(extra), cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**env, "PARSIMONY_RECORD_DURATIONS": "1" if record else "0"})

    listed = run("--collect-only", record=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.index("test_fast.py::test_a") < listed.stdout.index("test_slow.py::test_c")
    assert not durations.exists()  # only a recorded run writes
    done = run(record=True)
    assert done.returncode == 0, done.stdout + done.stderr
    seconds = json.loads(durations.read_text())
    assert set(seconds) == {"test_fast.py", "test_slow.py"} and seconds["test_slow.py"] >= 0.3 > seconds["test_fast.py"]
    listed = run("--collect-only", record=False)
    assert listed.stdout.index("test_slow.py::test_c") < listed.stdout.index("test_fast.py::test_a")


def test_with_measured_seconds_an_xdist_run_follows_them_not_xdists_most_tests_first(tmp_path):
    # xdist's loadfile scheduler puts the file with most tests first unless its reordering is off;
    # the plugin turns it off when there are measured seconds, so the one-test slow file runs first
    (tmp_path / "test_many.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n\ndef test_c():\n    pass\n")
    (tmp_path / "test_slow.py").write_text("def test_d():\n    pass\n")
    durations = tmp_path / "durations.json"
    cmd = [sys.executable, "-m", "pytest", "-v", "-n", "1", "--dist", "loadfile", "-p", "tests.scheduling", "-p",
           "no:cacheprovider", str(tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(REPO), PARSIMONY_DURATIONS_FILE=str(durations), PARSIMONY_RECORD_DURATIONS="0")

    def first_run():
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.index("test_slow.py::test_d") < done.stdout.index("test_many.py::test_a")

    assert not first_run()  # nothing measured: xdist's own order, the file with most tests first
    durations.write_text(json.dumps({"test_slow.py": 100.0, "test_many.py": 1.0}))
    assert first_run()
