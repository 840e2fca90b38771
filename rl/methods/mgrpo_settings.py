"""M-GRPO's settings (``method_kwargs`` keys ``mgrpo_*``), read by the estimator (``rl/methods/mgrpo.py``)
and by the decoupled executor's process (``rl/methods/mgrpo_two_process.py``). The reward's own keys
(``mgrpo_w_main``, ``mgrpo_w_local``) are in ``rewards/mgrpo.py``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rewards.settings import MethodSettings, setting
from rl.errors import ConfigError

TRAIN_ROLES = ("all", "planner", "executor")


def _store(v: Any) -> str | None:
    if v is not None and not (v == "memory" or (isinstance(v, str) and v.startswith("redis://"))):
        raise ValueError(f"must be null, 'memory' or a redis:// URL, got {v!r}")
    return v


def _run(v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or not v or any(c in v for c in ": \t\n")):
        raise ValueError(f"must be a run name without ':' or spaces, got {v!r}")
    return v


@dataclass(frozen=True)
class MGRPOSettings(MethodSettings):
    """The ``mgrpo`` estimator's settings (``parsimony methods`` lists them)."""

    error = ConfigError

    d_max: str | int = setting("mgrpo_d_max", "auto", "D_max, executor samples per planner rollout after alignment: "
                               "an int, or 'auto' = the step's median call count", choices=("auto",), minimum=1)
    d_max_cap: int = setting("mgrpo_d_max_cap", 8, "the largest D_max of 'auto'", minimum=1)
    train_roles: str = setting(
        "mgrpo_train_roles", "all", "the rows trained on: 'all' (the shared model); 'planner': executor rows dropped "
        "after alignment (and pushed to the store, if any); 'executor': the executor's process of decoupled training",
        choices=TRAIN_ROLES)
    store: str | None = setting("mgrpo_store", None, "where the executor rows go in decoupled training: null, 'memory' "
                                "or a redis:// URL", parse=_store)
    run: str | None = setting("mgrpo_run", None, "the store's run name (both processes give the same; null: 'run')",
                              parse=_run)
    serve_port: int | None = setting("mgrpo_serve_port", None, "the executor process serves generation on "
                                     "127.0.0.1:<port> (0: a free one)", minimum=0, maximum=65535)

    def check(self) -> "MGRPOSettings":
        if self.store is not None and self.train_roles == "all":
            raise self.bad("mgrpo_train_roles", "a store decouples the roles: set 'planner' (the planner's process) or "
                           "'executor' (the executor's)")
        if self.store is not None and self.store != "memory" and self.run is None:
            raise self.bad("mgrpo_run", "a Redis store needs a run name shared by the planner and executor processes")
        return dataclasses.replace(self, run=self.run or "run")
