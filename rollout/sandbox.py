"""Run model-written Python code in a sandbox, never in the trainer process.

    res = run_python("print(2 + 2)", timeout=5.0, memory_mb=512, output_limit=10_000)
    res.ok, res.stdout, res.stderr, res.error, res.timed_out, res.isolation

Isolation (``isolation="bwrap"``, used whenever bubblewrap works on the machine):

- Linux namespaces through bubblewrap: a new network namespace (no usable interface, so even
  127.0.0.1 is unreachable), new PID / IPC / UTS namespaces, ``--die-with-parent``;
- a filesystem that holds only the Python runtime, read-only (``/usr`` and the interpreter's
  prefix; not ``/root``, ``/home``, ``/etc``, the project or its checkpoints), a fresh ``/dev``
  and ``/proc``, and a private size-capped tmpfs at ``/tmp`` (the working directory, the only
  writable place); the environment is cleared;
- when the trainer runs as root, the code runs as ``nobody`` (65534) inside the sandbox: root is
  exempt from ``RLIMIT_NPROC``, so without this a fork loop would not be capped;
- rlimits on CPU seconds, address space, processes and file size (no core files), a wall-clock
  timeout that kills the whole sandbox, and stdout / stderr truncated to ``output_limit`` bytes
  each (the rest is drained and dropped, so a 100 MB print costs no trainer memory); the call
  returns when the program's main process ends, never waiting on a pipe something else holds;
- a cgroup per call (both modes), where the kernel lets the trainer make one (:mod:`rollout.sandbox_cgroup`):
  ``memory_mb`` for all the sandbox's processes together and at most ``nproc + 8`` of them; where it
  cannot, the total is not capped (``nproc`` processes of ``memory_mb`` each), logged once.

The weaker mode (``isolation="rlimits"``, :mod:`rollout.sandbox_rlimits`) runs only when chosen:
``PARSIMONY_SANDBOX=rlimits`` (or ``run_python(..., mode="rlimits")``), logged once as a warning.
Where bubblewrap does not work and nothing was chosen, :func:`sandbox_mode` raises
:class:`SandboxUnavailableError`, one line naming the setting. The rlimits mode: the same rlimits,
a supervisor process that kills everything the code started when it ends (double-forked daemons
included), a private working / home / temporary directory removed afterwards, a cleared
environment, the uid drop when root, a socket-disabling preamble, and, where ``unshare`` works,
PID / mount / network / IPC namespaces with private ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the
project and home directories hidden. ``PARSIMONY_SANDBOX=bwrap`` fails loudly when bubblewrap is
unusable. docs/tools.md has the table of what each mode guarantees, measured.

A sandbox failure of any kind is reported in the result (``ok=False`` with ``error``); this
module never raises because of the code it runs (only :class:`SandboxUnavailableError`, about the
machine, before anything runs).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rollout import sandbox_cgroup, sandbox_rlimits

logger = logging.getLogger(__name__)

NOBODY = 65534

# runs inside the sandbox: reads the model's code from stdin, drops root, then executes it
_LAUNCHER = r"""
import os, sys
code = sys.stdin.read()
sys.stdin = open(os.devnull)
if %(drop)s and os.getuid() == 0:
    os.setgroups([]); os.setgid(%(uid)d); os.setuid(%(uid)d)
