"""OffPolicyEngine: one request in flight, weight syncs never under a running request, versions tagged."""

from __future__ import annotations

import threading

import pytest

from rollout.off_policy import OffPolicyEngine
from rollout.types import SamplingConfig, Trajectory


class _SlowEngine:
    def __init__(self):
        self.release = threading.Event()
        self.log = []

    def generate(self, prompt_ids, n, sampling, seed=None):
        self.log.append(("generate", seed))
        assert self.release.wait(10)
        if prompt_ids == [[0]]:
            raise ValueError("bad prompt")
        return [[Trajectory(prompt_ids=p, completion_ids=[1]) for _ in range(n)] for p in prompt_ids]

    def sync_weights(self, model):
        self.log.append(("sync", model))


def test_sync_waits_for_the_request_in_flight_and_versions_are_tagged():
    inner = _SlowEngine()
    engine = OffPolicyEngine(inner)
    s = SamplingConfig(max_new_tokens=1)
    fut = engine.submit([[5]], 2, s, version=3, seed=11)
    engine.sync_weights("weights-4")  # the update ended while the request generates
    assert ("sync", "weights-4") not in inner.log
    inner.release.set()
    groups = fut.result(timeout=10)
    assert [t.meta["policy_version"] for t in groups[0]] == [3, 3]
    engine.generate([[6]], 1, s, version=4)
    assert inner.log == [("generate", 11), ("sync", "weights-4"), ("generate", None)]
    engine.sync_weights("weights-5")  # nothing in flight: applied at once
    assert inner.log[-1] == ("sync", "weights-5")
    with pytest.raises(ValueError, match="bad prompt"):  # an engine error reaches whoever waits for it
        engine.generate([[0]], 1, s)
    engine.close()
