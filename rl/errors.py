"""The errors a user's input raises in the engine. The command line turns each into one
``error: ...`` line and exit code 2 (``rl/commands/cli.py``)."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError"]


class ConfigError(ValueError):
    """A config value or combination of values is invalid. The message names the field."""


class CheckpointError(ValueError):
    """A checkpoint is incomplete, corrupt, or holds something that loading could execute. The message
    names the file and what is wrong."""
