"""Helpers shared by tests of several packages: a local HTTP server, a closed local port, and a 2-process
``accelerate launch`` (torchrun, gloo) under a timeout that kills the whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A local port that was free a moment ago (the OS's pick): a rendezvous port for ``accelerate
    launch`` that no other test, in this process or a parallel pytest worker, is using."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` of a port that was free a moment ago: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


def launch_two_processes(script: str | Path, args: Sequence[str], timeout: float, port_seed: int = 0,
                         config: str = "cpu_2proc.yaml") -> tuple[int, str]:  # port_seed: kept for callers
    """``accelerate launch --config_file recipes/accelerate/<config> script args`` -> (exit code,
    combined output); ``config`` e.g. ``fsdp2_cpu_2proc.yaml`` for FSDP2. A run that outlives
    ``timeout`` (a collective one process never reaches) is killed with its children and fails the
    test with the log's tail."""
    env = dict(os.environ, WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes/accelerate" / config),
           "--main_process_port", str(free_port()), str(script), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"the 2-process run hung (> {timeout} s):\n{log[-3000:]}")
    return proc.returncode, log


@contextlib.contextmanager
def local_http_server(handler: type, path: str = "", **state: Any) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 (a free port) serving ``handler`` from a daemon thread.
    ``state`` becomes attributes of the server (the handler reads them as ``self.server.<name>``),
    beside a ``lock`` and ``url`` (``http://127.0.0.1:<port>`` + ``path``). Clients that gave up
    (broken pipes) are not reported."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.handle_error = lambda request, client_address: None
    srv.lock = threading.Lock()
    for name, value in state.items():
        setattr(srv, name, value)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def require_redis_server() -> str:
    """The ``redis-server`` binary (``scripts/setup_env.sh`` installs Debian's): skip with the reason when
    it is missing, except under CI where that fails the test."""
    from rollout.mgrpo.store import redis_server_executable

    exe = redis_server_executable()
    if exe is None:
        reason = "redis-server is not installed (scripts/setup_env.sh installs Debian's redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return exe


def min_new_tokens_forces_every_length(engine, prompts):
    """Sampling at T 2 (vLLM's maximum) ends some of 64 completions early with eos; ``min_new_tokens`` =
    max makes every one exactly max tokens long (the benchmarks' equal-work setting)."""
    from rollout.types import SamplingConfig

    free = SamplingConfig(max_new_tokens=48, temperature=2.0)
    lengths = [len(t.completion_ids) for g in engine.generate(prompts, 16, free) for t in g]
    assert min(lengths) < 48, "the check needs completions that end early"
    forced = engine.generate(prompts, 16, SamplingConfig(max_new_tokens=48, temperature=2.0, min_new_tokens=48))
    assert all(len(t.completion_ids) == 48 and t.finish_reason == "length" for g in forced for t in g)
