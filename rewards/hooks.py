"""The lifecycle hooks a reward object may offer the trainer, declared once.

A reward is any callable ``f(prompts, completions, completion_ids, **columns) -> list`` (TRL's
contract). A reward that needs more subclasses :class:`RewardHooks` (or implements the whole
:class:`LifecycleReward` protocol) and overrides what it needs:

- ``setup(tokenizer=..., args=...)``: called once, when the trainer is built (e.g. to map character
  spans to tokens, or to read its settings from ``args.method_kwargs``);
- ``set_step(step)``: before each optimizer step's rollouts (0-based), for schedules;
- ``pop_metrics() -> dict``: counters since the last call, logged with the step;
- ``pop_meta() -> list[dict] | None``: one record per completion of the last call, merged into the
  rollout's ``meta`` (e.g. DECS's chunk spans, read by its sampler).

A reward whose values depend on what it saw earlier in training (a running maximum, targets it
re-estimates) keeps that state in the trainer's checkpoint through two more hooks, declared by
:class:`StatefulReward` (and given a stateless default by :class:`RewardHooks`):

- ``checkpoint_state() -> dict``: plain data (numbers, strings, lists, dicts, None) saved with each
  checkpoint, per process; ``{}`` = nothing to save;
- ``load_checkpoint_state(state)``: restore it on resume (after ``setup``), so the next call scores
  exactly as the saved run's would have.

The trainer calls these methods on :func:`hooks_of` ``(fn)`` / :func:`state_hooks_of` ``(fn)``: the
reward itself when it declares them, an object whose hooks do nothing when it is a plain function.
It never probes a reward for single methods.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["HOOK_NAMES", "LifecycleReward", "RewardHooks", "STATE_HOOK_NAMES", "StatefulReward", "check_hooks", "hooks_of",
           "state_hooks_of"]

HOOK_NAMES = ("setup", "set_step", "pop_metrics", "pop_meta")
STATE_HOOK_NAMES = ("checkpoint_state", "load_checkpoint_state")


@runtime_checkable
class LifecycleReward(Protocol):
    """A reward object with every lifecycle hook (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> list: ...

    def setup(self, tokenizer: Any = None, args: Any = None) -> None: ...

    def set_step(self, step: int) -> None: ...

    def pop_metrics(self) -> dict[str, float]: ...

    def pop_meta(self) -> list[dict[str, Any]] | None: ...


@runtime_checkable
class StatefulReward(Protocol):
    """A reward object whose state goes into the trainer's checkpoint (see the module docstring)."""

    def checkpoint_state(self) -> dict[str, Any]: ...

    def load_checkpoint_state(self, state: dict[str, Any]) -> None: ...


class RewardHooks:
    """Base class of reward objects with lifecycle hooks: each hook does nothing until overridden."""

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        """Called once when the trainer is built."""

    def set_step(self, step: int) -> None:
        """Called before each optimizer step's rollouts (0-based)."""

    def pop_metrics(self) -> dict[str, float]:
        """Counters since the last call (logged with the step)."""
        return {}

    def pop_meta(self) -> list[dict[str, Any]] | None:
        """One record per completion of the last call, merged into each rollout's ``meta``."""
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        """Plain data saved with each checkpoint (``{}``: a stateless reward saves nothing)."""
        return {}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`checkpoint_state` returned (called on resume, after ``setup``)."""


_NO_HOOKS = RewardHooks()


def hooks_of(fn: Any) -> LifecycleReward | RewardHooks:
    """The object whose hooks the trainer calls for reward ``fn``: ``fn`` when it declares them
    (a :class:`RewardHooks` subclass or a full :class:`LifecycleReward`), else hooks that do nothing."""
    if isinstance(fn, (RewardHooks, LifecycleReward)):
        return fn
    return _NO_HOOKS


def state_hooks_of(fn: Any) -> StatefulReward | RewardHooks:
    """The object whose checkpoint hooks the trainer calls for reward ``fn``: ``fn`` when it declares
    them (a :class:`RewardHooks` subclass or a :class:`StatefulReward`), else hooks that save nothing."""
    if isinstance(fn, (RewardHooks, StatefulReward)):
        return fn
    return _NO_HOOKS


def check_hooks(fn: Any, name: str) -> None:
    """Refuse a reward that defines some hook methods without declaring the protocol: its hooks would
    be ignored. Called once when the trainer resolves its rewards, never in the loop."""
    if isinstance(fn, RewardHooks):
        return
    for names, protocol in ((HOOK_NAMES, LifecycleReward), (STATE_HOOK_NAMES, StatefulReward)):
        if isinstance(fn, protocol):
            continue
        partial = [h for h in names if callable(getattr(fn, h, None))]
        if partial:
            missing = [h for h in names if h not in partial]
            raise TypeError(
                f"reward function {name!r} defines {partial} but not {missing}: subclass rewards.hooks.RewardHooks "
                "(it gives every hook a default) so that the trainer calls them"
            )
