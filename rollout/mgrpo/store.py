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
RECONNECT_S = 30.0  # how long a Redis store keeps reconnecting (bounded backoff) before the run fails
_URL_SECRET = re.compile(r"(://[^/@:]*:)[^/@]*@")


class StoreError(RuntimeError):
    """The store cannot be used (unreachable past the reconnect limit, refused credentials, a corrupt
    record); the message is one line naming the store (password hidden), and the run, step and prompt."""


def redact_url(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host`` (the password never reaches a log)."""
    return _URL_SECRET.sub(r"\1***@", str(url))


def decode_record(raw: str, where: str) -> dict:
    """One stored record (JSON) -> dict; anything else is a :class:`StoreError` naming ``where``."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as e:
        raise StoreError(f"{where}: corrupt record (not JSON: {e})") from None
    if not isinstance(record, dict):
        raise StoreError(f"{where}: corrupt record (a JSON {type(record).__name__}, expected an object)")
    return record


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
    name: str  # the store as logs show it (a password hidden)

    def put_group(self, run: str, step: int, prompt: str, record: Mapping[str, Any]) -> bool: ...
    def commit_step(self, run: str, step: int, prompts: Sequence[str]) -> bool: ...
    def committed(self, run: str, step: int) -> list[str] | None: ...
    def get_step(self, run: str, step: int) -> dict[str, dict] | None: ...
    def set_cursor(self, run: str, role: str, step: int) -> None: ...
    def cursor(self, run: str, role: str) -> int: ...
    def delete_step(self, run: str, step: int) -> None: ...
    def check(self, limit_s: float = 5.0) -> None: ...


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

    name = "memory"

    def check(self, limit_s: float = 5.0) -> None:
        """Nothing to reach: an in-process store is always there."""

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
            return {p: decode_record(g[p], f"store memory: run {run!r} step {step} prompt {p!r}") for p in c}

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
    """The store on a Redis server, through the ``redis`` client (``url``: ``redis://[:password@]host:port/db``).

    A lost connection (a server restart) is retried with bounded backoff (0.1 s doubling to 2 s) for
    ``reconnect_s`` seconds; then, and for refused credentials at once, a :class:`StoreError`. Every
    operation is safe to repeat: put and commit are atomic Lua scripts, and a commit repeated after a
    lost reply finds the step committed with the same prompts."""

    def __init__(self, url: str, timeout: float = 10.0, reconnect_s: float = RECONNECT_S) -> None:
        import redis

        self.url = url
        self.name = redact_url(url)
        self.reconnect_s = float(reconnect_s)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True)
        self._put = self.client.register_script(_PUT_LUA)
        self._commit = self.client.register_script(_COMMIT_LUA)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        deadline = time.monotonic() + self.reconnect_s
        delay = 0.1
        while True:
            try:
                return fn(*args, **kwargs)
            except redis.AuthenticationError as e:
                raise StoreError(f"store {self.name}: the server refused the credentials ({e})") from None
            except redis.ResponseError as e:
                if any(k in str(e) for k in ("NOAUTH", "WRONGPASS", "invalid password")):
                    raise StoreError(f"store {self.name}: the server refused the credentials ({e})") from None
                raise
            except (redis.ConnectionError, redis.TimeoutError) as e:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(f"store {self.name}: unreachable for {self.reconnect_s:g} s during {what} "
                                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 2.0)

    def check(self, limit_s: float = 5.0) -> None:
        """One round trip (PING), reconnecting for at most ``limit_s``: a run checks its store when it starts."""
        saved, self.reconnect_s = self.reconnect_s, min(self.reconnect_s, limit_s)
        try:
            self._call("the start-of-run check", self.client.ping)
        finally:
            self.reconnect_s = saved

    def put_group(self, run, step, prompt, record) -> bool:
        keys = [step_key(run, step, "commit"), step_key(run, step, "groups")]
        args = [_name("prompt", prompt), encode_record(record)]
        return bool(self._call(f"put_group (run {run!r} step {step})", self._put, keys=keys, args=args))

    def commit_step(self, run, step, prompts) -> bool:
        ps = [_name("prompt", p) for p in prompts]
        keys = [step_key(run, step, "commit"), step_key(run, step, "groups")]
        res = self._call(f"commit_step (run {run!r} step {step})", self._commit, keys=keys, args=[json.dumps(ps), *ps])
        if isinstance(res, str):
            missing = [p for p in ps if not self._call("commit_step", self.client.hexists, keys[1], p)]
            raise ValueError(f"commit_step({run!r}, {step}): no group for prompts {missing or [res]}")
        return bool(res)

    def committed(self, run, step) -> list[str] | None:
        c = self._call(f"committed (run {run!r} step {step})", self.client.get, step_key(run, step, "commit"))
        return None if c is None else self._commit_marker(c, run, step)

    def _commit_marker(self, raw: str, run: str, step: int) -> list[str]:
        """A step's commit marker (the JSON list of its prompts); anything else is a :class:`StoreError`."""
        try:
            prompts = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StoreError(f"store {self.name}: run {run!r} step {step}: corrupt commit marker ({e})") from None
        if not isinstance(prompts, list):
            raise StoreError(f"store {self.name}: run {run!r} step {step}: corrupt commit marker (not a list)")
        return [str(p) for p in prompts]

    def get_step(self, run, step) -> dict[str, dict] | None:
        def read() -> tuple[Any, Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.get(step_key(run, step, "commit"))
            pipe.hgetall(step_key(run, step, "groups"))
            return tuple(pipe.execute())

        c, g = self._call(f"get_step (run {run!r} step {step})", read)
        if c is None:
            return None
        out = {}
        for p in self._commit_marker(c, run, step):
            where = f"store {self.name}: run {run!r} step {step} prompt {p!r}"
            if p not in g:
                raise StoreError(f"{where}: committed, but its record is missing")
            out[p] = decode_record(g[p], where)
        return out

    def set_cursor(self, run, role, step) -> None:
        self._call("set_cursor", self.client.set, cursor_key(run, role), int(step))

    def cursor(self, run, role) -> int:
        v = self._call("cursor", self.client.get, cursor_key(run, role))
        try:
            return -1 if v is None else int(v)
        except ValueError:
            raise StoreError(f"store {self.name}: run {run!r} cursor of {role!r}: corrupt ({v!r})") from None

    def delete_step(self, run, step) -> None:
        self._call("delete_step", self.client.delete, step_key(run, step, "groups"), step_key(run, step, "commit"))

    def keys(self) -> list[str]:
        return sorted(self._call("keys", self.client.keys, f"{KEY_PREFIX}:*"))


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
                 executable: str | None = None, start_timeout: float = 15.0, password: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.password = password  # requirepass: clients must give it in the URL (redis://:<password>@host:port/0)
        self.executable = executable or redis_server_executable()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the redis server is not started")
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

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
                   "--logfile", str(self.log_path)] + (["--requirepass", self.password] if self.password else [])
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
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0,
                             password=self.password)
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
