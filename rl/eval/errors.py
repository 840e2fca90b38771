"""The evaluation's one user-error type, importable by every evaluation module without a cycle."""

from __future__ import annotations

from rl.errors import ConfigError


class EvalError(ConfigError):
    """A user error in an evaluation request; the message is one clear line (``run_cli``
    prints it as ``error: ...`` and exits with code 2)."""
