import copy
import math

import pytest

from rewards.hooks import RewardHooks
from rl.rewarding import RewardError, SkipBatch, resolve_reward_funcs, score_completions

ROWS = [{"prompt": "p", "answer": "1", "data_source": "x"}, {"prompt": "q", "answer": "2", "data_source": "y"}]


def length_reward(prompts, completions, completion_ids, **kw):
    return [float(len(c)) for c in completions]


def answer_echo(prompts, completions, completion_ids, answer, data_source, **kw):
    # dataset columns arrive by name, one entry per completion
    return [1.0 if c == a else 0.0 for c, a in zip(completions, answer)]


def test_weighted_total_and_columns():
    funcs, names = resolve_reward_funcs([length_reward, answer_echo])
    rewards, total, _, _ = score_completions(
        funcs, names, [0.5, 2.0], ["p", "q"], ["1", "22"], [[1], [2, 2]], ROWS
    )
    assert rewards == {"length_reward": [1.0, 2.0], "answer_echo": [1.0, 0.0]}
    assert total == [0.5 * 1 + 2 * 1, 0.5 * 2 + 2 * 0]


def test_none_means_not_applicable():
    def partial(prompts, completions, **kw):
        return [None, 3.0]

    funcs, names = resolve_reward_funcs([partial])
    rewards, total, _, _ = score_completions(funcs, names, [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS)
    assert math.isnan(rewards["partial"][0]) and total == [0.0, 3.0]


def test_raising_reward_names_itself_or_skips():
    def broken(prompts, completions, **kw):
        raise ZeroDivisionError("boom")

    funcs, names = resolve_reward_funcs([broken])
    with pytest.raises(RewardError, match="reward function 'broken' raised ZeroDivisionError: boom"):
        score_completions(funcs, names, [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS)
    with pytest.raises(SkipBatch, match="broken"):
        score_completions(funcs, names, [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS, error_policy="skip_batch")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_rewards_policy(bad):
    def nonfinite(prompts, completions, **kw):
        return [bad, 1.0]

    funcs, names = resolve_reward_funcs([nonfinite])
    args = (funcs, names, [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS)
    with pytest.raises(RewardError, match="nonfinite.*completion 0"):
        score_completions(*args)
    with pytest.raises(SkipBatch):
        score_completions(*args, nonfinite_policy="skip_batch")
    rewards, total, metrics, _ = score_completions(*args, nonfinite_policy="zero")
    assert rewards["nonfinite"] == [0.0, 1.0] and total == [0.0, 1.0]
    assert metrics["rewards/nonfinite/nonfinite"] == 1.0


def test_wrong_length_is_an_error():
    def short(prompts, completions, **kw):
        return [1.0]

    funcs, names = resolve_reward_funcs([short])
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        score_completions(funcs, names, [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS)


def test_duplicate_names_get_distinct_keys():
    _, names = resolve_reward_funcs([length_reward, length_reward])
    assert names == ["length_reward", "length_reward_2"]


class WithMeta(RewardHooks):
    __name__ = "with_meta"

    def __call__(self, prompts, completions, **kw):
        self._meta = [{"len": len(c)} for c in completions]
        return [1.0] * len(completions)

    def pop_meta(self):
        return self._meta


class HalfHooked:
    """Defines a hook without declaring the protocol: its hook would be ignored, so it is refused."""

    __name__ = "half_hooked"

    def __call__(self, prompts, completions, **kw):
        return [1.0] * len(completions)

    def pop_meta(self):
        return [{}] * 2


def test_a_reward_with_undeclared_hooks_is_refused_by_name():
    with pytest.raises(TypeError, match="half_hooked.*pop_meta.*RewardHooks"):
        resolve_reward_funcs([HalfHooked()])


def test_pop_meta_is_merged_per_completion():
    funcs, names = resolve_reward_funcs([WithMeta()])
    *_, metas = score_completions(funcs, names, [1.0], ["p", "q"], ["a", "bbb"], [[1], [2]], ROWS)
    assert metas == [{"len": 1}, {"len": 3}]


def test_token_level_rewards_stay_out_of_the_total():
    def per_token(prompts, completions, completion_ids, **kw):
        return [[0.5] * len(ids) for ids in completion_ids]

    funcs, names = resolve_reward_funcs([per_token, length_reward])
    rewards, total, _, _ = score_completions(funcs, names, [1.0, 1.0], ["p", "q"], ["a", "bb"], [[1], [2, 3]], ROWS)
    assert rewards["per_token"] == [[0.5], [0.5, 0.5]] and total == [1.0, 2.0]


def test_rewards_receive_each_completions_meta():
    def tool_efficiency(prompts, completions, meta, **kw):  # reads counts, not text
        return [1.0 / (1 + m["tool_calls"]) for m in meta]

    seen = {}

    def catch_all(prompts, completions, completion_ids, **kw):
        seen.update(copy.deepcopy(kw))
        kw["meta"][0]["tool_calls"] = 99  # a reward mutating its copy changes nothing upstream
        return [0.0] * len(completions)

    meta = [{"tool_calls": 0, "role": 0}, {"tool_calls": 3, "role": 1, "parent": 0}]
    funcs, names = resolve_reward_funcs([tool_efficiency, catch_all])
    rewards, *_ = score_completions(funcs, names, [1.0, 1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS, meta=meta)
    assert rewards["tool_efficiency"] == [1.0, 0.25]
    assert seen["meta"] == meta
    assert meta[0]["tool_calls"] == 0 and seen["answer"] == ["1", "2"]
    # without trajectory records every completion gets an empty one
    seen.clear()
    score_completions([catch_all], ["c"], [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS)
    assert seen["meta"] == [{}, {}]
    with pytest.raises(ValueError, match="meta has 1 records for 2 completions"):
        score_completions([catch_all], ["c"], [1.0], ["p", "q"], ["a", "b"], [[1], [2]], ROWS, meta=[{}])


def test_a_reward_without_kwargs_gets_only_what_it_names():
    # no **kwargs: before, every column (and now meta) was passed and the call raised TypeError
    def strict(completions, answer):
        return [1.0 if c == a else 0.0 for c, a in zip(completions, answer)]

    class Strict:
        def __call__(self, prompts, completions, *, meta):
            return [float(len(m)) for m in meta]

    funcs, names = resolve_reward_funcs([strict, Strict()])
    rewards, *_ = score_completions(funcs, names, [1.0, 1.0], ["p", "q"], ["1", "x"], [[1], [2]], ROWS,
                                    meta=[{"a": 1}, {}])
    assert rewards == {"strict": [1.0, 0.0], "Strict": [1.0, 0.0]}
