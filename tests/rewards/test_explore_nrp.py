"""DECS's NRP on the explore task's traces, tokenized by the embedded tokenizer: the necessary
prefix is every try up to the answer statement; the re-checks after it are redundant."""

from __future__ import annotations

import pytest

from curriculum.tasks.explore import all_problems, count_tries, generate_examples, try_line
from rewards.decs.reward import DECSRedundancyReward, analyze_completions
from rewards.decs.judges import JudgeItem, RuleJudge


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from rl.modeling import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def _ids(tok, text):
    # what a rollout returns: the completion's tokens, then eos
    return tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_vocabulary_covers_the_task(tok):
    """The embedded tokenizer was trained on explore text: its words are single tokens, and a
    trace round-trips."""
    for word in (" try", " guess", " no", " yes", " from", "*x"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    for r in generate_examples(50, seed=0, slip_rate=0.2):
        text = r["completion"][0]["content"]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert len(ids) <= 240  # the longest traces (9 tries, 4 re-checks) fit in 240 new tokens


def test_nrp_boundary_on_real_tokens(tok):
    rows = generate_examples(300, seed=1, split="test")
    texts = [r["completion"][0]["content"] for r in rows]
    ids = [_ids(tok, t) for t in texts]
    res = analyze_completions(ids, [r["reward_model"]["ground_truth"] for r in rows], tok)
    for r, text, tids, d in zip(rows, texts, ids, res):
        k, x = r["extra_info"]["redundant_chunks"], r["extra_info"]["x"]
        assert d.correct
        assert len(d.chunks) == 1 + k
        assert d.nrp_chunk == 0  # the first chunk states the right answer, after all x tries
        nrp = d.chunks[0].text
        assert count_tries(nrp) == x and nrp.rstrip().endswith(f"So the answer is {x}.")
        redundant_text = tok.decode(tids[d.redundant_start : d.redundant_end])
        think = text.split("</think>")[0]
        after_answer = think.split(f"So the answer is {x}.\n", 1)[1]
        # exactly the re-checks are redundant: from the first re-check phrase up to </think>
        assert redundant_text == after_answer
        assert (d.redundant_tokens == 0) == (k == 0)
        assert "</think>" not in redundant_text and "boxed" not in redundant_text


def test_reward_marks_only_the_rechecks(tok):
    rows = generate_examples(40, seed=2, redundancy={3: 1.0}, slip_rate=0.5)
    texts = [r["completion"][0]["content"] for r in rows]
    ids = [_ids(tok, t) for t in texts]
    reward = DECSRedundancyReward(tok)
    per_token = reward(
        prompts=[r["prompt"] for r in rows], completions=texts, completion_ids=ids,
        reward_model=[r["reward_model"] for r in rows],
    )
    meta = reward.pop_meta()
    for r, tids, pt, m in zip(rows, ids, per_token, meta):
        assert len(pt) == len(tids)
        if r["extra_info"]["slipped"]:  # a wrong guess: not correct, nothing is redundant
            assert not m["decs/correct"] and sum(pt) == 0
            continue
        assert m["decs/correct"] and m["decs/nrp_chunk"] == 0 and m["decs/num_chunks"] == 4
        marked = tok.decode([t for t, v in zip(tids, pt) if v == 1.0])
        assert marked.startswith("Wait, let me double-check.") and marked.count("the answer is") == 3
        first = pt.index(1.0)
        assert count_tries(tok.decode(tids[:first])) == r["extra_info"]["x"]  # every try is before the cut


def test_no_try_prefix_is_judged_an_answer():
    """A chunk that ends on a failing try states no answer, even when the value it rejects equals
    the ground truth (2*x+5=19 has x = 7, and its first try reads 2*1+5=7, no): only if the model
    splits its tries into chunks can such a chunk reach the judge, and it must not close the NRP."""
    judge = RuleJudge()
    items = []
    for a, op, b, c, x in all_problems():
        tries = [try_line(a, op, b, t, c) for t in range(1, x)]
        for n in range(1, len(tries) + 1):
            seg = "<think>\nLet me try x from 1.\n" + "\n".join(tries[:n]) + "\n"
            # the right answer and every value a try line shows
            for gt in {str(x), *(ln.split("=")[1].split(",")[0] for ln in tries[:n])}:
                items.append(JudgeItem(problem="", segment=seg, ground_truth=gt))
    verdicts = judge.judge(items)
    bad = [it for it, v in zip(items, verdicts) if v]
    assert not bad, bad[:3]
    # and the chunk that finds x does count
    assert judge.judge([JudgeItem("", "Let me try x from 1.\n3*1+5=8, yes\nSo the answer is 1.\n", "1")]) == [True]
