"""``parsimony train --role NAME``: a method's processes that train with a trainer of their own.

A method registers the flag (M-GRPO's decoupled training: ``planner | executor``); the command takes
it out of the command line with :func:`pop_role_flag` and gets the role's trainer class, imported by
name when used, so the engine never imports the method.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from rl.errors import ConfigError
from rl.presets import load_methods

__all__ = ["ROLE_FLAGS", "RoleFlag", "pop_role_flag", "register_role_flag"]

@dataclass(frozen=True)
class RoleFlag:
    """A method's ``--role`` flag: the role names, ``pop(argv) -> (argv, role | None)`` that takes the
    flag out of the command line (and turns it into the method's settings), and the trainer class of a
    role as ``"module:Class"`` (imported when used; a role not listed trains with the GRPO trainer)."""

    roles: tuple[str, ...]
    pop: Callable[[list[str]], tuple[list[str], str | None]]
    trainers: Mapping[str, str]
    source: str = ""


ROLE_FLAGS: list[RoleFlag] = []


def register_role_flag(roles: Iterable[str], pop: Callable[[list[str]], tuple[list[str], str | None]],
                       trainers: Mapping[str, str] | None = None) -> RoleFlag:
    """Register a ``--role`` flag of ``parsimony train`` (one method may own it)."""
    import inspect

    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    flag = RoleFlag(tuple(roles), pop, dict(trainers or {}), caller.f_globals.get("__name__", "") if caller else "")
    if any(f.source == flag.source for f in ROLE_FLAGS):
        return next(f for f in ROLE_FLAGS if f.source == flag.source)
    if ROLE_FLAGS:
        raise ValueError(f"--role is already registered by {ROLE_FLAGS[0].source}")
    ROLE_FLAGS.append(flag)
    return flag


def pop_role_flag(argv: Sequence[str]) -> tuple[list[str], Any | None]:
    """``argv`` without ``--role`` and the trainer class its role asks for (None: the default trainer).
    A ``--role`` that no method registered is a :class:`ConfigError`."""
    argv = list(argv)
    if not any(a == "--role" or a.startswith("--role=") for a in argv):
        return argv, None
    load_methods()
    if not ROLE_FLAGS:
        raise ConfigError("--role: no method registered roles (M-GRPO's decoupled training does: planner | executor)")
    flag = ROLE_FLAGS[0]
    argv, role = flag.pop(argv)
    target = flag.trainers.get(role) if role is not None else None
    if target is None:
        return argv, None
    module, _, attr = target.partition(":")
    return argv, getattr(importlib.import_module(module), attr)
