from __future__ import annotations

import pytest

from rewards import get_reward_func
from rewards.format import check_format, format_reward, think_format_reward

GOOD = "<think>\nLet me compute 2+2.\n</think>\nThe answer is $\\boxed{4}$."


@pytest.mark.parametrize(
    "text, boxed_ok, think_ok",
    [
        (GOOD, True, True),
        ("  \n" + GOOD, True, True),  # leading whitespace
        ("<think>x</think>\\boxed{4}", True, True),
        ("<think>x</think>The answer is 4.", False, True),  # no box
        ("<think>x</think>\\boxed{}", False, True),  # empty box
        ("<think>x</think>\\boxed{4", False, True),  # unbalanced box
        ("<think>x</think>", False, False),  # no answer
        ("<think>x</think>   \n", False, False),
        ("<think>  </think>\\boxed{4}", False, False),  # empty reasoning
        ("Sure! <think>x</think>\\boxed{4}", False, False),  # not at the start
        ("<think>a</think><think>b</think>\\boxed{4}", False, False),  # two sections
        ("<think>a</think>\\boxed{4}</think>", False, False),
        ("<think>a \\boxed{4}", False, False),  # never closed
        ("\\boxed{4}", False, False),
        ("", False, False),
    ],
)
def test_check_format(text, boxed_ok, think_ok):
    assert check_format(text) is boxed_ok
    assert check_format(text, require_box=False) is think_ok


def test_format_reward_contract():
    comps = [GOOD, "no think \\boxed{1}", [{"role": "assistant", "content": GOOD}]]
    assert format_reward(prompts=["p"] * 3, completions=comps) == [1.0, 0.0, 1.0]
    assert format_reward(["p"] * 3, comps, [[1]] * 3, answer=["1"] * 3) == [1.0, 0.0, 1.0]
    assert think_format_reward(prompts=["p"], completions=["<think>a</think> done"]) == [1.0]
    assert format_reward(prompts=[], completions=[]) == []


def test_think_opened_by_the_prompt():
    prompt = "<|im_start|>assistant\n<think>\n"
    comp = "reasoning here</think>\n\\boxed{3}"
    assert format_reward(prompts=[prompt], completions=[comp]) == [1.0]
    assert format_reward(prompts=["plain prompt"], completions=[comp]) == [0.0]


def test_registered():
    assert get_reward_func("format") is format_reward
    assert get_reward_func("think_format") is think_format_reward
    assert format_reward.__name__ == "format_reward"
