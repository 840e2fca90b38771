"""The multi-agent store: what decoupled roles (an M-GRPO planner and executor, in two processes)
share. Only JSON data crosses it: token ids, masks and scalar rewards; never gradients or weights.

    store = make_store("memory")                      # in-process (single-process runs, the default)
    store = make_store("redis://127.0.0.1:6390/0")    # a real Redis server (``redis`` client)

The contract (both backends):

- ``put_group(run, step, prompt, record)``: the producer writes one prompt group (e.g. the executor
  trajectories of one prompt's planner rollouts with their parents' ``R_M``). Keys are **run, step
  and prompt**, nothing else: no date, no clock, so work written before midnight is fetched after it
  (the public code's key held the current date). Until the step is committed a group may be
  rewritten (a producer that restarts mid-step writes its groups again); once committed it cannot:
  ``put_group`` returns False and keeps the committed record.
- ``commit_step(run, step, prompts)``: the step is complete: exactly these prompts' groups, all of
  which must be there. Atomic and once: True the first time, False when the step was already
  committed (the first commit's groups stay; a replayed step never changes what a consumer may
  already have trained on).
- ``get_step(run, step)``: the committed groups ``{prompt: record}`` (in the committed order), or None
  while the step is not committed. ``wait_step`` polls for it.
- ``set_cursor(run, role, step)`` / ``cursor(run, role)``: the last step a role consumed (-1 = none).
  A consumer trains on step ``s``, checkpoints, then moves its cursor; after a crash it resumes from
  its checkpoint's step and reads ``s + 1`` from the store, so no committed group is lost or trained
  on twice. ``delete_step`` frees a consumed step.

On Redis a step is one hash ``parsimony:<run>:step:<step>:groups`` (field = prompt) and a commit
marker ``parsimony:<run>:step:<step>:commit`` (the JSON list of prompts); put and commit are Lua
scripts, so each is atomic on the server. :class:`RedisServer` starts a private ``redis-server``
(Debian's package; ``scripts/setup_env.sh`` installs it) on 127.0.0.1 with its own free port and data
directory (append-only file on), for tests and for ``parsimony`` itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
KEY_PREFIX = "parsimony"


def _name(kind: str, value: Any) -> str:
    s = str(value)
    if not s or not _NAME_RE.match(s):
        raise ValueError(f"store {kind} must be a non-empty name of letters, digits, '_', '.', '-', got {value!r}")
    return s


def _step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"store step must be an int >= 0, got {step!r}")
    return step


def step_key(run: str, step: int, what: str) -> str:
    """``parsimony:<run>:step:<step>:<what>``: run and step only (no date)."""
    return f"{KEY_PREFIX}:{_name('run', run)}:step:{_step(step)}:{what}"


def cursor_key(run: str, role: str) -> str:
    return f"{KEY_PREFIX}:{_name('run', run)}:cursor:{_name('role', role)}"


def encode_record(record: Mapping[str, Any]) -> str:
    """A group record as JSON (ids, masks, scalars; a tensor or any non-JSON value is refused)."""
    if not isinstance(record, Mapping):
        raise TypeError(f"a store record is a mapping, got {type(record).__name__}")
    try:
        return json.dumps(record, separators=(",", ":"), allow_nan=True)
    except TypeError as e:
        raise TypeError(f"a store record holds only JSON data (token ids, masks, scalar rewards): {e}") from None


@runtime_checkable
class Store(Protocol):
    def put_group(self, run: str, step: int, prompt: str, record: Mapping[str, Any]) -> bool: ...
    def commit_step(self, run: str, step: int, prompts: Sequence[str]) -> bool: ...
    def committed(self, run: str, step: int) -> list[str] | None: ...
    def get_step(self, run: str, step: int) -> dict[str, dict] | None: ...
    def set_cursor(self, run: str, role: str, step: int) -> None: ...
    def cursor(self, run: str, role: str) -> int: ...
    def delete_step(self, run: str, step: int) -> None: ...


class _WaitMixin:
    def wait_step(self, run: str, step: int, timeout: float = 60.0, poll: float = 0.05) -> dict[str, dict] | None:
        """``get_step`` once the step is committed; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.get_step(run, step)  # type: ignore[attr-defined]
            if got is not None or time.monotonic() >= deadline:
                return got
            time.sleep(poll)


