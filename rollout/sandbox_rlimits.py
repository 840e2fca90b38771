"""The sandbox's ``rlimits`` mode (no bubblewrap): a supervisor process, and namespaces where
``unshare`` can make them. :mod:`rollout.sandbox` runs it; docs/tools.md has the table of what
each mode guarantees.

The model's code never runs as the first process. The first is :data:`SUPERVISOR` (this
interpreter, ``-I``), which

* when namespaces are usable (:func:`namespace_problem` is None): runs as PID 1 of new PID,
  mount, network, IPC and UTS namespaces (``unshare --pid --fork --kill-child --mount-proc --net
  --ipc --uts``, plus ``--map-root-user`` when the trainer is not root), mounts private
  size-capped tmpfs over ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/lock`` (so nothing is
  written to the host's), and empty read-only tmpfs over the project, the trainer's working and
  home directories, ``/root`` and ``/home`` (:func:`mask_paths`; never one holding the
  interpreter). When it exits, the kernel kills every process left in the namespace;
* is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a double-forked daemon is re-parented to it,
  not to the host's init, so when the program's main process exits (or the trainer stops it with
  SIGTERM at the timeout) it SIGKILLs every process left below it before it exits, namespaces or
  not, and nothing keeps the output pipes open after the call;
* forks the program's process: drops root to ``nobody`` where asked; a process still uid 0 (the
  mapped root of ``--map-root-user``, or root with no interpreter ``nobody`` can run) loses every
  capability (bounding set, ambient, effective, permitted); ``PR_SET_NO_NEW_PRIVS``;
  ``RLIMIT_NPROC`` (set here, not on the supervisor, whose fork a non-root trainer's own processes
  would otherwise count against); ``cwd``, ``HOME`` and ``TMPDIR`` in a private directory (the
  private ``/tmp``, or a fresh host directory that the trainer removes after the call); then execs
  the launcher with the code on stdin;
* reports how the program ended on a pipe of its own (``exit N`` / ``signal N``), which the
  program cannot write to.

Without namespaces, the host's ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/lock`` are
writable: :class:`HostTmpCleaner` removes afterwards the entries that appeared there owned by the
sandbox's user, which it can tell apart only when the code runs as ``nobody`` (a root trainer).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "HOST_TMP_DIRS", "NO_SOCKET_PREAMBLE", "SUPERVISOR", "HostTmpCleaner", "mask_paths", "namespace_problem",
    "read_status", "rlimits_runtime", "unshare_prefix", "workdir_parent", "world_accessible",
]

# world-writable places of a host that a program could leave files in
HOST_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")

SUPERVISOR = r"""
import ctypes, json, os, signal, sys, time
cfg = json.loads(sys.argv[1])
code = sys.stdin.buffer.read()
status_fd = cfg["status_fd"]
libc = ctypes.CDLL(None, use_errno=True)

def status(text):
    try:
        os.write(status_fd, (text.replace("\n", " ") + "\n").encode())
    except OSError:
        pass

def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")

def mount_tmpfs(target, options, flags):
    check(libc.mount(b"tmpfs", target.encode(), b"tmpfs", flags, options.encode()), f"mount tmpfs on {target}")

