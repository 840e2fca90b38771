"""DECS chunking, NRP detection with the rule judge, and the token-level redundancy reward."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from curriculum.tasks.overthink import REDUNDANT_PHRASES, generate_examples
from rewards.decs.reward import (
    DEFAULT_SPLIT_WORDS,
    Chunk,
    DECSRedundancyReward,
    analyze_completions,
    chunk_completion,
    chunk_spans,
    problem_text,
    reasoning_end,
    redundant_token_fraction,
    token_char_offsets,
)
from rewards.decs.judges import RuleJudge


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def enc(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def prefix_tokens(tok, text: str, char: int) -> int:
    """Independent token position of a chunk boundary: the prefix encoded on its own."""
    return len(enc(tok, text[:char]))


# --------------------------------------------------------------------------- chunk spans (text)


def test_spans_hand_computed_merging_and_last_chunk():
    text = "Let x = 2.\nSo x + 1 = 3.\nWait, check.\nx = 2\nBut why\nHmm\nTherefore 3.\n</think>\n\\boxed{3}"
    # raw splits: Let@0 | Wait@25 | But@44 | Hmm@52 | Therefore@56 ; </think>@69
    # "But why\n" and "Hmm\n" are one-line -> merged into the following (last) chunk
    spans = chunk_spans(text)
    assert spans == [(0, 25), (25, 44), (44, 69)]
    assert [text[a:b] for a, b in spans] == [
        "Let x = 2.\nSo x + 1 = 3.\n",
        "Wait, check.\nx = 2\n",
        "But why\nHmm\nTherefore 3.\n",
    ]
    assert reasoning_end(text) == 69


def test_last_chunk_kept_even_if_single_line():
    assert chunk_spans("x\ny\nWait z") == [(0, 4), (4, 10)]
    # all chunks one-line: everything merges into the last one, which is kept
    assert chunk_spans("Wait a. But b. Hmm c.") == [(0, 21)]
    assert chunk_spans("just one line") == [(0, 13)]


def test_leading_text_before_first_split_word_is_merged():
    text = "<think>\nLet me compute.\n1 + 1 = 2\nWait, again.\n1 + 1 = 2\n</think>"
    # "<think>\n" is a one-line chunk -> merged into the "Let" chunk
    assert chunk_spans(text) == [(0, 34), (34, 57)]


def test_split_words_inside_a_line():
    text = "Step one.\nSo the answer is 15. Wait, let me double-check.\n3 + 4 = 7\n"
    # inline split after ". ": the chunk starts at the space before "Wait" (index 30)
    assert text[30:36] == " Wait,"
    assert chunk_spans(text) == [(0, 30), (30, len(text))]
    assert chunk_spans(text, split_inline=False) == [(0, len(text))]
    # "?" and "!" also end a sentence
    t2 = "a\nb? Hmm, c\nd\n"
    assert chunk_spans(t2) == [(0, 4), (4, len(t2))]
    # not a sentence start: after a comma, inside a word, lower case
    for t in ("a\nb, Wait c\nd\n", "a\nb. Waiting c\nd\n", "a\nb. wait c\nd\n", "a\nLetter\nb\n", "a\nButter\nb\n"):
        assert chunk_spans(t) == [(0, len(t))], t


def test_indented_split_word_starts_chunk_at_line_start():
    text = "a\nb\n  Wait, c\nd\n"
    assert chunk_spans(text) == [(0, 4), (4, 16)]


def test_split_word_variants_and_config():
    text = "a\nb\nLet's see\nc\n"
    assert chunk_spans(text) == [(0, 4), (4, len(text))]  # "Let's": whole word "Let"
    text = "a\nb\nActually no\nc\n"
    assert chunk_spans(text) == [(0, len(text))]
    assert chunk_spans(text, split_words=["Actually"]) == [(0, 4), (4, len(text))]
    assert chunk_spans(text, split_words=[]) == [(0, len(text))]
    assert DEFAULT_SPLIT_WORDS == ("Wait", "But", "Alternatively", "Hmm", "Let", "Therefore")


def test_think_end_and_no_think_end():
    # text after </think> is in no chunk, even if it holds split words
    text = "a\nb\nWait c\nd\n</think>\nTherefore x\ny\n"
    assert chunk_spans(text) == [(0, 4), (4, 13)]
    # the first </think> ends the reasoning
    assert reasoning_end("a</think>b</think>") == 1
    # no </think>: the whole completion is reasoning
    text = "a\nb\nWait c\nd\n"
    assert chunk_spans(text) == [(0, 4), (4, 13)]
    # empty reasoning: no chunk
    assert chunk_spans("</think>\n\\boxed{1}") == []
    assert chunk_spans("") == []


# --------------------------------------------------------------------------- token offsets


MULTIBYTE = "Let é ≥ 0.\n你好 😀 = 1\nWait, 😀😀 again.\nnext ≥ 2 ñ\n</think>\né \\boxed{2}"


def _independent_starts(tok, ids):
    """Start char of every token from prefix decoding: a prefix ending inside a character
    decodes to U+FFFD(s) for the partial bytes, which are not counted."""
    return [len(tok.decode(ids[:t], skip_special_tokens=True).rstrip("\ufffd")) for t in range(len(ids))]


@pytest.mark.parametrize("text", [MULTIBYTE, "é", "≥≥", "你好", "😀", "a😀b\n👨‍👩‍👧 家族\n"])
def test_offsets_multibyte(tok, text):
    ids = enc(tok, text)
    for method in ("auto", "byte_level", "incremental"):
        got_text, starts = token_char_offsets(tok, ids, method=method)
        assert got_text == text
        assert starts == _independent_starts(tok, ids)
    # multi-byte characters really are split across tokens here (two tokens, one start)
    if len(text.encode()) > 1:
        assert any(a == b for a, b in zip(starts, starts[1:]))


def test_offsets_special_tokens_carry_no_text(tok):
    text = "<think>\nLet a\nb\n</think>\nx"
    ids = enc(tok, text) + [tok.eos_token_id]
    got, starts = token_char_offsets(tok, ids)
    assert got == text
    assert starts[-1] == len(text)
    assert tok.convert_ids_to_tokens(enc(tok, "</think>")) == ["</think>"]


def test_chunks_multibyte_tokens(tok):
    text = MULTIBYTE
    ids = enc(tok, text)
    chunks = chunk_completion(ids, tok)
    w = text.index("Wait")
    end = text.index("</think>")
    assert [(c.start_char, c.end_char) for c in chunks] == [(0, w), (w, end)]
    assert chunks[1].text == "Wait, 😀😀 again.\nnext ≥ 2 ñ\n"
    assert [(c.start_token, c.end_token) for c in chunks] == [
        (0, prefix_tokens(tok, text, w)),
        (prefix_tokens(tok, text, w), prefix_tokens(tok, text, end)),
    ]


def test_token_straddling_boundary_goes_where_it_starts(tok):
    # "é" = 2 bytes; find a token that starts inside a chunk and ends in the next one by
    # using synthetic offsets: token starts [0, 3, 5, 9], boundary at char 4
    from rewards.decs.chunking import chunks_from

    text = "abc\nd\nWait\ne\n"
    chunks = chunks_from(text, [0, 3, 5, 9, 12], DEFAULT_SPLIT_WORDS, True)
    assert [(c.start_char, c.end_char) for c in chunks] == [(0, 6), (6, 13)]
    # token 2 starts at 5 (< 6) and straddles the boundary: it stays in chunk 0
    assert [(c.start_token, c.end_token) for c in chunks] == [(0, 3), (3, 5)]


def test_chunk_dataclass_fields(tok):
    text = "a\nb\nWait c\nd\n"
    ids = enc(tok, text)
    c = chunk_completion(ids, tok)[1]
    assert isinstance(c, Chunk)
    assert (c.start_char, c.end_char, c.text) == (4, 13, "Wait c\nd\n")
    assert c.start_token == prefix_tokens(tok, text, 4) and c.end_token == len(ids)


# --------------------------------------------------------------------------- overthink traces


def _rows():
    rows = generate_examples(60, seed=3, split="train", min_ops=2, max_ops=4, redundancy="heavy")
    by_k: dict[int, dict] = {}
    for r in rows:
        by_k.setdefault(r["extra_info"]["redundant_chunks"], r)
    assert {0, 1, 2, 3, 4} <= set(by_k)
    return by_k


def _trace(row) -> str:
    return row["completion"][0]["content"]


def _expected_redundant(tok, text: str) -> tuple[int, int]:
    """(first, end) token positions of the re-verification chunks, computed independently."""
    starts = [text.index(p) for p in REDUNDANT_PHRASES if p in text]
    if not starts:
        return 0, 0
    return prefix_tokens(tok, text, min(starts)), prefix_tokens(tok, text, text.index("</think>"))


def test_overthink_chunks(tok):
    for k, row in _rows().items():
        text = _trace(row)
        ids = enc(tok, text) + [tok.eos_token_id]
        chunks = chunk_completion(ids, tok)
        assert len(chunks) == 1 + k
        gt = row["reward_model"]["ground_truth"]
        assert chunks[0].start_char == 0
        assert chunks[0].text.startswith("<think>\nLet me compute step by step.\n")
        assert chunks[0].text.endswith(f"So the answer is {gt}.\n")
        for c in chunks[1:]:
            assert c.text.split(",")[0].split()[0] in ("Wait", "Hmm", "But", "Alternatively")
            assert c.text.endswith(f"Yes, the answer is {gt}.\n")
        assert chunks[-1].end_char == text.index("</think>")
        for c in chunks:
            assert c.start_token == prefix_tokens(tok, text, c.start_char)
            assert c.end_token == prefix_tokens(tok, text, c.end_char)


def test_rule_judge_nrp_on_overthink_traces(tok):
    rows = _rows()
    texts = [_trace(r) for r in rows.values()]
    ids = [enc(tok, t) + [tok.eos_token_id] for t in texts]
    gts = [r["reward_model"]["ground_truth"] for r in rows.values()]
    problems = [problem_text(r["prompt"]) for r in rows.values()]
    res = analyze_completions(ids, gts, tok, completions=texts, problems=problems, judge=RuleJudge())
    for k, r, t, x in zip(rows, res, texts, ids):
        assert r.correct
        assert r.nrp_chunk == 0
        assert r.nrp_ratio == pytest.approx(1 / (1 + k))
        a, b = _expected_redundant(tok, t)
        assert (r.redundant_start, r.redundant_end) == ((a, b) if k else (r.redundant_start, r.redundant_start))
        rw = r.token_rewards()
        assert len(rw) == len(x)
        assert rw == [1.0 if a <= i < b else 0.0 for i in range(len(x))]
        assert r.redundant_tokens == b - a


def test_redundant_token_fraction_helper(tok):
    row = _rows()[2]
    text = _trace(row)
    gt = row["reward_model"]["ground_truth"]
    a, b = _expected_redundant(tok, text)
    assert redundant_token_fraction(text, gt, tok) == (b - a, len(enc(tok, text)))
    ids = enc(tok, text) + [tok.eos_token_id]
    assert redundant_token_fraction(text, gt, tok, completion_ids=ids) == (b - a, len(ids))
    # wrong ground truth: incorrect response -> nothing redundant
    assert redundant_token_fraction(text, str(int(gt) + 1), tok) == (0, len(enc(tok, text)))
    assert redundant_token_fraction(text, gt, tok, correct=False) == (0, len(enc(tok, text)))


def test_no_yes_means_nothing_redundant(tok):
    class No:
        def judge(self, items):
            return [False] * len(items)

    class Undecided:
        def judge(self, items):
            return [None] * len(items)

    class SecondYes:
        def judge(self, items):
            return [i % 3 == 1 for i in range(len(items))]

    row = _rows()[2]
    text, gt = _trace(row), row["reward_model"]["ground_truth"]
    ids = enc(tok, text)
    r = analyze_completions([ids], [gt], tok, judge=No(), correct=[True])[0]
    assert (r.nrp_chunk, r.redundant_tokens, r.judge_fallback) == (None, 0, False)
    r = analyze_completions([ids], [gt], tok, judge=Undecided(), correct=[True])[0]
    assert (r.nrp_chunk, r.redundant_tokens, r.judge_fallback) == (None, 0, True)
    r = analyze_completions([ids], [gt], tok, judge=SecondYes(), correct=[True])[0]
    chunks = chunk_completion(ids, tok)
    assert r.nrp_chunk == 1
    assert (r.redundant_start, r.redundant_end) == (chunks[2].start_token, chunks[2].end_token)


# --------------------------------------------------------------------------- the reward


def _registry() -> dict:
    """``rewards.REWARDS``. Under a bare ``pytest`` (no cwd on sys.path) the directory
    tests/rewards shadows the ``rewards`` package as a namespace package, so the package's
    ``__init__`` is loaded from its file in that case."""
    try:
        from rewards import REWARDS

        return REWARDS
    except ImportError:
        import importlib.util

        import rewards.decs.reward

        init = Path(rewards.decs.reward.__file__).with_name("__init__.py")
        spec = importlib.util.spec_from_file_location("_parsimony_rewards_init", init)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.REWARDS


@pytest.fixture()
def reward(tok, math_grader):
    return DECSRedundancyReward(tok, grader=math_grader)


def _batch(tok, ks=(2, 0)):
    rows = _rows()
    sel = [rows[k] for k in ks]
    texts = [_trace(r) for r in sel]
    return sel, texts


def test_reward_outputs_metrics_meta(tok, reward):
    rows, texts = _batch(tok, (2, 0, 3))
    gt_wrong = rows[2]["reward_model"]["ground_truth"]
    # third completion: the boxed answer is wrong
    texts[2] = texts[2].replace(f"\\boxed{{{gt_wrong}}}", f"\\boxed{{{int(gt_wrong) + 1}}}")
    ids = [enc(tok, t) + [tok.eos_token_id] for t in texts]
    out = reward(
        prompts=[r["prompt"] for r in rows],
        completions=texts,
        completion_ids=ids,
        reward_model=[r["reward_model"] for r in rows],
        data_source=[r["data_source"] for r in rows],
    )
    assert [len(o) for o in out] == [len(x) for x in ids]
    a, b = _expected_redundant(tok, texts[0])
    assert out[0] == [1.0 if a <= i < b else 0.0 for i in range(len(ids[0]))]
    assert out[1] == [0.0] * len(ids[1])
    assert out[2] == [0.0] * len(ids[2])  # wrong answer
    meta = reward.pop_meta()
    assert meta == [
        {"decs/correct": True, "decs/num_chunks": 3, "decs/nrp_chunk": 0, "decs/nrp_ratio": pytest.approx(1 / 3),
         "decs/redundant_tokens": b - a, "decs/judge_fallback": False},
        {"decs/correct": True, "decs/num_chunks": 1, "decs/nrp_chunk": 0, "decs/nrp_ratio": 1.0,
         "decs/redundant_tokens": 0, "decs/judge_fallback": False},
        {"decs/correct": False, "decs/num_chunks": 4, "decs/nrp_chunk": None, "decs/nrp_ratio": None,
         "decs/redundant_tokens": 0, "decs/judge_fallback": False},
    ]
    assert reward.pop_meta() == []
    m = reward.pop_metrics()
    assert m["decs/judge_calls"] == 3 + 1  # chunks of the correct responses only
    assert m["decs/judge_fallbacks"] == 0 and m["decs/judge_unparseable"] == 0
    assert m["decs/judge_latency_s"] >= 0
    assert m["decs/nrp_ratio"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["decs/redundant_token_frac"] == pytest.approx((b - a) / sum(len(x) for x in ids))
    assert m["decs/correct_with_nrp_frac"] == pytest.approx(2 / 3)
    m2 = reward.pop_metrics()
    assert m2["decs/judge_calls"] == 0 and m2["decs/nrp_ratio"] == 0.0 and m2["decs/redundant_token_frac"] == 0.0


def test_reward_ground_truth_columns_and_missing(tok, reward):
    rows, texts = _batch(tok, (1, 1))
    ids = [enc(tok, t) for t in texts]
    gt = rows[0]["reward_model"]["ground_truth"]
    a, b = _expected_redundant(tok, texts[0])
    expect = [1.0 if a <= i < b else 0.0 for i in range(len(ids[0]))]
    for cols in ({"ground_truth": [gt, gt]}, {"answer": [gt, gt]}, {"reward_model": [{"ground_truth": gt}] * 2}):
        out = reward(prompts=["Compute left to right: x"] * 2, completions=texts, completion_ids=ids, **cols)
        assert out == [expect, expect]
    out = reward(prompts=[None, None], completions=texts, completion_ids=ids, ground_truth=[None, gt])
    assert out[0] == [0.0] * len(ids[0]) and out[1] == expect
    assert reward.pop_meta()[0]["decs/correct"] is False


def test_reward_chat_completions_and_no_ids(tok, reward):
    rows, texts = _batch(tok, (1,))
    out = reward(prompts=[rows[0]["prompt"]], completions=[rows[0]["completion"]], reward_model=[rows[0]["reward_model"]])
    ids = enc(tok, texts[0])
    a, b = _expected_redundant(tok, texts[0])
    assert out == [[1.0 if a <= i < b else 0.0 for i in range(len(ids))]]


def test_reward_needs_tokenizer(math_grader):
    r = DECSRedundancyReward(grader=math_grader)
    with pytest.raises(RuntimeError, match="tokenizer"):
        r(prompts=["p"], completions=["x"], completion_ids=[[5]], ground_truth=["1"])


def test_reward_setup_and_validation(tok, math_grader, monkeypatch):
    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_split_words": "Wait, Hmm", "decs_b": 0.3}))
    assert r.tokenizer is tok and r.split_words == ("Wait", "Hmm")
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={}))
    assert r.split_words == tuple(DEFAULT_SPLIT_WORDS)  # a new setup() starts from the constructor's settings
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_split_words": "Wait, Hmm"}))
    r.setup(tokenizer=tok, args=None)
    assert isinstance(r.judge, RuleJudge) and r.split_words == tuple(DEFAULT_SPLIT_WORDS)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_split_words": "Wait, Hmm"}))
    monkeypatch.delenv("PARSIMONY_DECS_JUDGE_URL", raising=False)
    bad = [
        ({"decs_judge": "llm"}, "decs_judge"),
        ({"decs_judge": "endpoint"}, "decs_judge_url"),
        ({"decs_judge": "endpoint", "decs_judge_url": "localhost:1"}, "decs_judge_url"),
        ({"decs_judge_timeout": 0}, "decs_judge_timeout"),
        ({"decs_judge_timeout": "3"}, "decs_judge_timeout"),
        ({"decs_judge_retries": -1}, "decs_judge_retries"),
        ({"decs_judge_retries": 1.5}, "decs_judge_retries"),
        ({"decs_judge_concurrency": 0}, "decs_judge_concurrency"),
        ({"decs_judge_max_segment_chars": -1}, "decs_judge_max_segment_chars"),
        ({"decs_judge_prompt": "mine"}, "decs_judge_prompt"),
        ({"decs_judge_max_tokens": 0}, "decs_judge_max_tokens"),
        ({"decs_judge_verdict": "maybe"}, "decs_judge_verdict"),
        ({"decs_judge_max_prompt_tokens": -1}, "decs_judge_max_prompt_tokens"),
        ({"decs_chunking": "words"}, "decs_chunking"),
        ({"decs_think_end": ""}, "decs_think_end"),
        ({"decs_judge_fallback": "zero"}, "decs_judge_fallback"),
        ({"decs_judge_template": "no placeholder"}, "decs_judge_template"),
        ({"decs_judge_model": ""}, "decs_judge_model"),
        ({"decs_split_words": ["Wait", ""]}, "decs_split_words"),
        ({"decs_split_words": 3}, "decs_split_words"),
        ({"decs_split_inline": "yes"}, "decs_split_inline"),
        ({"decs_judge_breaker_failures": -1}, "decs_judge_breaker_failures"),
        ({"decs_judge_breaker_failures": 2.5}, "decs_judge_breaker_failures"),
        ({"decs_judge_breaker_cooldown": 0}, "decs_judge_breaker_cooldown"),
    ]
    for kw, key in bad:
        with pytest.raises(ValueError, match=key):
            r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs=kw))
    with pytest.raises(ValueError, match="decs_judge_timeout"):  # nothing applied on error
        r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_split_words": ["Let"], "decs_judge_timeout": -1}))
    assert r.split_words == ("Wait", "Hmm") and isinstance(r.judge, RuleJudge)
    monkeypatch.setenv("PARSIMONY_DECS_JUDGE_URL", "http://127.0.0.1:9/v1")
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "endpoint", "decs_judge_timeout": 2}))
    from rewards.decs.judges import EndpointJudge

    assert isinstance(r.judge, EndpointJudge)
    assert r.judge.url == "http://127.0.0.1:9/v1/chat/completions" and r.judge.timeout == 2.0
    assert (r.judge.breaker.failures, r.judge.breaker.cooldown) == (5, 30.0)  # the defaults
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={
        "decs_judge": "endpoint", "decs_judge_breaker_failures": 2, "decs_judge_breaker_cooldown": 7.5}))
    assert (r.judge.breaker.failures, r.judge.breaker.cooldown, r.judge.breaker.max_cooldown) == (2, 7.5, 75.0)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "endpoint", "decs_judge_breaker_failures": 0}))
    assert r.judge.breaker is None
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "rule"}))
    assert isinstance(r.judge, RuleJudge)


def test_registry_and_score_completions(tok, math_grader):
    from rl.rewarding import score_completions

    entry = _registry()["decs_redundancy"]
    assert entry.factory is DECSRedundancyReward and isinstance(entry.make(), DECSRedundancyReward)
    assert entry.make() is not entry.make()
    r = DECSRedundancyReward(tok, grader=math_grader)
    rows, texts = _batch(tok, (1, 0))
    ids = [enc(tok, t) for t in texts]
    out, totals, metrics, metas = score_completions(
        [r], ["decs_redundancy"], [1.0], [x["prompt"] for x in rows], texts, ids, rows
    )
    assert [len(v) for v in out["decs_redundancy"]] == [len(x) for x in ids]
    assert totals == [0.0, 0.0]  # token-level rewards do not enter the scalar total
    assert metas[0]["decs/nrp_chunk"] == 0 and metas[1]["decs/num_chunks"] == 1
    assert "decs/redundant_token_frac" in metrics


def test_problem_text():
    assert problem_text("plain") == "plain"
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "text", "text": "2"}]}]
    assert problem_text(msgs) == "q2"
    assert problem_text(None) == "" and problem_text([]) == ""


# --------------------------------------------------------------------------- the paper code's chunking (issue 30 item 3)

PAPER_TEXT = ("To start, 3 + 4\n= 7 Wait, let me check:\n3 + 4 = 7\nHmm, fine.\n"
              "Let me add once more: 3 + 4 = 7\nso 7.\n</think>\nTherefore the answer is \\boxed{7}.")


def test_paper_chunking_hand_built(tok):
    from rewards.decs.paper_chunking import paper_chunks

    ids = enc(tok, PAPER_TEXT) + [tok.eos_token_id]
    offsets = token_char_offsets(tok, ids)
    chunks = paper_chunks(ids, tok, offsets, DEFAULT_SPLIT_WORDS)
    assert [c.text for c in chunks] == [
        "To start, 3 + 4\n= 7 ",  # "Wait" splits mid-line (no sentence end before it); a newline inside: kept
        "Wait, let me check:\n3 + 4 = 7\n",
        "Hmm, fine.\nLet me add once more: 3 + 4 = 7\nso 7.\n",  # the one-line "Hmm, fine." merged forward
    ]  # the final answer after </think>, "Therefore" and all, is in no chunk
    think = ids.index(tok.convert_tokens_to_ids("</think>"))
    assert chunks[0].start_token == 0 and chunks[-1].end_token == think
    assert all(x.end_token == y.start_token for x, y in zip(chunks, chunks[1:]))
    assert [PAPER_TEXT[c.start_char:c.end_char] for c in chunks] == [c.text for c in chunks]
    # ours on the same text: split words start a chunk at line starts (or after . ! ?) only
    assert [c.text for c in chunk_completion(ids, tok)] == [
        "To start, 3 + 4\n= 7 Wait, let me check:\n3 + 4 = 7\n", "Hmm, fine.\nLet me add once more: 3 + 4 = 7\nso 7.\n"]
    # another end-of-reasoning marker; none at all: the whole completion is reasoning
    assert paper_chunks(ids, tok, offsets, DEFAULT_SPLIT_WORDS, think_end="so 7.")[-1].text == (
        "Hmm, fine.\nLet me add once more: 3 + 4 = 7\n")
    no_end = enc(tok, "Wait, a\nb\nc")
    assert [c.text for c in paper_chunks(no_end, tok, token_char_offsets(tok, no_end), DEFAULT_SPLIT_WORDS)] == [
        "Wait, a\nb\nc"]
    # no split word: one chunk, up to the marker
    plain = enc(tok, "a\nb\n</think>\nc")
    assert [c.text for c in paper_chunks(plain, tok, token_char_offsets(tok, plain), DEFAULT_SPLIT_WORDS)] == ["a\nb\n"]


def test_paper_multi_line_rule_on_tokens():
    from rewards.decs.paper_chunking import is_multi_line, paper_token_spans

    nl = frozenset({1})
    assert is_multi_line([5, 1, 5], nl) and is_multi_line([1, 5, 1], nl)  # inside; or leading + trailing (the code's)
    assert not is_multi_line([5, 1], nl) and not is_multi_line([1, 5], nl) and not is_multi_line([1, 1], nl)
    assert not is_multi_line([5], nl) and not is_multi_line([], nl)
    # split token 9: [5 1 5] [9 5] [9 5 1 5 1] [9 5] -> the one-line [9 5] merges forward, the last is kept as is
    ids = [5, 1, 5, 9, 5, 9, 5, 1, 5, 1, 9, 5, 3]
    assert paper_token_spans(ids, 12, [(9,)], nl) == [(0, 3), (3, 10), (10, 12)]
    assert paper_token_spans(ids, 0, [(9,)], nl) == []
    assert paper_token_spans([9, 5, 1, 5], 4, [(9,)], nl) == [(0, 4)]  # a split word at 0 opens the first chunk


def test_chunking_setting_and_defaults(tok, math_grader, monkeypatch):
    from rewards.decs.judges import EndpointJudge
    from rewards.decs.nrp import resolve_chunking
    from rewards.decs.settings import DECSRewardSettings

    s = DECSRewardSettings.from_kwargs({})
    assert (s.chunking, s.think_end, s.judge, s.judge_prompt) == ("auto", "</think>", "rule", "paper")
    assert resolve_chunking("auto", RuleJudge()) == "lines" and resolve_chunking("auto", None) == "lines"
    assert resolve_chunking("auto", EndpointJudge("http://127.0.0.1:9", tokenizer=tok)) == "paper"
    assert resolve_chunking("lines", EndpointJudge("http://127.0.0.1:9", tokenizer=tok)) == "lines"
    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={}))
    assert r.resolved_chunking() == "lines"  # the rule judge (the embedded model's): unchanged
    ids = enc(tok, PAPER_TEXT) + [tok.eos_token_id]
    kw = dict(completion_ids=[ids], completions=[PAPER_TEXT], ground_truth=["7"], prompts=["What is 3 + 4?"])
    assert len(r.analyze(**kw)[0].chunks) == 2
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_chunking": "paper"}))
    assert r.resolved_chunking() == "paper" and len(r.analyze(**kw)[0].chunks) == 3
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_chunking": "paper", "decs_think_end": "so 7."}))
    assert r.analyze(**kw)[0].chunks[-1].text.endswith("= 7\n")
    monkeypatch.setenv("PARSIMONY_DECS_JUDGE_URL", "http://127.0.0.1:9/v1")
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "endpoint"}))
    assert r.resolved_chunking() == "paper"
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "endpoint", "decs_chunking": "lines"}))
    assert r.resolved_chunking() == "lines"