class InProcessStore(_WaitMixin):
    """The store in one process's memory (thread-safe); records go through JSON like Redis's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, str]] = {}
        self._commits: dict[str, list[str]] = {}
        self._cursors: dict[str, int] = {}

    def put_group(self, run, step, prompt, record) -> bool:
        gk, ck, p = step_key(run, step, "groups"), step_key(run, step, "commit"), _name("prompt", prompt)
        data = encode_record(record)
        with self._lock:
            if ck in self._commits:
                return False
            self._groups.setdefault(gk, {})[p] = data
            return True

    def commit_step(self, run, step, prompts) -> bool:
        gk, ck = step_key(run, step, "groups"), step_key(run, step, "commit")
        ps = [_name("prompt", p) for p in prompts]
        with self._lock:
            if ck in self._commits:
                return False
            have = self._groups.get(gk, {})
            missing = [p for p in ps if p not in have]
            if missing:
                raise ValueError(f"commit_step({run!r}, {step}): no group for prompts {missing}")
            self._commits[ck] = ps
            return True

    def committed(self, run, step) -> list[str] | None:
        with self._lock:
            c = self._commits.get(step_key(run, step, "commit"))
            return None if c is None else list(c)

    def get_step(self, run, step) -> dict[str, dict] | None:
        with self._lock:
            c = self._commits.get(step_key(run, step, "commit"))
            if c is None:
                return None
            g = self._groups[step_key(run, step, "groups")]
            return {p: json.loads(g[p]) for p in c}

    def set_cursor(self, run, role, step) -> None:
        with self._lock:
            self._cursors[cursor_key(run, role)] = int(step)

    def cursor(self, run, role) -> int:
        with self._lock:
            return self._cursors.get(cursor_key(run, role), -1)

    def delete_step(self, run, step) -> None:
        with self._lock:
            self._groups.pop(step_key(run, step, "groups"), None)
            self._commits.pop(step_key(run, step, "commit"), None)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted([*self._groups, *self._commits, *self._cursors])


# KEYS[1] = commit marker, KEYS[2] = groups hash; ARGV[1] = prompt, ARGV[2] = record
_PUT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
# KEYS as above; ARGV[1] = JSON list of prompts, ARGV[2..] = the prompts. Returns 1 (committed),
# 0 (already committed) or the first missing prompt (a string)
_COMMIT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then return ARGV[i] end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisStore(_WaitMixin):
    """The store on a Redis server, through the ``redis`` client (``url``: ``redis://host:port/db``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True)
        self._put = self.client.register_script(_PUT_LUA)
        self._commit = self.client.register_script(_COMMIT_LUA)

    def put_group(self, run, step, prompt, record) -> bool:
        keys = [step_key(run, step, "commit"), step_key(run, step, "groups")]
        return bool(self._put(keys=keys, args=[_name("prompt", prompt), encode_record(record)]))

    def commit_step(self, run, step, prompts) -> bool:
        ps = [_name("prompt", p) for p in prompts]
        keys = [step_key(run, step, "commit"), step_key(run, step, "groups")]
        res = self._commit(keys=keys, args=[json.dumps(ps), *ps])
        if isinstance(res, str):
            missing = [p for p in ps if not self.client.hexists(keys[1], p)]
            raise ValueError(f"commit_step({run!r}, {step}): no group for prompts {missing or [res]}")
        return bool(res)

    def committed(self, run, step) -> list[str] | None:
        c = self.client.get(step_key(run, step, "commit"))
        return None if c is None else list(json.loads(c))

    def get_step(self, run, step) -> dict[str, dict] | None:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(step_key(run, step, "commit"))
        pipe.hgetall(step_key(run, step, "groups"))
        c, g = pipe.execute()
        if c is None:
            return None
        return {p: json.loads(g[p]) for p in json.loads(c)}

    def set_cursor(self, run, role, step) -> None:
        self.client.set(cursor_key(run, role), int(step))

    def cursor(self, run, role) -> int:
        v = self.client.get(cursor_key(run, role))
        return -1 if v is None else int(v)

    def delete_step(self, run, step) -> None:
        self.client.delete(step_key(run, step, "groups"), step_key(run, step, "commit"))

    def keys(self) -> list[str]:
        return sorted(self.client.keys(f"{KEY_PREFIX}:*"))


def make_store(spec: str | None = None) -> InProcessStore | RedisStore:
    """``None`` / ``"memory"`` -> :class:`InProcessStore`; ``redis://...`` -> :class:`RedisStore`."""
    if spec in (None, "", "memory"):
        return InProcessStore()
    if isinstance(spec, str) and spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec)
    raise ValueError(f"store: expected 'memory' or a redis:// URL, got {spec!r}")


# --- a private redis-server ------------------------------------------------------------------


def redis_server_executable() -> str | None:
    """The ``redis-server`` binary (``PARSIMONY_REDIS_SERVER`` or on PATH), or None."""
    exe = os.environ.get("PARSIMONY_REDIS_SERVER") or shutil.which("redis-server")
    return exe if exe and os.access(exe, os.X_OK) else None


def free_port(host: str = "127.0.0.1") -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """``redis-server`` on ``host`` (127.0.0.1) with a free port and its own data directory
    (append-only file, so a restarted server keeps what was committed). Use as a context manager,
    or ``start()`` / ``stop()``; ``url`` is the ``redis://`` address."""

    def __init__(self, data_dir: str | Path, port: int | None = None, host: str = "127.0.0.1",
                 executable: str | None = None, start_timeout: float = 15.0) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.executable = executable or redis_server_executable()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the redis server is not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> "RedisServer":
        if self.executable is None:
            raise RuntimeError("redis-server not found: run scripts/setup_env.sh (installs Debian's redis-server) "
                               "or set PARSIMONY_REDIS_SERVER")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fixed = self.port is not None
        for attempt in range(3):  # a free port may be taken between the probe and the bind
            port = self.port if fixed else free_port(self.host)
            cmd = [self.executable, "--bind", self.host, "--port", str(port), "--dir", str(self.data_dir),
                   "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                   "--logfile", str(self.log_path)]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            self.port = port
            if self._wait_ready():
                return self
            self.stop()
            if fixed:
                break
            self.port = None
        tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"redis-server did not start on {self.host}:{port}; log tail:\n{tail}")

    def _wait_ready(self) -> bool:
        import redis

        deadline = time.monotonic() + self.start_timeout
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


__all__ = [
    "InProcessStore",
    "RedisServer",
    "RedisStore",
    "Store",
    "cursor_key",
    "encode_record",
    "make_store",
    "redis_server_executable",
    "step_key",
]
