"""The sandbox's total caps: one cgroup per :func:`rollout.sandbox.run_python` call, so that the
memory of *all* the processes the code starts (and their number) is capped, not each process's
address space alone (4 children x 300 MB ran under ``memory_mb=512`` before, issue 29).

Where the kernel lets this process create a child of its own cgroup, it does, under the
trainer's own cgroup (so the machine's limits on the trainer still hold around it):

* cgroup v1 (a ``memory`` hierarchy; ``pids`` too when mounted): ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes`` where swap is accounted) and ``pids.max``;
* cgroup v2, where the trainer's cgroup already delegates the ``memory`` controller to its children
  (``cgroup.subtree_control``): ``memory.max``, ``memory.swap.max = 0``, ``pids.max``. A v2
  cgroup that holds processes cannot delegate (the "no internal processes" rule), and this module
  does not move the trainer to make it so: a plain v2 systemd session gets no cap.

A process over the memory cap is killed by the kernel's OOM killer (SIGKILL; counted in the
result's error). Where no cgroup can be made (no write access: an unprivileged user, most
containers), :func:`available` says why, the caller logs it once, and the total stays uncapped:
at most ``nproc`` processes (``RLIMIT_NPROC``) of ``memory_mb`` each.

The child process joins the cgroup in its ``preexec_fn`` (:meth:`CgroupCap.attach`, before it
execs bubblewrap or the supervisor); after the call :meth:`CgroupCap.close` kills whatever is left
in it and removes it.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["CgroupCap", "available", "cgroup_bases"]

_COUNTER = itertools.count()
_BASES: dict[str, Path] | None = None
_WHY: str | None = None


def _own_cgroup_dirs() -> dict[str, Path]:
    """{"v2" | "memory" | "pids": the directory of this process's cgroup in that hierarchy}."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hid == "0" and controllers == "":
            own["v2"] = path
        for c in controllers.split(","):
            if c in ("memory", "pids"):
                own[c] = path
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        root, mountpoint, fstype, opts = fields[3], fields[4], rfields[0], rfields[2].split(",")
        if fstype == "cgroup2":
            keys = ["v2"]
        elif fstype == "cgroup":
            keys = [c for c in ("memory", "pids") if c in opts]
        else:
            continue
        for key in keys:
            path = own.get(key)
            if path is None or key in out:
                continue
            rel = path[len(root):] if root != "/" and path.startswith(root) else path
            out[key] = Path(mountpoint) / rel.lstrip("/")
    return out


def cgroup_bases() -> dict[str, Path]:
    """Where this process may create per-call cgroups ({} where it may not; :func:`available`
    says why). Probed once per process: a test child is created and removed."""
    global _BASES, _WHY
    if _BASES is not None:
        return _BASES
    bases: dict[str, Path] = {}
    why = None
    try:
        dirs = _own_cgroup_dirs()
        if "memory" in dirs:  # v1
            bases = {k: dirs[k] for k in ("memory", "pids") if k in dirs}
        elif "v2" in dirs:
            d = dirs["v2"]
            delegated = (d / "cgroup.subtree_control").read_text().split()
            if "memory" not in delegated:
                why = (f"cgroup v2: {d} does not delegate the memory controller to child cgroups "
                       f"(cgroup.subtree_control: {' '.join(delegated) or 'empty'})")
            else:
                bases = {"v2": d}
        else:
            why = "no memory cgroup hierarchy is mounted"
        for key, d in list(bases.items()):
            test = d / f"parsimony-probe-{os.getpid()}"
            try:
                test.mkdir()
                test.rmdir()
            except OSError as e:
                if key == "pids":  # the memory cap alone still helps
                    del bases[key]
                    continue
                why = f"cannot create a child cgroup under {d}: {e.strerror or e}"
                bases = {}
                break
    except OSError as e:
        why, bases = f"cannot read this process's cgroups: {e}", {}
    _BASES, _WHY = bases, why
    return bases


def available() -> str | None:
    """None when per-call cgroups can be made here, else why not (one line)."""
    cgroup_bases()
    return _WHY


def _signal(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


class CgroupCap:
    """One call's cgroup(s): ``memory_mb`` for all its processes together, at most ``pids`` of them."""

    def __init__(self, dirs: dict[str, Path], memory_mb: int) -> None:
        self.dirs = dirs
        self.memory_mb = int(memory_mb)
        self._procs = [os.fsencode(d / "cgroup.procs") for d in dirs.values()]

    @classmethod
    def create(cls, memory_mb: int, pids: int) -> "CgroupCap | None":
        """A fresh cgroup with the caps, or None where cgroups are unavailable (or this one failed)."""
        bases = cgroup_bases()
        if not bases:
            return None
        name = f"parsimony-sandbox-{os.getpid()}-{next(_COUNTER)}"
        dirs: dict[str, Path] = {}
        limit = str(int(memory_mb) << 20)
        try:
            for key, base in bases.items():
                d = base / name
                d.mkdir()
                dirs[key] = d
                if key == "memory":
                    (d / "memory.limit_in_bytes").write_text(limit)
                    _write(d / "memory.memsw.limit_in_bytes", limit)  # where swap is accounted
                elif key == "v2":
                    (d / "memory.max").write_text(limit)
                    _write(d / "memory.swap.max", "0")
                if key in ("pids", "v2"):
                    _write(d / "pids.max", str(int(pids)))
        except OSError as e:
            logger.warning("[sandbox] could not set up a cgroup for the total caps (%s): this call's total memory "
                           "is not capped", e)
            cap = cls(dirs, memory_mb)
            cap.close()
            return None
        return cls(dirs, memory_mb)

    def attach(self) -> None:
        """In the child, before exec: join the cgroup(s). Plain ``os`` calls (it runs after fork)."""
        pid = str(os.getpid()).encode()
        for p in self._procs:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs.values():
            try:
                out.update(int(x) for x in (d / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def oom_kills(self) -> int:
        """Processes the kernel killed for the memory cap."""
        for d, fname in ((self.dirs.get("memory"), "memory.oom_control"), (self.dirs.get("v2"), "memory.events")):
            if d is None:
                continue
            try:
                for line in (d / fname).read_text().splitlines():
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
            except (OSError, ValueError):
                pass
        return 0

    def kill_all(self, seconds: float = 3.0) -> None:
        """Kill every process still in the cgroup (``cgroup.kill`` on v2; else each one stopped
        first, so that a fork loop cannot outrun the kill, then SIGKILLed), until it is empty or
        ``seconds`` pass."""
        end = time.monotonic() + seconds
        v2 = self.dirs.get("v2")
        if v2 is not None:
            _write(v2 / "cgroup.kill", "1")  # kernel 5.14+
        while time.monotonic() < end:
            seen: set[int] = set()
            while time.monotonic() < end:
                left = set(self.pids())
                if left <= seen:
                    break
                _signal(left - seen, signal.SIGSTOP)
                seen |= left
            if not seen:
                return
            _signal(seen, signal.SIGKILL)
            time.sleep(0.01)

    def close(self) -> None:
        """Kill what is left and remove the cgroup(s)."""
        self.kill_all()
        for d in self.dirs.values():
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: a killed process not reaped by its parent yet
                    time.sleep(0.01)
            else:
                logger.warning("[sandbox] could not remove the cgroup %s", d)