%(preamble)s
g = {"__name__": "__main__", "__builtins__": __builtins__}
exec(compile(code, "<sandbox>", "exec"), g)
"""

@dataclass
class SandboxResult:
    ok: bool  # exit code 0 and not timed out
    stdout: str
    stderr: str
    error: str | None = None  # a one-line reason when not ok
    timed_out: bool = False
    exit_code: int | None = None
    isolation: str = ""  # "bwrap" | "rlimits"
    truncated: bool = False  # stdout or stderr hit output_limit


def python_runtime() -> str:
    """The interpreter the sandbox runs: ``PARSIMONY_SANDBOX_PYTHON``, else the base interpreter
    of this process (a venv's base, so the venv's packages and the project are not needed)."""
    env = os.environ.get("PARSIMONY_SANDBOX_PYTHON")
    if env:
        return env
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _runtime_prefix(python: str) -> Path:
    p = Path(os.path.realpath(python))
    return p.parent.parent  # <prefix>/bin/python3 -> <prefix>


def _bwrap_args(python: str, tmp_bytes: int) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bwrap not found")
    args = [
        bwrap,
        "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",  # only to drop root below
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr",
    ]
    for name in ("lib", "lib64", "bin", "sbin", "lib32"):
        src = Path("/") / name
        if src.is_symlink():
            args += ["--symlink", os.readlink(src), str(src)]
        elif src.is_dir():
            args += ["--ro-bind", str(src), str(src)]
    prefix = _runtime_prefix(python)
    if not str(prefix).startswith("/usr/") and str(prefix) != "/usr":
        # parents of the runtime (e.g. /root/.pyenv/versions) become empty, traversable directories
        for parent in reversed(prefix.parents):
            if str(parent) != "/":
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += [
        "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
        "--chdir", "/tmp",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONIOENCODING", "utf-8",
    ]
    return args


_MODE: str | None = None
_MODE_ERROR: str | None = None  # why bubblewrap does not work here (probed once)
_ANNOUNCED: set[str] = set()

SANDBOX_ENV = "PARSIMONY_SANDBOX"


class SandboxUnavailableError(RuntimeError):
    """Bubblewrap does not work here and the weaker mode was not chosen (``PARSIMONY_SANDBOX``)."""


def _probe_bwrap(python: str) -> str | None:
    """None when bubblewrap runs a program with all the namespaces here, else why not."""
    try:
        cmd = _bwrap_args(python, 1 << 20) + [python, "-I", "-c", "print('ok')"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except Exception as e:  # missing binary, timeout
        return f"{type(e).__name__}: {e}"
    if r.returncode != 0 or r.stdout.strip() != "ok":
        return (r.stderr or r.stdout).strip()[-300:] or f"exit code {r.returncode}"
    return None


def sandbox_mode() -> str:
    """``bwrap`` (probed once per process) or ``rlimits`` when ``PARSIMONY_SANDBOX=rlimits`` chooses
    it. Raises :class:`SandboxUnavailableError` where bubblewrap does not work and nothing was
    chosen: model-written code never runs in the weaker mode by default."""
    global _MODE, _MODE_ERROR
    forced = os.environ.get(SANDBOX_ENV, "").strip()
    if forced:
        if forced not in ("bwrap", "rlimits"):
            raise ValueError(f"{SANDBOX_ENV} must be bwrap | rlimits, got {forced!r}")
        if forced == "bwrap":
            why = _probe_bwrap(python_runtime())
            if why is not None:
                raise SandboxUnavailableError(f"{SANDBOX_ENV}=bwrap but bubblewrap does not work here: {_one_line(why)}")
        return forced
    if _MODE is None and _MODE_ERROR is None:
        why = _probe_bwrap(python_runtime())
        if why is None:
            _MODE = "bwrap"
        else:
            _MODE_ERROR = _one_line(why)
    if _MODE is None:
        msg = (f"bubblewrap does not work here ({_MODE_ERROR}): install it (scripts/setup_env.sh does), or set "
               f"{SANDBOX_ENV}=rlimits to run model-written code with the weaker isolation (docs/tools.md)")
        if "unavailable" not in _ANNOUNCED:  # a tool may turn the exception into an observation: said in the log too
            _ANNOUNCED.add("unavailable")
            logger.error("[sandbox] %s", msg)
        raise SandboxUnavailableError(msg)
    return _MODE


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _announce(mode: str, python: str, cap_problem: str | None) -> None:
    """Log once per process what this mode guarantees here (the rlimits mode as a warning)."""
    key = f"{mode}:{python}"
    if key in _ANNOUNCED:
        return
    _ANNOUNCED.add(key)
    total = ("the total memory and processes of each call are capped by a cgroup" if cap_problem is None else
             f"the total memory of a call is NOT capped ({cap_problem}): each process is, and their number")
    if mode == "rlimits":
        ns = sandbox_rlimits.namespace_problem(python, _probe_namespaces)
        logger.warning(
            "[sandbox] %s=rlimits: model-written code runs WITHOUT bubblewrap, a WEAKER isolation: rlimits, a "
            "supervisor that kills what the code leaves behind, a private temporary directory, no inherited "
            "environment; %s; %s (docs/tools.md)", SANDBOX_ENV,
            "PID, mount, network and IPC namespaces through unshare (private /tmp, /var/tmp, /dev/shm; the project "
            "and home directories hidden)" if ns is None else
            f"NO namespaces ({ns}): the filesystem and the host's processes are visible, the network is blocked "
            "only by a socket-disabling preamble", total)
    elif cap_problem is not None:
        logger.info("[sandbox] bubblewrap; %s", total)


def _limits(cpu_seconds: int, memory_mb: int, nproc: int | None, fsize_mb: int,
            cap: "sandbox_cgroup.CgroupCap | None"):
    """The child's preexec_fn. ``nproc=None``: set later (the rlimits supervisor sets it on the
    code's process only, so that a non-root trainer's own processes do not stop its fork)."""

    def apply() -> None:
        os.setsid()  # its own session and process group: killed as one at the end
        if cap is not None:
            cap.attach()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def _stop_supervisor(proc: subprocess.Popen) -> None:
    """Without namespaces: SIGTERM lets the supervisor kill what the code started; then SIGKILL."""
    try:
        proc.terminate()
        proc.wait(timeout=3)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    _kill(proc)


def run_python(
    code: str,
    *,
    timeout: float = 10.0,
    memory_mb: int = 512,
    output_limit: int = 10_000,
    cpu_seconds: int | None = None,
    nproc: int = 32,
    fsize_mb: int = 16,
    mode: str | None = None,
) -> SandboxResult:
    """Run ``code`` with a fresh interpreter in the sandbox (see the module docstring).

    ``timeout``: wall-clock seconds; ``memory_mb``: address-space limit per process, and the total
    of all the sandbox's processes where a cgroup can be made; ``output_limit``: bytes of stdout and
    of stderr kept; ``cpu_seconds``: CPU-time limit (default ``ceil(timeout)``); ``nproc``: processes
    of the sandbox user; ``fsize_mb``: largest file it may write (also the size of its private
    temporary directories). ``mode``: ``bwrap`` | ``rlimits`` (default: :func:`sandbox_mode`, which
    raises :class:`SandboxUnavailableError` where bubblewrap does not work and ``PARSIMONY_SANDBOX``
    chose nothing)."""
    mode = mode or sandbox_mode()
    if mode not in ("bwrap", "rlimits"):
        raise ValueError(f"mode must be bwrap | rlimits, got {mode!r}")
    python = python_runtime()
    if mode == "rlimits" and os.getuid() == 0:
        python = sandbox_rlimits.rlimits_runtime(python, NOBODY)
    _announce(mode, python, sandbox_cgroup.available())
    ns = mode == "rlimits" and sandbox_rlimits.namespace_problem(python, _probe_namespaces) is None
    return _run(code, mode, python, ns, timeout=timeout, memory_mb=memory_mb, output_limit=output_limit,
                cpu_seconds=cpu_seconds, nproc=nproc, fsize_mb=fsize_mb)


def _probe_namespaces(python: str) -> str | None:
    r = _run("print('ok')", "rlimits", python, True, timeout=30, memory_mb=512, output_limit=1000, cpu_seconds=None,
             nproc=32, fsize_mb=1)
    return None if r.ok and r.stdout == "ok\n" else _one_line(r.error or r.stderr or "no output")


def _run(code: str, mode: str, python: str, ns: bool, *, timeout: float, memory_mb: int, output_limit: int,
         cpu_seconds: int | None, nproc: int, fsize_mb: int) -> SandboxResult:
    cpu = int(cpu_seconds if cpu_seconds is not None else max(1, int(timeout + 0.999)))
    is_root = os.getuid() == 0
    workdir = cleaner = None
    status_r = status_w = -1
    stop = _kill
    cap = sandbox_cgroup.CgroupCap.create(memory_mb, nproc + 8)
    try:
        pre = _limits(cpu, memory_mb, nproc if mode == "bwrap" else None, fsize_mb, cap)
        if mode == "bwrap":
            launcher = _LAUNCHER % {"uid": NOBODY, "drop": True, "preamble": ""}
            cmd = _bwrap_args(python, fsize_mb << 20) + [python, "-I", "-c", launcher]
            cwd, env, pass_fds = "/", {}, ()
        else:
            drop = is_root and sandbox_rlimits.world_accessible(python)
            if not ns:
                workdir = tempfile.mkdtemp(prefix="call-", dir=sandbox_rlimits.workdir_parent())
                if drop:
                    os.chown(workdir, NOBODY, NOBODY)
                    cleaner = sandbox_rlimits.HostTmpCleaner(NOBODY)
                stop = _stop_supervisor
            status_r, status_w = os.pipe()
            cfg = {"status_fd": status_w, "ns": ns, "workdir": workdir, "drop": drop, "uid": NOBODY,
                   "private": list(sandbox_rlimits.HOST_TMP_DIRS), "mask": sandbox_rlimits.mask_paths(python),
                   "tmp_bytes": fsize_mb << 20, "nproc": nproc,
                   "launcher": _LAUNCHER % {"uid": NOBODY, "drop": False, "preamble": sandbox_rlimits.NO_SOCKET_PREAMBLE}}
            cmd = [python, "-I", "-c", sandbox_rlimits.SUPERVISOR, json.dumps(cfg)]
            if ns:
                cmd = sandbox_rlimits.unshare_prefix(is_root) + cmd
            cwd = workdir or "/"
            env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
            pass_fds = (status_w,)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, env=env, preexec_fn=pre, close_fds=True, pass_fds=pass_fds,
        )
    except Exception as e:  # the sandbox could not start: an error result, never an exception
        _cleanup(None, cap, workdir, cleaner, status_r, status_w)
        return SandboxResult(False, "", "", error=f"sandbox failed to start: {type(e).__name__}: {e}", isolation=mode)
    if status_w >= 0:
        os.close(status_w)
        status_w = -1
    try:
        res = _communicate(proc, code, timeout, output_limit, mode, stop, status_r)
        oom = cap.oom_kills() if cap is not None else 0
        if oom and not res.ok:
            res.error = (f"{res.error}; the sandbox's total memory cap ({memory_mb} MB) was hit: {oom} process"
                         f"{'es' if oom > 1 else ''} killed")
        return res
    finally:
        _cleanup(proc, cap, workdir, cleaner, status_r, status_w)


def _cleanup(proc, cap, workdir, cleaner, status_r: int, status_w: int) -> None:
    """Nothing of the sandbox outlives the call: its process group, its cgroup, its directory,
    what it left in the host's temporary directories."""
    if proc is not None:
        _kill(proc)
    if cap is not None:
        cap.close()
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    if cleaner is not None:
        cleaner.clean()
    for fd in (status_r, status_w):
        if fd >= 0:
            os.close(fd)


