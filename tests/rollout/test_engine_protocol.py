"""The declared engine interface: EngineBase's defaults, a minimal engine adapted, a half-declared one refused."""

from __future__ import annotations

import pytest

from rollout.types import EngineBase, RolloutEngine, SamplingConfig, Trajectory, as_rollout_engine


class Minimal:
    def __init__(self):
        self.synced = []

    def generate(self, prompt_ids, n, sampling):
        return [[Trajectory(prompt_ids=list(p), completion_ids=[7]) for _ in range(n)] for p in prompt_ids]

    def sync_weights(self, model):
        self.synced.append(model)


class HalfDeclared(Minimal):
    def close(self):  # would never be called: refused
        raise AssertionError


class Full(EngineBase, Minimal):
    def __init__(self):
        super().__init__()
        self.closed = 0

    def close(self):
        self.closed += 1


def test_a_minimal_engine_gets_the_defaults_and_forwards_the_rest():
    inner = Minimal()
    engine = as_rollout_engine(inner)
    assert isinstance(engine, RolloutEngine) and engine is not inner
    out = engine.generate([[1, 2]], 2, SamplingConfig(max_new_tokens=1))
    assert [t.completion_ids for t in out[0]] == [[7], [7]]
    engine.sync_weights("w1")
    assert inner.synced == ["w1"]
    assert engine.pad_token_id is None and engine.generates_from(object()) is False
    engine.sleep()
    engine.close()


def test_an_engine_base_subclass_is_used_as_is():
    full = Full()
    assert as_rollout_engine(full) is full
    as_rollout_engine(full).close()
    assert full.closed == 1


def test_a_half_declared_engine_and_a_non_engine_are_refused_by_name():
    with pytest.raises(TypeError, match="HalfDeclared defines \\['close'\\].*EngineBase"):
        as_rollout_engine(HalfDeclared())
    with pytest.raises(TypeError, match="object has no generate"):
        as_rollout_engine(object())