def subtree():  # every process below this one (a daemon re-parented here included)
    me, kids = os.getpid(), {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            kids.setdefault(int(stat[stat.rindex(b")") + 2:].split()[1]), []).append(int(d))
    out, todo = [], [me]
    while todo:
        for k in kids.get(todo.pop(), ()):
            out.append(k)
            todo.append(k)
    return out

def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass

def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return True
    return False

def kill_all(main, seconds=3.0):
    # the program's process group at once (the kernel lets no fork in it escape), then what left it
    # (a setsid daemon): stopped first, so that nothing forks while it is being killed
    try:
        os.killpg(main, signal.SIGKILL)
    except OSError:
        pass
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen = set()
        while time.monotonic() < end:
            left = set(subtree())
            if left <= seen:
                break
            signal_all(left - seen, signal.SIGSTOP)
            seen |= left
        signal_all(seen, signal.SIGKILL)
        if reap() and not subtree():
            return
        time.sleep(0.005)

work = cfg["workdir"]
try:
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the program come here
    if cfg["ns"]:
        for d in cfg["private"]:
            if os.path.isdir(d) and not os.path.islink(d):
                mount_tmpfs(d, f"size={cfg['tmp_bytes']},mode=1777", 2 | 4)  # nosuid, nodev
        for d in cfg["mask"]:
            if os.path.isdir(d) and not os.path.islink(d):
                mount_tmpfs(d, "size=4k,mode=755", 1 | 2 | 4 | 8)  # read-only, nosuid, nodev, noexec
        work = "/tmp"
    r, w = os.pipe()
except Exception as e:
    status(f"setup {type(e).__name__}: {e}")
    sys.exit(0)

class Stop(Exception):
    pass

def on_term(signum, frame):
    raise Stop()

signal.signal(signal.SIGTERM, on_term)
pid = os.fork()
if pid == 0:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgid(0, 0)  # its own process group, killed as one at the end
        os.close(w)
        os.close(status_fd)
        os.dup2(r, 0)
        os.close(r)
        os.chdir(work)
        if cfg["drop"] and os.getuid() == 0:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        if os.getuid() == 0:  # mapped root, or root without an interpreter nobody can run: no capabilities
            for cap in range(64):
                libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last one)
            libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
            class Hdr(ctypes.Structure):
                _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
            class Data(ctypes.Structure):
                _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
            check(libc.capset(ctypes.byref(Hdr(0x20080522, 0)), (Data * 2)()), "capset")
        check(libc.prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        import resource
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONIOENCODING": "utf-8"}
        os.execve(sys.executable, [sys.executable, "-I", "-c", cfg["launcher"]], env)
    except BaseException as e:
        os.write(2, f"sandbox setup failed: {type(e).__name__}: {e}\n".encode())
    os._exit(126)
ended = "stopped"
try:
    os.close(r)
    try:
        for i in range(0, len(code), 1 << 16):
            os.write(w, code[i:i + (1 << 16)])
    except OSError:
        pass  # the program ended without reading it all
    os.close(w)
    _, st = os.waitpid(pid, 0)
    ended = f"signal {os.WTERMSIG(st)}" if os.WIFSIGNALED(st) else f"exit {os.WEXITSTATUS(st)}"
except Stop:
    pass
finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kill_all(pid)
    status(ended)
"""

# run by the launcher before the code: Python's sockets refuse to work
NO_SOCKET_PREAMBLE = r"""
import socket as _s
def _blocked(*a, **k):
    raise OSError("network access is disabled in the sandbox")
for _n in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
    setattr(_s, _n, _blocked)
del _s, _n
"""

_NS: dict[str, str | None] = {}


def unshare_prefix(is_root: bool) -> list[str]:
    """The ``unshare`` command line of the namespaces (:func:`namespace_problem` says whether it works)."""
    exe = shutil.which("unshare") or "unshare"
    args = [exe, "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc", "--uts"]
    if not is_root:
        args.append("--map-root-user")
    return args


def namespace_problem(python: str, run_probe=None) -> str | None:
    """None when the supervisor runs in its namespaces here (probed once per interpreter: a whole
    sandboxed ``print`` through :mod:`rollout.sandbox`, via ``run_probe(python) -> problem``),
    else why not."""
    if python not in _NS:
        if shutil.which("unshare") is None:
            _NS[python] = "unshare is not installed"
        else:
            try:
                r = subprocess.run(unshare_prefix(os.getuid() == 0) + ["true"], capture_output=True, text=True,
                                   timeout=30)
                why = None if r.returncode == 0 else (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
            except (OSError, subprocess.SubprocessError) as e:
                why = f"{type(e).__name__}: {e}"
            if why is None and run_probe is not None:
                why = run_probe(python)
            _NS[python] = why
    return _NS[python]


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def mask_paths(python: str) -> list[str]:
    """Directories hidden from the code under an empty read-only tmpfs: the project, the trainer's
    working and home directories, ``/root``, ``/home``; never ``/``, a system directory, or one
    holding the interpreter (or one above it)."""
    prefix = Path(os.path.realpath(python)).parent.parent
    project = Path(__file__).resolve().parents[1]
    cands = [project, Path.cwd(), Path.home(), Path("/root"), Path("/home")]
    system = {Path(p) for p in ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/dev", "/proc",
                                "/sys", "/run", "/var", "/opt")}
    out: list[Path] = []
    for c in cands:
        try:
            c = Path(os.path.realpath(c))
        except OSError:
            continue
        if c in system or _inside(prefix, c) or any(_inside(c, Path(t)) for t in HOST_TMP_DIRS):
            continue
        if c.is_dir() and c not in out:
            out.append(c)
    out.sort(key=lambda p: len(p.parts))
    return [str(p) for p in out if not any(q != p and _inside(p, q) for q in out)]


class HostTmpCleaner:
    """Without a mount namespace: remember what :data:`HOST_TMP_DIRS` hold before the call; after
    it, remove the new entries owned by ``uid`` (the sandbox's own user, ``nobody``)."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.before = {d: self._names(d) for d in HOST_TMP_DIRS}

    @staticmethod
    def _names(d: str) -> set[str]:
        try:
            return set(os.listdir(d))
        except OSError:
            return set()

    def clean(self) -> list[str]:
        removed = []
        for d, before in self.before.items():
            for name in self._names(d) - before:
                p = os.path.join(d, name)
                try:
                    st = os.lstat(p)
                    if st.st_uid != self.uid:
                        continue
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)
                    removed.append(p)
                except OSError:
                    pass
        if removed:
            logger.info("[sandbox] removed what the code left in the host's temporary directories: %s", removed)
        return removed


def world_accessible(path: str) -> bool:
    """Whether a process without privileges (``nobody``) can execute ``path``: o+x on the file and
    on every directory above it."""
    p = Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & 0o001:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in p.parents)
    except OSError:
        return False


