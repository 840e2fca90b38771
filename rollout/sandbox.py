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
  each (the rest is drained and dropped, so a 100 MB print costs no trainer memory).

Fallback (``isolation="rlimits"``): where bubblewrap is missing or cannot create namespaces,
the same rlimits, a fresh temporary directory as the working directory, a cleared environment,
the uid drop when root, and a preamble that disables ``socket``. This is weaker (the filesystem
is visible, a determined program can restore sockets); it is logged once as a warning.
``PARSIMONY_SANDBOX=bwrap|rlimits`` forces a mode (``bwrap`` then fails loudly when unusable).

A sandbox failure of any kind is reported in the result (``ok=False`` with ``error``); this
module never raises because of the code it runs.
"""

from __future__ import annotations

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

_NO_SOCKET_PREAMBLE = r"""
import socket as _s
def _blocked(*a, **k):
    raise OSError("network access is disabled in the sandbox")
for _n in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
    setattr(_s, _n, _blocked)
del _s, _n
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


def _world_accessible(path: str) -> bool:
    """Whether a process without privileges (``nobody``) can execute ``path``: o+x on the file and
    on every directory above it."""
    p = Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & 0o001:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in p.parents)
    except OSError:
        return False


def _fallback_runtime(python: str) -> tuple[str, bool]:
    """Fallback mode as root: (interpreter, drop to nobody). Root is exempt from RLIMIT_NPROC, so
    the code runs as nobody whenever some interpreter is reachable for it (this one, else
    /usr/bin/python3); otherwise as root, with a warning that processes are not capped."""
    for cand in (python, "/usr/bin/python3"):
        if os.path.exists(cand) and _world_accessible(cand):
            return cand, True
    logger.warning("[sandbox] no interpreter is executable by nobody: sandboxed code runs as root and "
                   "RLIMIT_NPROC does not apply to root (fork loops are only stopped by the timeout)")
    return python, False


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
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONIOENCODING", "utf-8",
    ]
    return args


_MODE: str | None = None


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
    """``bwrap`` or ``rlimits``: probed once per process (``PARSIMONY_SANDBOX`` forces it)."""
    global _MODE
    forced = os.environ.get("PARSIMONY_SANDBOX", "").strip()
    if forced:
        if forced not in ("bwrap", "rlimits"):
            raise ValueError(f"PARSIMONY_SANDBOX must be bwrap | rlimits, got {forced!r}")
        if forced == "bwrap":
            why = _probe_bwrap(python_runtime())
            if why is not None:
                raise RuntimeError(f"PARSIMONY_SANDBOX=bwrap but bubblewrap does not work here: {why}")
        return forced
    if _MODE is None:
        why = _probe_bwrap(python_runtime())
        if why is None:
            _MODE = "bwrap"
        else:
            _MODE = "rlimits"
            logger.warning(
                "[sandbox] bubblewrap is unavailable (%s): model-written code runs with rlimits and a "
                "socket-disabling preamble only, a WEAKER isolation (filesystem visible). Install "
                "bubblewrap (scripts/setup_env.sh does) for namespaces.", why,
            )
    return _MODE


def _limits(cpu_seconds: int, memory_mb: int, nproc: int, fsize_mb: int, drop_uid: bool):
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop_uid:  # fallback mode only: bwrap mode drops root inside the sandbox
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

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

    ``timeout``: wall-clock seconds; ``memory_mb``: address-space limit per process; ``output_limit``:
    bytes of stdout and of stderr kept; ``cpu_seconds``: CPU-time limit (default ``ceil(timeout)``);
    ``nproc``: processes of the sandbox user; ``fsize_mb``: largest file it may write (also the size
    of its ``/tmp``). ``mode``: ``bwrap`` | ``rlimits`` (default: :func:`sandbox_mode`)."""
    mode = mode or sandbox_mode()
    python = python_runtime()
    cpu = int(cpu_seconds if cpu_seconds is not None else max(1, int(timeout + 0.999)))
    is_root = os.getuid() == 0
    workdir = None
    try:
        if mode == "bwrap":
            launcher = _LAUNCHER % {"uid": NOBODY, "drop": True, "preamble": ""}
            cmd = _bwrap_args(python, fsize_mb << 20) + [python, "-I", "-c", launcher]
            pre = _limits(cpu, memory_mb, nproc, fsize_mb, drop_uid=False)
            cwd, env = "/", {}
        else:
            workdir = tempfile.mkdtemp(prefix="parsimony-sandbox-")
            drop = False
            if is_root:
                python, drop = _fallback_runtime(python)
                if drop:
                    os.chown(workdir, NOBODY, NOBODY)
            launcher = _LAUNCHER % {"uid": NOBODY, "drop": False, "preamble": _NO_SOCKET_PREAMBLE}
            cmd = [python, "-I", "-c", launcher]
            pre = _limits(cpu, memory_mb, nproc, fsize_mb, drop_uid=drop)
            cwd = workdir
            env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONIOENCODING": "utf-8"}
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, env=env, preexec_fn=pre, close_fds=True,
        )
    except Exception as e:  # the sandbox could not start: an error result, never an exception
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        return SandboxResult(False, "", "", error=f"sandbox failed to start: {type(e).__name__}: {e}", isolation=mode)
    try:
        return _communicate(proc, code, timeout, output_limit, mode)
    finally:
        _kill(proc)  # nothing of the sandbox outlives the call
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _communicate(proc: subprocess.Popen, code: str, timeout: float, limit: int, mode: str) -> SandboxResult:
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
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
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
        _kill(proc)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill(proc)
        rc = proc.wait()
    out = bufs[proc.stdout].decode("utf-8", errors="replace")
    err = bufs[proc.stderr].decode("utf-8", errors="replace")
    if truncated:
        out_note = "\n[output truncated]"
        out += out_note if len(bufs[proc.stdout]) >= limit else ""
        err += out_note if len(bufs[proc.stderr]) >= limit else ""
    error = None
    if timed_out:
        error = f"timed out after {timeout:g} s (wall clock)"
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


__all__ = ["SandboxResult", "python_runtime", "run_python", "sandbox_mode"]
