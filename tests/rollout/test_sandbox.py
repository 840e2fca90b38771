"""The sandbox for model-written code, with hostile programs. Each case is contained and reported
as an error result (the episode goes on with an error observation). Under CI=true the
bubblewrap cases must run (bubblewrap is installed by scripts/setup_env.sh)."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from rollout import sandbox, sandbox_cgroup, sandbox_rlimits
from rollout.sandbox import SandboxUnavailableError, run_python

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


@pytest.mark.serial
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


@pytest.mark.serial
def test_fork_loop_is_contained(any_mode):
    t0 = time.time()
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    r = run_python(code, timeout=2, nproc=16, mode=any_mode)
    assert not r.ok and (r.timed_out or "CPU time limit" in r.error)
    assert time.time() - t0 < 8
    time.sleep(0.5)
    assert _nobody_processes() == []  # the whole sandbox is gone
    r = run_python("import os\npids = []\nfor i in range(64):\n    pids.append(os.fork())\n    if pids[-1] == 0: os._exit(0)",
                   timeout=10, nproc=8, mode=any_mode)
    assert not r.ok and "BlockingIOError" in r.error  # the process limit bites


def test_huge_allocation_fails_cleanly(bwrap_mode):
    r = run_python("x = bytearray(10 * 1024 ** 3)", timeout=10, memory_mb=512, mode=bwrap_mode)
    assert not r.ok and "MemoryError" in r.error and not r.timed_out


@pytest.mark.serial
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


# --------------------------------------------------------------------------- the mode, and the rlimits mode


@pytest.fixture(params=["ns", "no_ns"])
def rlimits_mode(request, monkeypatch):
    """The rlimits mode, chosen as a user would (PARSIMONY_SANDBOX=rlimits): with the namespaces
    that unshare gives where it works here, and without them (as where unshare is refused)."""
    monkeypatch.setenv("PARSIMONY_SANDBOX", "rlimits")
    if request.param == "ns":
        request.getfixturevalue("rlimits_mode_ns_only")
    else:
        monkeypatch.setattr(sandbox_rlimits, "namespace_problem", lambda python, run_probe=None: "off in this test")
    return request.param


@pytest.fixture(params=["bwrap", "rlimits-ns", "rlimits-no_ns"])
def any_mode(request, monkeypatch):
    if request.param == "bwrap":
        return request.getfixturevalue("bwrap_mode")
    monkeypatch.setenv("PARSIMONY_SANDBOX", "rlimits")
    if request.param == "rlimits-no_ns":
        monkeypatch.setattr(sandbox_rlimits, "namespace_problem", lambda python, run_probe=None: "off in this test")
    else:
        request.getfixturevalue("rlimits_mode_ns_only")
    return "rlimits"


@pytest.fixture()
def rlimits_mode_ns_only():
    python = sandbox.python_runtime()
    if os.getuid() == 0:
        python = sandbox_rlimits.rlimits_runtime(python, sandbox.NOBODY)
    why = sandbox_rlimits.namespace_problem(python, sandbox._probe_namespaces)
    if why is not None:
        pytest.skip(f"unshare cannot make the namespaces here: {why}")


def _processes_with(marker: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_missing_bubblewrap_without_a_choice_is_an_error(monkeypatch, caplog):
    """Issue 29 item 6: where bubblewrap did not work, model-written code silently ran with rlimits only."""
    monkeypatch.delenv("PARSIMONY_SANDBOX", raising=False)
    monkeypatch.setattr(sandbox, "_MODE", None)
    monkeypatch.setattr(sandbox, "_MODE_ERROR", None)
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda python: "bwrap: No permissions to create new namespace\nmore")
    with pytest.raises(SandboxUnavailableError) as e:
        sandbox.sandbox_mode()
    msg = str(e.value)
    assert "PARSIMONY_SANDBOX=rlimits" in msg and "\n" not in msg and "No permissions" in msg
    with pytest.raises(SandboxUnavailableError):
        run_python("print(1)")
    # the explicit choice: the weaker mode runs, and says so once
    monkeypatch.setenv("PARSIMONY_SANDBOX", "rlimits")
    monkeypatch.setattr(sandbox, "_ANNOUNCED", set())
    with caplog.at_level(logging.WARNING, logger="rollout.sandbox"):
        assert sandbox.sandbox_mode() == "rlimits"
        for _ in range(2):
            r = run_python("print(1 + 1)", timeout=10)
            assert r.ok and r.stdout == "2\n" and r.isolation == "rlimits"
    assert caplog.text.count("WEAKER") == 1


def test_rlimits_mode_still_limits(rlimits_mode):
    r = run_python("import socket\nsocket.socket()", timeout=10)
    assert not r.ok and "network access is disabled" in r.error
    r = run_python("x = bytearray(10 * 1024 ** 3)", timeout=10)
    assert not r.ok and "MemoryError" in r.error
    r = run_python("import time\nwhile True: time.sleep(1)", timeout=1)
    assert r.timed_out
    r = run_python("while True: pass", timeout=30, cpu_seconds=1)
    assert not r.ok and "CPU time limit exceeded" in r.error
    r = run_python("import sys\nprint('out'); sys.exit(3)", timeout=10)
    assert r.exit_code == 3 and r.stdout == "out\n" and r.error == "exit code 3"


DAEMON = """
import os, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, b"x")
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
os.read(r, 1)
print("parent done", flush=True)
"""


@pytest.mark.serial
def test_a_double_forked_daemon_dies_with_the_call(any_mode):
    """Issue 29 item 6: in the rlimits mode a daemon outlived the call and held its pipes open
    until the timeout."""
    marker = f"{random.randint(500, 900)}.{os.getpid()}{random.randint(100, 999)}"
    t0 = time.monotonic()
    r = run_python(DAEMON.format(marker=marker), timeout=15, mode=any_mode)
    elapsed = time.monotonic() - t0
    leftover = _processes_with(marker)
    for pid in leftover:
        os.kill(pid, 9)
    assert r.ok and r.stdout == "parent done\n", r.error
    assert elapsed < 5, f"the call waited {elapsed:.1f} s for the daemon's pipes"
    assert leftover == [], "the daemon outlived the call"
    # a daemon still running at the timeout dies too
    r = run_python(DAEMON.format(marker=marker) + "time.sleep(60)", timeout=1.5, mode=any_mode)
    time.sleep(0.2)
    leftover = _processes_with(marker)
    for pid in leftover:
        os.kill(pid, 9)
    assert r.timed_out and leftover == []


def test_nothing_is_left_in_the_host_temporary_directories(any_mode, request):
    """Issue 29 item 6: files written to the host's /dev/shm and /var/tmp stayed; the private
    directory (cwd, HOME, TMPDIR) is removed after the call."""
    if request.node.callspec.params["any_mode"] == "rlimits-no_ns" and os.getuid() != 0:
        pytest.skip("without a mount namespace, a non-root trainer's sandbox writes the host's temporary directories "
                    "as the trainer's own user: not told apart, not cleaned (docs/tools.md)")
    name = f"parsimony-test-leak-{os.getpid()}-{random.randint(0, 10**6)}"
    code = f"""
