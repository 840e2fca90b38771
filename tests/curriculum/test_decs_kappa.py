"""The ``decs_kappa`` assembler: easy-prompt admission, kappa updates, resume.

Fake rollouts: prompt index ``i`` decides the outcome of its G = 2 rollouts through
``KIND[i % len(KIND)]`` (accuracy values; the total reward is the accuracy).
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from curriculum.decs_kappa import DECSKappaAssembler, KappaSettings, admission_count
from curriculum.samplers import ASSEMBLERS, PromptSampler, ScoredGroup, get_assembler

OUTCOMES = {"kept": [1.0, 0.0], "easy": [1.0, 1.0], "wrong": [0.0, 0.0]}
# per 6 consecutive prompts: 3 kept, 2 easy, 1 all wrong
PATTERN = ["kept", "kept", "kept", "easy", "easy", "wrong"]


def cfg(rounds=4, seed=0, **method_kwargs):
    return SimpleNamespace(max_generation_batches=rounds, seed=seed, method_kwargs=method_kwargs)


def group(i, acc, total=None):
    return ScoredGroup(prompt_index=i, trajectories=[None] * len(acc), rewards={"accuracy": list(acc)},
                       total=list(acc if total is None else total))


class Counter:
    """draw(k) -> the next ``size`` integers (k when size is None); records the rounds.

    A fixed size of 6 makes every round one period of PATTERN whatever the batch size."""

    def __init__(self, pattern=PATTERN, size=6):
        self.next = 0
        self.pattern = pattern
        self.size = size
        self.rounds = 0

    def draw(self, k):
        k = self.size or k
        out = list(range(self.next, self.next + k))
        self.next += k
        return out

    def rollout(self, indices):
        self.rounds += 1
        return [group(i, OUTCOMES[self.pattern[i % len(self.pattern)]]) for i in indices]


def kinds(groups, pattern=PATTERN):
    return [pattern[g.prompt_index % len(pattern)] for g in groups]


def test_registered_and_settings():
    assert ASSEMBLERS["decs_kappa"] is DECSKappaAssembler
    a = get_assembler("decs_kappa", cfg())
    # the paper's code starts kappa at 0 with the previous NRP ratio at 0.5
    assert (a.kappa, a.prev_nrp, a.kept_running) == (0.0, 0.5, 0)
    s = a.settings
    assert (s.kappa_lr, s.kappa_max, s.accuracy_reward) == (0.2, 0.9, "accuracy")


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"decs_kappa_max": 1.0}, "decs_kappa_max"),
        ({"decs_kappa_max": -0.1}, "decs_kappa_max"),
        ({"decs_kappa_init": 0.95}, "decs_kappa_init"),  # above kappa_max 0.9
        ({"decs_kappa_init": -0.1}, "decs_kappa_init"),
        ({"decs_kappa_lr": -1}, "decs_kappa_lr"),
        ({"decs_kappa_lr": "fast"}, "decs_kappa_lr"),
        ({"decs_nrp_init": 1.5}, "decs_nrp_init"),
        ({"decs_accuracy_reward": ""}, "decs_accuracy_reward"),
    ],
)
def test_settings_validation_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"method_kwargs.{key}"):
        KappaSettings.from_kwargs(kwargs)
    with pytest.raises(ValueError, match=key):
        DECSKappaAssembler(cfg(**kwargs))


def test_admission_count_formula():
    assert admission_count(0.2, 8, 10) == 2  # 0.2 * 8 / 0.8 = 2 (exact despite float error)
    assert admission_count(0.1, 9, 10) == 1  # 0.9 / 0.9 = 1
    assert admission_count(0.1, 8, 10) == 0  # 0.8 / 0.9 = 0.89 -> 0
    assert admission_count(0.5, 3, 10) == 3
    assert admission_count(0.5, 3, 2) == 2  # no more than the easy prompts available
    assert admission_count(0.9, 1, 20) == 9  # 0.9 / 0.1
    assert admission_count(0.0, 100, 10) == 0
    assert admission_count(0.3, 0, 10) == 0


def test_rounds_admission_and_running_count_reset():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.2))
    src = Counter()
    # round 1: 3 kept, 2 easy, 1 wrong -> running 3, floor(0.2*3/0.8) = floor(0.75) = 0 admitted
    # round 2: running 6 -> floor(1.5) = 1 easy admitted, running reset to 0; batch 3 + 3 + 1 = 7
    groups, m = a.assemble(src.draw, src.rollout, 7)
    assert src.rounds == 2 and len(groups) == 7
    assert sorted(kinds(groups)) == ["easy"] + ["kept"] * 6
    assert m["decs/kept"] == 6 and m["decs/easy_admitted"] == 1 and m["decs/easy_available"] == 4
    assert m["decs/dropped_all_wrong"] == 2 and m["decs/dropped_zero_std"] == 0 and m["decs/kept_running"] == 0
    assert m["decs/kappa"] == 0.2 and m["sampling/generation_rounds"] == 2 and m["sampling/shortfall"] == 0
    assert m["sampling/zero_std_frac"] == pytest.approx(6 / 12)  # easy + wrong groups of 12 seen
    assert a.kept_running == 0
    assert all(g.meta["decs/category"] in ("kept", "easy") for g in groups)


def test_running_count_carries_over_between_steps():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.2))
    src = Counter()
    # step 1: one round fills the batch of 3 with kept prompts; running 3, admitted 0
    g1, m1 = a.assemble(src.draw, src.rollout, 3)
    assert kinds(g1) == ["kept"] * 3 and m1["decs/kept_running"] == 3 and m1["decs/easy_admitted"] == 0
    # step 2: running 3 + 3 = 6 -> 1 easy admitted (running reset), 4 chosen, trimmed to 3
    g2, m2 = a.assemble(src.draw, src.rollout, 3)
    assert len(g2) == 3 and m2["decs/kept_running"] == 0 and src.rounds == 2
    assert m2["decs/kept"] + m2["decs/easy_admitted"] == 3 and m2["decs/easy_admitted"] in (0, 1)


def test_kappa_zero_admits_nothing_and_does_not_accumulate():
    a = DECSKappaAssembler(cfg())
    src = Counter()
    groups, m = a.assemble(src.draw, src.rollout, 6)  # two rounds of 3 kept each
    assert kinds(groups) == ["kept"] * 6 and m["decs/easy_admitted"] == 0
    assert a.kept_running == 0 and m["decs/easy_available"] == 4


def test_all_wrong_and_other_zero_variance_groups_are_dropped_and_shortfall():
    a = DECSKappaAssembler(cfg(rounds=2, decs_kappa_init=0.5))

    def rollout(indices):
        out = []
        for i in indices:
            if i % 3 == 0:
                out.append(group(i, [0.0, 0.0]))  # all wrong
            elif i % 3 == 1:
                out.append(group(i, [1.0, 0.0], total=[0.5, 0.5]))  # mixed accuracy, equal totals: no signal
            else:
                out.append(group(i, [0.0, 1.0]))  # kept
        return out

    src = Counter()
    groups, m = a.assemble(src.draw, rollout, 6)
    assert [g.prompt_index % 3 for g in groups] == [2] * 4  # 2 kept per round of 6, two rounds
    assert m["decs/dropped_all_wrong"] == 4 and m["decs/dropped_zero_std"] == 4
    assert m["sampling/shortfall"] == 2 and m["sampling/generation_rounds"] == 2
    assert m["decs/easy_available"] == 0 and m["decs/easy_admitted"] == 0
    # no easy prompt was available: the running count keeps its credit (0.5 * 4 / 0.5 = 4 > 0 but n = 0)
    assert a.kept_running == 4


def test_fallback_without_accuracy_reward_uses_max_total_seen():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.5))

    def rollout(indices):  # reward "other" only; totals 2 = best
        table = {0: [2.0, 2.0], 1: [2.0, 0.0], 2: [0.0, 0.0], 3: [1.0, 1.0]}
        return [ScoredGroup(i, [None, None], {"other": table[i % 4]}, table[i % 4]) for i in indices]

    src = Counter(size=None)
    groups, m = a.assemble(src.draw, rollout, 4)
    # per round of 4, max total seen 2: index 0 easy, 1 kept, 2 and 3 all wrong (totals 1 < 2: none "correct");
    # running 1 -> floor(0.5 * 1 / 0.5) = 1 easy admitted per round; two rounds fill the batch of 4
    assert a.max_total_seen == 2.0
    assert sorted(g.prompt_index for g in groups) == [0, 1, 4, 5]
    assert m["decs/easy_available"] == 2 and m["decs/dropped_all_wrong"] == 4 and m["decs/easy_admitted"] == 2
    assert m["sampling/generation_rounds"] == 2


def meta(*ratios, correct=True):
    return [{"decs/nrp_ratio": r, "decs/correct": correct and r is not None} for r in ratios]


def test_kappa_update_and_clamps():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.1))
    # nrp = mean(0.9, 0.7) = 0.8 (the wrong response without NRP is skipped): 0.1 + 0.2 (0.8 - 0.5) = 0.16
    out = a.after_step(SimpleNamespace(meta=meta(0.9, 0.7, None)), {})
    assert a.kappa == pytest.approx(0.16) and a.prev_nrp == pytest.approx(0.8)
    assert out["decs/kappa"] == pytest.approx(0.16) and out["decs/nrp_ratio_step"] == pytest.approx(0.8)
    assert out["decs/nrp_count"] == 2 and out["decs/kappa_updated"] == 1.0
    # nrp 0.4: 0.16 + 0.2 (0.4 - 0.8) = 0.08
    a.after_step(SimpleNamespace(meta=meta(0.4)), {})
    assert a.kappa == pytest.approx(0.08)
    # nrp 0.0: 0.08 + 0.2 (0 - 0.4) = 0.0 -> clamp at 0 (never negative)
    a.after_step(SimpleNamespace(meta=meta(0.0, 0.0)), {})
    a.after_step(SimpleNamespace(meta=meta(0.0)), {})
    assert a.kappa == 0.0
    # an incorrect response's ratio is ignored
    a.after_step(SimpleNamespace(meta=[{"decs/nrp_ratio": 1.0, "decs/correct": False}, {"decs/nrp_ratio": 0.25}]), {})
    assert a.prev_nrp == 0.25 and a.kappa == pytest.approx(0.05)  # 0 + 0.2 (0.25 - 0)

    b = DECSKappaAssembler(cfg(decs_kappa_init=0.5, decs_kappa_lr=5.0, decs_kappa_max=0.8))
    b.after_step(SimpleNamespace(meta=meta(1.0)), {})  # 0.5 + 5 * 0.5 = 3.0 -> clamp 0.8
    assert b.kappa == 0.8
    assert admission_count(b.kappa, 1, 100) == 4  # 0.8 / 0.2: finite, no division by zero


def test_kappa_update_skipped_without_nrp():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.3))
    out = a.after_step(SimpleNamespace(meta=[{}, {"decs/nrp_ratio": None}, {"decs/correct": True}]), {})
    assert a.kappa == 0.3 and a.prev_nrp == 0.5
    assert math.isnan(out["decs/nrp_ratio_step"]) and out["decs/kappa_updated"] == 0.0 and out["decs/kappa"] == 0.3


def _run(a, sampler, steps, pattern):
    src = Counter(pattern, size=None)
    trace = []
    for s in range(steps):
        groups, m = a.assemble(sampler.draw, src.rollout, 5)
        ratios = [0.2 + 0.1 * ((g.prompt_index + s) % 7) for g in groups]
        out = a.after_step(SimpleNamespace(meta=meta(*ratios)), m)
        trace.append(([g.prompt_index for g in groups], m, out))
    return trace


def test_state_dict_json_round_trip_resumes_identically():
    pattern = ["kept", "easy", "easy", "easy", "wrong", "kept", "easy"]  # many easy: the RNG picks among them
    settings = dict(decs_kappa_init=0.4, decs_kappa_lr=0.5)
    a, sa = DECSKappaAssembler(cfg(seed=3, **settings)), PromptSampler(1000, seed=3)
    _run(a, sa, 3, pattern)
    saved = json.loads(json.dumps({"assembler": a.state_dict(), "sampler": sa.state_dict()}))
    assert saved["assembler"]["kappa"] == a.kappa and saved["assembler"]["rng_calls"] > 0
    expected = _run(a, sa, 4, pattern)

    b, sb = DECSKappaAssembler(cfg(seed=3, **settings)), PromptSampler(1000, seed=3)
    b.load_state_dict(saved["assembler"])
    sb.load_state_dict(saved["sampler"])
    assert b.state_dict() == saved["assembler"]
    got = _run(b, sb, 4, pattern)
    assert got == expected
    assert any(m["decs/easy_admitted"] > 0 for _, m, _ in got)  # the RNG path was exercised
    # a fresh assembler (no resume) takes other decisions
    c, sc = DECSKappaAssembler(cfg(seed=3, **settings)), PromptSampler(1000, seed=3)
    sc.load_state_dict(saved["sampler"])
    assert _run(c, sc, 4, pattern) != expected


def test_load_empty_state_keeps_defaults():
    a = DECSKappaAssembler(cfg(decs_kappa_init=0.2))
    a.load_state_dict({})
    assert a.kappa == 0.2 and a.prev_nrp == 0.5