def rlimits_runtime(python: str, uid: int) -> str:
    """The rlimits mode as root: the interpreter. Root is exempt from RLIMIT_NPROC, so the code runs
    as ``uid`` (nobody) whenever some interpreter is reachable for it (this one, else
    /usr/bin/python3, :func:`world_accessible`); otherwise as root without capabilities, with a
    warning that only a cgroup (where there is one) caps its processes."""
    for cand in (python, "/usr/bin/python3"):
        if os.path.exists(cand) and world_accessible(cand):
            return cand
    logger.warning("[sandbox] no interpreter is executable by uid %d: sandboxed code runs as root (without "
                   "capabilities), and RLIMIT_NPROC does not apply to root", uid)
    return python


def workdir_parent() -> str:
    """``$TMPDIR/parsimony-sandbox-<uid>`` (0711, the trainer's): the calls' directories live inside
    it, so a host-temporary-directory cleanup never mistakes one call's directory for another's
    leftovers."""
    d = Path(tempfile.gettempdir()) / f"parsimony-sandbox-{os.getuid()}"
    try:
        d.mkdir(mode=0o711, exist_ok=True)
        st = d.lstat()
        if d.is_symlink() or st.st_uid != os.getuid():
            raise OSError(f"{d} is not this user's directory")
        os.chmod(d, 0o711)
        return str(d)
    except OSError:
        return tempfile.gettempdir()


def read_status(fd: int) -> str:
    """The supervisor's last status line (``exit N``, ``signal N``, ``stopped``, ``setup <why>``), or ""."""
    if fd < 0:
        return ""
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return ""
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""
