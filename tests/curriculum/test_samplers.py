import pytest

from curriculum.samplers import (
    ASSEMBLERS,
    DynamicSamplingAssembler,
    PromptSampler,
    ScoredGroup,
    get_assembler,
)


def test_sampler_is_a_permutation_per_epoch_and_resumes():
    s = PromptSampler(10, seed=3)
    first = s.draw(4) + s.draw(6)
    assert sorted(first) == list(range(10))
    second_epoch = s.draw(10)
    assert sorted(second_epoch) == list(range(10)) and second_epoch != first
    a = PromptSampler(10, seed=3)
    a.draw(7)
    state = a.state_dict()
    expected = a.draw(9)
    b = PromptSampler(10, seed=3)
    b.load_state_dict(state)
    assert b.draw(9) == expected


def test_sampler_shards_are_disjoint_and_cover():
    r0, r1 = PromptSampler(12, seed=1, rank=0, world_size=2), PromptSampler(12, seed=1, rank=1, world_size=2)
    got0, got1 = r0.draw(3) + r0.draw(3), r1.draw(3) + r1.draw(3)
    assert not set(got0) & set(got1)
    assert sorted(got0 + got1) == list(range(12))


def test_sampler_rejects_other_dataset_size():
    s = PromptSampler(10)
    with pytest.raises(ValueError, match="dataset has 5"):
        PromptSampler(5).load_state_dict(s.state_dict())


class _Cfg:
    max_generation_batches = 3


def _group(i, totals):
    return ScoredGroup(prompt_index=i, trajectories=[None] * len(totals), rewards={"r": totals}, total=totals)


def test_dynamic_sampling_drops_zero_variance_and_refills():
    s = PromptSampler(100, seed=0)
    rounds = []

    def rollout(indices):
        rounds.append(list(indices))
        # prompts with even index get all-equal rewards (no signal)
        return [_group(i, [1.0, 1.0] if i % 2 == 0 else [0.0, 1.0]) for i in indices]

    groups, m = DynamicSamplingAssembler(_Cfg()).assemble(s.draw, rollout, 4)
    assert len(groups) == 4 and all(g.prompt_index % 2 == 1 for g in groups)
    assert m["sampling/generation_rounds"] == len(rounds) >= 1
    assert m["sampling/zero_std_frac"] == pytest.approx(
        sum(i % 2 == 0 for r in rounds for i in r) / sum(len(r) for r in rounds)
    )


def test_dynamic_sampling_gives_up_after_max_rounds():
    s = PromptSampler(100, seed=0)
    calls = []

    def rollout(indices):
        calls.append(1)
        return [_group(i, [1.0, 1.0]) for i in indices]

    groups, m = DynamicSamplingAssembler(_Cfg()).assemble(s.draw, rollout, 4)
    assert groups == [] and len(calls) == 3 and m["sampling/shortfall"] == 4


def test_registry():
    assert {"plain", "dynamic"} <= set(ASSEMBLERS)
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        get_assembler("nope", _Cfg())


def test_length_grouped_batches_cover_an_epoch_with_little_padding_and_resume():
    from curriculum.samplers import LengthGroupedBatches, PromptSampler

    lengths = [(i * 37) % 101 for i in range(64)]  # [64]
    grouped = LengthGroupedBatches(PromptSampler(64, seed=5), lengths, pool=4)
    batches = [grouped.draw(4) for _ in range(16)]  # one epoch: 64 / 4
    assert sorted(i for b in batches for i in b) == list(range(64))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 30  # a random batch of 4 from 0..100 spreads ~60
    # the batches of a pool come in a shuffled order, not shortest first
    pool_orders = [[max(lengths[i] for i in b) for b in batches[p : p + 4]] for p in range(0, 16, 4)]
    assert any(order != sorted(order) for order in pool_orders)

    # resume mid-pool: the same batches follow
    a = LengthGroupedBatches(PromptSampler(64, seed=5), lengths, pool=4)
    first = [a.draw(4) for _ in range(6)]
    b = LengthGroupedBatches(PromptSampler(64, seed=5), lengths, pool=4)
    b.load_state_dict(a.state_dict())
    assert [a.draw(4) for _ in range(7)] == [b.draw(4) for _ in range(7)]
    assert first == batches[:6]