def _communicate(proc: subprocess.Popen, code: str, timeout: float, limit: int, mode: str, stop=_kill,
                 status_fd: int = -1) -> SandboxResult:
    deadline = time.monotonic() + timeout
    try:
        proc.stdin.write(code.encode("utf-8", errors="replace"))
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    truncated = False
    sel = selectors.DefaultSelector()
    for f in bufs:
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    timed_out = False
    drain_until = None  # the first process has exited: read what is there, never wait for a pipe a leftover holds
    while sel.get_map():
        now = time.monotonic()
        if drain_until is None and proc.poll() is not None:
            drain_until = now + 0.5
        if drain_until is not None and now >= drain_until:
            break
        left = deadline - now
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.1 if drain_until is None else drain_until - now, 0.5)):
            try:
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            buf = bufs[key.fileobj]
            room = limit - len(buf)
            if room > 0:
                buf += chunk[:room]
            if len(chunk) > max(room, 0):
                truncated = True  # the rest is read and dropped
    sel.close()
    if timed_out:
        stop(proc)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill(proc)
        rc = proc.wait()
    status = sandbox_rlimits.read_status(status_fd)
    out = bufs[proc.stdout].decode("utf-8", errors="replace")
    err = bufs[proc.stderr].decode("utf-8", errors="replace")
    if truncated:
        out_note = "\n[output truncated]"
        out += out_note if len(bufs[proc.stdout]) >= limit else ""
        err += out_note if len(bufs[proc.stderr]) >= limit else ""
    kind, _, value = status.partition(" ")
    if kind == "exit":
        rc = int(value)
    elif kind == "signal":
        rc = -int(value)
    error = None
    if timed_out:
        error = f"timed out after {timeout:g} s (wall clock)"
    elif kind == "setup":
        error, rc = f"sandbox failed to start: {value}", rc or 1
    elif rc != 0:
        error = _describe_exit(rc, err)
    return SandboxResult(
        ok=not timed_out and rc == 0, stdout=out, stderr=err, error=error, timed_out=timed_out,
        exit_code=rc, isolation=mode, truncated=truncated,
    )


def _describe_exit(rc: int, stderr: str) -> str:
    if rc < 0:
        sig = -rc
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file size limit exceeded",
               "SIGKILL": "killed (a resource limit)"}.get(name, "killed")
        return f"{why} ({name})"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("[output truncated]")]
    last = lines[-1].strip() if lines else ""
    if rc == 128 + signal.SIGXCPU:
        return "CPU time limit exceeded (SIGXCPU)"
    return f"exit code {rc}: {last}" if last else f"exit code {rc}"


__all__ = ["SANDBOX_ENV", "SandboxResult", "SandboxUnavailableError", "python_runtime", "run_python", "sandbox_mode"]
