"""The sandbox for model-written code, with hostile programs. Each case is contained and reported
as an error result (the episode goes on with an error observation). Under CI=true the
bubblewrap cases must run (bubblewrap is installed by scripts/setup_env.sh)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from rollout import sandbox
from rollout.sandbox import run_python

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bwrap_mode():
    why = sandbox._probe_bwrap(sandbox.python_runtime())
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but bubblewrap does not work: {why}")
        pytest.skip(f"bubblewrap unavailable: {why}")
    return "bwrap"


def _nobody_processes() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = os.stat(f"/proc/{d}")
                status = Path(f"/proc/{d}/status").read_text()
            except OSError:
                continue
            if st.st_uid == sandbox.NOBODY and "State:\tZ" not in status:
                out.append(int(d))
    return out


def test_output_is_captured(bwrap_mode):
    r = run_python("import sys\nprint(6 * 7)\nprint('warn', file=sys.stderr)", timeout=10, mode=bwrap_mode)
    assert r.ok and r.stdout == "42\n" and r.stderr == "warn\n" and r.isolation == "bwrap"
    r = run_python("raise ValueError('bad input')", timeout=10, mode=bwrap_mode)
    assert not r.ok and r.exit_code == 1 and "ValueError: bad input" in r.error


def test_no_network_even_to_localhost(bwrap_mode):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.time() + 6
        while time.time() < deadline:
            try:
                accepted.append(srv.accept())
            except (socket.timeout, OSError):
                pass

    th = threading.Thread(target=accept)
    th.start()
    code = f"import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('127.0.0.1', {port}))\nprint('connected')"
    r = run_python(code, timeout=10, mode=bwrap_mode)
    th.join()
    srv.close()
    assert not r.ok and "connected" not in r.stdout
    assert "ConnectionRefused" in r.error or "unreachable" in r.error.lower()
    assert accepted == []


def test_nothing_outside_tmp_is_writable(bwrap_mode, tmp_path):
    for target in ("/usr/evil", "/etc/evil", "/evil", str(tmp_path / "evil"), str(REPO / "evil")):
        r = run_python(f"open({target!r}, 'w').write('x')", timeout=10, mode=bwrap_mode)
        assert not r.ok and ("Read-only" in r.error or "No such file" in r.error or "Permission" in r.error), target
        assert not Path(target).exists()
    r = run_python("open('/tmp/a', 'w').write('x'); import os; print(os.getcwd(), open('/tmp/a').read())",
                   timeout=10, mode=bwrap_mode)
    assert r.ok and r.stdout == "/tmp x\n"


def test_home_project_and_secrets_are_not_visible(bwrap_mode, monkeypatch):
    secret = Path.home() / f".parsimony-sandbox-secret-{os.getpid()}"
    secret.write_text("TOP-SECRET")
    monkeypatch.setenv("PARSIMONY_TEST_SECRET", "TOKEN123")
    try:
        code = (f"import os\nprint(os.path.exists({str(REPO)!r}), os.path.exists({str(Path.home() / '.bashrc')!r}))\n"
                f"print('PARSIMONY_TEST_SECRET' in os.environ)\nprint(open({str(secret)!r}).read())")
        r = run_python(code, timeout=10, mode=bwrap_mode)
    finally:
        secret.unlink()
    assert r.stdout.startswith("False False\nFalse\n")
    assert not r.ok and "TOP-SECRET" not in r.stdout and "No such file" in r.error


def test_infinite_loop_is_stopped(bwrap_mode):
    t0 = time.time()
    # a busy loop hits the CPU limit (the wall clock may be first on a loaded machine)
    r = run_python("while True:\n    pass", timeout=2, mode=bwrap_mode)
    assert not r.ok and (r.timed_out or "CPU time limit" in r.error)
    assert time.time() - t0 < 6
    r = run_python("while True:\n    pass", timeout=30, cpu_seconds=1, mode=bwrap_mode)
    assert not r.ok and not r.timed_out and "CPU time limit exceeded" in r.error
    # a sleeping loop uses no CPU: the wall-clock timeout stops it
    t0 = time.time()
    r = run_python("import time\nwhile True:\n    time.sleep(1)", timeout=1.5, mode=bwrap_mode)
    assert r.timed_out and not r.ok and "timed out" in r.error
    assert time.time() - t0 < 6


def test_fork_loop_is_contained(bwrap_mode):
    t0 = time.time()
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    r = run_python(code, timeout=2, nproc=16, mode=bwrap_mode)
    assert not r.ok and (r.timed_out or "CPU time limit" in r.error)
    assert time.time() - t0 < 8
    time.sleep(0.5)
    assert _nobody_processes() == []  # the whole sandbox is gone
    r = run_python("import os\npids = []\nfor i in range(64):\n    pids.append(os.fork())\n    if pids[-1] == 0: os._exit(0)",
                   timeout=10, nproc=8, mode=bwrap_mode)
    assert not r.ok and "BlockingIOError" in r.error  # the process limit bites


def test_huge_allocation_fails_cleanly(bwrap_mode):
    r = run_python("x = bytearray(10 * 1024 ** 3)", timeout=10, memory_mb=512, mode=bwrap_mode)
    assert not r.ok and "MemoryError" in r.error and not r.timed_out


def test_huge_print_is_truncated(bwrap_mode):
    t0 = time.time()
    r = run_python("import sys\nsys.stdout.write('x' * (100 * 1024 * 1024))\nprint('done', file=sys.stderr)",
                   timeout=20, memory_mb=1024, output_limit=1000, mode=bwrap_mode)
    assert r.ok and r.truncated and r.stdout.startswith("x" * 1000) and len(r.stdout) < 1100
    assert r.stderr == "done\n"
    assert time.time() - t0 < 15


def test_python_tool_turns_failures_into_observations(bwrap_mode):
    from rollout.episodes import Turn
    from rollout.tools import ToolEnvironment

    env = ToolEnvironment(tools=["python"])
    env.reset({"prompt": "q"})
    for code, expect in (("print(2 ** 10)", "1024"), ("x = bytearray(10 * 1024 ** 3)", "MemoryError"),
                         ("import socket; socket.create_connection(('127.0.0.1', 22), timeout=2)", "Error")):
        import json

        text = "<tool_call>" + json.dumps({"name": "python", "arguments": {"code": code}}) + "</tool_call>"
        res = env.step(Turn(text=text, ids=[], index=0, finish_reason="stop"))
        assert not res.done and expect in res.observation[0]["content"]
    assert env.episode_meta()["tool_calls"] == 3


def test_fallback_without_namespaces_is_logged_and_still_limits(monkeypatch, caplog):
    monkeypatch.delenv("PARSIMONY_SANDBOX", raising=False)
    monkeypatch.setattr(sandbox, "_MODE", None)
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda python: "no namespaces here")
    with caplog.at_level(logging.WARNING, logger="rollout.sandbox"):
        assert sandbox.sandbox_mode() == "rlimits"
    assert "WEAKER" in caplog.text
    r = run_python("print(1 + 1)", timeout=10, mode="rlimits")
    assert r.ok and r.stdout == "2\n" and r.isolation == "rlimits"
    r = run_python("import socket\nsocket.socket()", timeout=10, mode="rlimits")
    assert not r.ok and "network access is disabled" in r.error
    r = run_python("x = bytearray(10 * 1024 ** 3)", timeout=10, mode="rlimits")
    assert not r.ok and "MemoryError" in r.error
    r = run_python("import time\nwhile True: time.sleep(1)", timeout=1, mode="rlimits")
    assert r.timed_out
    r = run_python("while True: pass", timeout=30, cpu_seconds=1, mode="rlimits")
    assert not r.ok and "CPU time limit exceeded" in r.error