import os
for d in ("/dev/shm", "/var/tmp", "/tmp", "/run/lock"):
    try:
        open(os.path.join(d, {name!r}), "w").write("x")
    except OSError:
        pass
open({name!r}, "w").write("in the working directory")
print(os.getcwd(), os.environ.get("HOME"), os.environ.get("TMPDIR"))
"""
    r = run_python(code, timeout=10, mode=any_mode)
    assert r.ok, r.error
    cwd, home, tmpdir = r.stdout.split()
    assert cwd == home == tmpdir
    left = [p for p in (f"/dev/shm/{name}", f"/var/tmp/{name}", f"/tmp/{name}", f"/run/lock/{name}",
                        os.path.join(cwd, name)) if os.path.lexists(p)]
    for p in left:
        os.unlink(p)
    assert left == []
    if cwd != "/tmp":  # a host directory (no mount namespace): removed
        assert not os.path.exists(cwd)


MEMORY_HOG = """
import os, sys, time
pids = []
for i in range({n}):
    p = os.fork()
    if p == 0:
        b = bytearray({mb} * 1024 * 1024)
        for j in range(0, len(b), 4096):
            b[j] = 1
        time.sleep(0.5)
        os._exit(0)
    pids.append(p)
st = [os.waitpid(p, 0)[1] for p in pids]
print(st)
sys.exit(1 if any(st) else 0)
"""


def test_total_memory_is_capped(any_mode):
    """Issue 29 item 6: 4 children x 300 MB ran under memory_mb=512 (each process capped, not the total)."""
    why = sandbox_cgroup.available()
    if why is not None:
        pytest.skip(f"no cgroup for the total here (documented: the total is not capped): {why}")
    r = run_python(MEMORY_HOG.format(n=2, mb=120), timeout=30, memory_mb=512, mode=any_mode)
    assert r.ok, r.error  # what fits runs
    r = run_python(MEMORY_HOG.format(n=4, mb=300), timeout=30, memory_mb=512, mode=any_mode)
    assert not r.ok and "total memory cap (512 MB) was hit" in r.error, (r.stdout, r.error)


def test_rlimits_namespaces_hide_the_host(rlimits_mode_ns_only, monkeypatch):
    """With unshare: 84 host processes were visible and the project readable; the network was
    blocked only by the preamble (a program restores sockets with _socket)."""
    monkeypatch.setenv("PARSIMONY_SANDBOX", "rlimits")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    code = f"""
import os, _socket
print(len([d for d in os.listdir("/proc") if d.isdigit()]))
print(os.path.exists({str(REPO / "rollout" / "sandbox.py")!r}), os.path.exists({str(Path.home())!r} + "/.bashrc"))
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
s.settimeout(3)
s.connect(("127.0.0.1", {port}))
print("connected")
"""
    try:
        r = run_python(code, timeout=10)
    finally:
        srv.close()
    lines = r.stdout.splitlines()
    assert int(lines[0]) <= 3, r.stdout  # the supervisor and the program
    assert lines[1] == "False False"
    assert not r.ok and "connected" not in r.stdout and ("ConnectionRefused" in r.error or "unreachable" in r.error)


def test_a_missing_sandbox_stops_a_tool_episode_instead_of_training_on_errors(monkeypatch):
    """The python tool without a sandbox: the episode raises (one line), it does not become an error
    observation that the trainer would learn from."""
    import rollout.sandbox as sb
    from rollout.sandbox import SandboxUnavailableError
    from rollout.tools import ToolEnvironment

    def unavailable(*a, **k):
        raise SandboxUnavailableError("bubblewrap is not available: set PARSIMONY_SANDBOX=rlimits to run without it")

    monkeypatch.setattr(sb, "run_python", unavailable)
    env = ToolEnvironment(tools=["python"])
    with pytest.raises(SandboxUnavailableError, match="PARSIMONY_SANDBOX"):
        env._execute("python", {"code": "print(1)"})
    assert env._execute("nope", {}).startswith("Error: unknown tool")  # other tool errors stay observations
