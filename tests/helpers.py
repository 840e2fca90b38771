"""Helpers shared by tests of several packages: a closed local port, and a 2-process
``accelerate launch`` (torchrun, gloo) under a timeout that kills the whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` of a port that was free a moment ago: connections are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def launch_two_processes(script: str | Path, args: Sequence[str], timeout: float, port_seed: int = 0) -> tuple[int, str]:
    """``accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml script args`` -> (exit code,
    combined output). A run that outlives ``timeout`` (a collective one process never reaches) is
    killed with its children and fails the test with the log's tail."""
    env = dict(os.environ, WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_2proc.yaml"),
           "--main_process_port", str(20000 + (os.getpid() * 7 + port_seed) % 20000), str(script), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"the 2-process run hung (> {timeout} s):\n{log[-3000:]}")
    return proc.returncode, log
