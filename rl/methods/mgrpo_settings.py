"""M-GRPO's settings (``method_kwargs`` keys ``mgrpo_*``), read by the estimator (``rl/methods/mgrpo.py``)
and by the decoupled executor's process (``rl/methods/mgrpo_two_process.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rl.errors import ConfigError
from rl.presets import setting_error

TRAIN_ROLES = ("all", "planner", "executor")


@dataclass(frozen=True)
class MGRPOSettings:
    d_max: int | str = "auto"
    d_max_cap: int = 8
    # "all" (shared); "planner": executor rows are dropped after alignment (and pushed to the store, if any);
    # "executor": the process of rl/methods/mgrpo_two_process.py's StoreExecutorTrainer (reads the store, trains executor rows)
    train_roles: str = "all"
    store: str | None = None  # None | "memory" | "redis://...": where the executor rows go (decoupled training)
    run: str | None = None  # the store's run name (both processes give the same)
    serve_port: int | None = None  # the executor process serves generation on 127.0.0.1:<port> (0 = a free one)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None) -> "MGRPOSettings":
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"method_kwargs: must be a mapping, got {type(kwargs).__name__}")
        d = kwargs.get("mgrpo_d_max", cls.d_max)
        if d != "auto" and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise setting_error("mgrpo_d_max", f"must be an int >= 1 or 'auto', got {d!r}")
        cap = kwargs.get("mgrpo_d_max_cap", cls.d_max_cap)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise setting_error("mgrpo_d_max_cap", f"must be an int >= 1, got {cap!r}")
        roles = kwargs.get("mgrpo_train_roles", cls.train_roles)
        if roles not in TRAIN_ROLES:
            raise setting_error("mgrpo_train_roles", f"must be one of {list(TRAIN_ROLES)}, got {roles!r}")
        store = kwargs.get("mgrpo_store", cls.store)
        if store is not None and not (store == "memory" or (isinstance(store, str) and store.startswith("redis://"))):
            raise setting_error("mgrpo_store", f"must be null, 'memory' or a redis:// URL, got {store!r}")
        run = kwargs.get("mgrpo_run", cls.run)
        if run is not None and (not isinstance(run, str) or not run or any(c in run for c in ": \t\n")):
            raise setting_error("mgrpo_run", f"must be a run name without ':' or spaces, got {run!r}")
        if store is not None and roles == "all":
            raise setting_error("mgrpo_train_roles", "a store decouples the roles: set 'planner' (the planner's "
                                "process) or 'executor' (the executor's)")
        if store is not None and store != "memory" and run is None:
            raise setting_error("mgrpo_run", "a Redis store needs a run name shared by the planner and executor processes")
        port = kwargs.get("mgrpo_serve_port", cls.serve_port)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536):
            raise setting_error("mgrpo_serve_port", f"must be null or a port 0-65535, got {port!r}")
        return cls(d_max=d, d_max_cap=cap, train_roles=roles, store=store, run=run or "run", serve_port=port)

    @classmethod
    def from_args(cls, args: Any) -> "MGRPOSettings":
        return cls.from_kwargs(getattr(args, "method_kwargs", None))


SETTINGS = {"mgrpo_d_max": "auto", "mgrpo_d_max_cap": 8, "mgrpo_train_roles": "all", "mgrpo_store": None,
             "mgrpo_run": None, "mgrpo_serve_port": None}
