"""Math grader: extraction, equivalence (through the real worker pool), timeouts, golden
benchmark completions, TRL reward-function contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rewards import REWARDS, get_reward_func
from rewards.math import (
    AccuracyReward,
    ChoiceAccuracyReward,
    GradeResult,
    MathGrader,
    accuracy_reward,
    extract_answer,
    extract_boxed,
    extract_choice_letter,
    get_default_grader,
    gold_choice_letter,
    grade_one,
    ground_truths_from_columns,
    verify_answer,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIXTURE = Path(__file__).with_name("fixtures") / "equivalences.jsonl"
CASES = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
# sympy grinds on this for many seconds (no fast path can decide it)
HANG = r"\boxed{\tan(\tan(\tan(\tan(\tan(1)))))}"


# ---------------------------------------------------------------------------------------
# hand-labelled equivalences, graded by the real pool
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_results(math_grader):
    # a generous timeout: this checks equivalence, not speed (CI machines can be busy)
    return math_grader.grade([c["completion"] for c in CASES], [c["ground_truth"] for c in CASES], timeout=20.0)


def test_fixture_is_big_enough():
    assert len(CASES) >= 40
    assert {c["expected"] for c in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']}-{c['note']}" for c in CASES])
def test_equivalence_fixture(case, fixture_results):
    if case.get("xfail"):
        pytest.xfail(case["xfail"])
    r = fixture_results[case["id"]]
    assert r.status in ("correct", "wrong", "no_answer"), r
    assert (r.score == 1.0) == case["expected"], (case, r)


# ---------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{a \} b}", r"a \} b"),  # escaped brace does not close the group
        (r"\fbox{7}", "7"),
        (r"\boxed 5.", "5"),
        (r"\boxed{}", ""),
        (r"\boxed{ }", " "),
        (r"\boxed{3} and \boxed{4", None),  # last box unbalanced -> None, not the earlier box
        (r"\boxed", None),
        (r"\boxedsymbol{3}", None),
        ("no box", None),
        ("", None),
        (None, None),
        (r"\boxed{\boxed{9}}", "9"),
        (r"\boxed{\text{B}} \boxedfoo{1}", r"\text{B}"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"<think>\boxed{1}</think> so \boxed{2}", "2"),
        (r"<think>it is \boxed{1}</think> The answer is 2.", "1"),  # no box after </think>
        (r"<think>x</think>", None),
        ("The final answer is $\\frac{1}{2}$. The answer is 3.", "3"),  # the last statement is the final one
        ("The final answer is $\\frac{1}{2}$. I hope it is correct.", r"\frac{1}{2}"),
        ("Final Answer: 12", "12"),
        ("We get 4. Thus the answer is 10 apples.", "10 apples"),
        ("Answer: (3, 4)", "(3, 4)"),
        ("**Answer:** $x^2$", "x^2"),
        ("nothing numeric here", None),
        ("", None),
        (r"\boxed{5", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("... so the answer is 42.", "42"),
        ("so the answer is 42", "42"),
        ("ANSWER: 42", "42"),
        ("Answer: 42\n</think>", "42"),  # closing markup after the statement is fine
        ("Therefore, the final answer is $42$. I hope it is correct.", "42"),
        ("So the answer is 9.\nWait, let me double-check.", "9"),  # a few closing words, no digit
        ("The answer is: \n", None),  # a statement with nothing after it
        ("the answer is 3, or maybe 5. The answer is: **7**", "7"),
        ("The answer is 42. Then 3+4=7", None),  # the reasoning went on after the statement
        ("The answer is 42.\nLet me verify: 6*7=42 and", None),
        # numbers and formulas in the body are never an answer (the old last-number / trailing-math fallbacks)
        ("We have 3 apples and 4 pears, 7 in total.", None),
        ("total -12.5 degrees", None),
        ("there are 1,000 of them", None),
        ("so the result is\n$$x = 7$$", None),
        ("so it is \\(\\frac{3}{4}\\).", None),
        ("First, 6*7 = 42. Now the remainder of the problem asks for", None),
        # a box always wins over a stated answer
        ("The answer is 5. \\boxed{7}", "7"),
        ("\\boxed{7}. So the answer is 5.", "7"),
    ],
)
def test_extract_answer_needs_a_final_statement(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the result is\n$$x = 7$$", "x = 7"),
        ("so it is \\(\\frac{3}{4}\\).", r"\frac{3}{4}"),
        ("We have 3 apples and 4 pears, 7 in total.", "7"),
        ("total -12.5 degrees", "-12.5"),
        ("there are 1,000 of them", "1,000"),
        ("The final answer is $\\frac{1}{2}$. The answer is 3.", r"\frac{1}{2}"),
        ("The answer is 42. Then 3+4=7", "42"),
    ],
)
def test_extract_answer_any_fallback_reads_segments(text, expected):
    """``fallback="any"`` (the DECS rule judge reading a reasoning segment) keeps the lenient order."""
    assert extract_answer(text, fallback="any") == expected


def test_extract_answer_rejects_unknown_fallback():
    with pytest.raises(ValueError, match="fallback"):
        extract_answer("x", fallback="last_number")


_OVERTHINK_TRUNCATED = (
    "<think>\nLet me compute step by step.\n3+4=7\n7*2=14\n14-5=9\nSo the answer is 9.\n"
    "Wait, let me double-check.\n3+4=7\n7*2=14\n14-"
)


@pytest.mark.parametrize(
    "completion, truth, score, status",
    [
        # truncated bodies with the right number in them: no final answer, no credit
        ("Let me compute 6*7. 6*7=42, and now check it: 42/7=6, so 6*7=4", "42", 0.0, "no_answer"),
        ("First, 6*7 = 42. Now the remainder of the problem asks for", "42", 0.0, "no_answer"),
        (_OVERTHINK_TRUNCATED, "9", 0.0, "no_answer"),
        ("<think>\n14-5=9", "9", 0.0, "no_answer"),
        # explicit final statements are graded
        ("6*7 = 42, so the answer is 42.", "42", 1.0, "correct"),
        ("6*7 = 42, so the answer is 41.", "42", 0.0, "wrong"),
        ("Final answer: 42", "42", 1.0, "correct"),
        ("ANSWER: 42", "42", 1.0, "correct"),
        # a box wins over a stated answer
        ("The answer is 41. \\boxed{42}", "42", 1.0, "correct"),
        ("\\boxed{41} so the answer is 42.", "42", 0.0, "wrong"),
        # the embedded task's complete traces grade as before
        (_OVERTHINK_TRUNCATED + "5=9\nYes, the answer is 9.\n</think>\n\\boxed{9}", "9", 1.0, "correct"),
    ],
)
def test_grade_needs_a_final_answer(completion, truth, score, status):
    got, _, st = grade_one(completion, truth)
    assert (got, st) == (score, status)


@pytest.mark.parametrize(
    "completion, truth, correct",
    [
        ("\\boxed{3}", ["3", "4"], True),  # any accepted answer counts
        ("\\boxed{4}", ["3", "4"], True),
        ("\\boxed{5}", ["3", "4"], False),
        ("\\boxed{\\frac{1}{2}}", ["0.5"], True),
        ("\\boxed{2}", [2.0], True),
        ("\\boxed{3}", [None, "", "3"], True),
        ("\\boxed{1, 2}", ["1", "2"], True),  # all of them together
    ],
)
def test_grade_list_ground_truth_accepts_any(completion, truth, correct):
    assert (grade_one(completion, truth)[2] == "correct") is correct
    assert (grade_one(completion, tuple(truth))[2] == "correct") is correct


def test_grade_list_ground_truth_choice():
    assert grade_one("ANSWER: C", ["B", "C) 5"], mode="choice")[2] == "correct"
    assert grade_one("ANSWER: A", ["B", "C) 5"], mode="choice")[2] == "wrong"
    assert grade_one("ANSWER: A", [], mode="choice")[2] == "error"


def test_grader_pool_grades_list_ground_truths():
    with MathGrader(num_workers=1) as g:
        res = g.grade(["\\boxed{4}", "\\boxed{5}", "\\boxed{4}"], [["3", "4"], ["3", "4"], None])
    assert [r.status for r in res] == ["correct", "wrong", "error"]


def test_extract_answer_huge_text_is_fast():
    text = "1 + 1 = 2. " * 100_000 + "so the answer is 3"
    t = time.perf_counter()
    assert extract_answer(text) == "3"
    assert extract_answer("{" * 1_000_000 + r"\boxed{" + "{" * 1000) is None
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("blah\nANSWER: C", "C"),
        ("answer: b", None),  # the letter must be upper case
        ("Answer: B) because", "B"),
        ("ANSWER: **D**", "D"),
        ("Answer: Bob", None),
        (r"so \boxed{A}", "A"),
        (r"so \boxed{\text{(B)}}", "B"),
        ("The answer is (C).", "C"),
        ("The correct option is D.", "D"),
        ("(A) is wrong, (B) is wrong, so (C)", "C"),
        ("<think>ANSWER: A</think>ANSWER: B", "B"),
        ("<think>ANSWER: A</think>I am done", "A"),
        ("ANSWER: C\nANSWER: D", "D"),
        ("I think it is option (E)", "E"),
        ("no letter here", None),
        ("", None),
    ],
)
def test_extract_choice_letter(text, expected):
    assert extract_choice_letter(text) == expected


def test_choice_letters_can_be_restricted():
    assert extract_choice_letter("ANSWER: E", letters="ABCD") is None
    assert extract_choice_letter("ANSWER: E") == "E"


@pytest.mark.parametrize("gt, letter", [("B", "B"), ("(C)", "C"), ("A) 10^-4 eV", "A"), ("D. foo", "D"), ("Bob", None), ("", None)])
def test_gold_choice_letter(gt, letter):
    assert gold_choice_letter(gt) == letter


def test_verify_answer_in_process():
    assert verify_answer(r"\frac{1}{2}", "0.5")
    assert verify_answer("x = 5", "5")
    assert not verify_answer("", "5")
    assert not verify_answer(None, "5")
    assert not verify_answer("5", "")
    assert not verify_answer("4", "5")
    assert not verify_answer(r"\int_0^1 x\,dx", r"\frac{1}{2}")  # unevaluated calculus is not an answer
    assert not verify_answer("9^{9^{9^{9}}}", "1")  # screened: no sympy, returns at once


# ---------------------------------------------------------------------------------------
# the pool: statuses, pathological inputs, timeouts, robustness
# ---------------------------------------------------------------------------------------


def test_grade_statuses(math_grader):
    res = math_grader.grade([r"\boxed{2}", r"\boxed{3}", "no idea", r"\boxed{2}"], ["2", "2", "2", None])
    assert [r.status for r in res] == ["correct", "wrong", "no_answer", "error"]
    assert [r.score for r in res] == [1.0, 0.0, 0.0, 0.0]
    assert res[0].extracted == "2" and isinstance(res[0], GradeResult)
    assert math_grader.grade([], []) == []
    with pytest.raises(ValueError):
        math_grader.grade(["a"], [])


def test_chat_message_completions_are_accepted(math_grader):
    res = math_grader.grade([[{"role": "assistant", "content": r"\boxed{4}"}]], ["4"])
    assert res[0].status == "correct"


@pytest.mark.serial
def test_pathological_inputs_score_zero_within_timeout(math_grader):
    huge = ("Let me think. " * 80_000)[:1_000_000] + r" so \boxed{5"
    comps = [
        huge,  # 1 MB, unbalanced box at the end
        "x" * 1_000_000,  # 1 MB, no answer
        r"\boxed{\frac{1}{2}" + "}" * 5 + "{" * 50,  # unbalanced LaTeX
        r"\boxed{\frac{\sqrt{}}{\left(}}",  # garbage LaTeX
        r"\boxed{9^{9^{9^{9}}}}",  # power tower
        r"\boxed{(10^{8})!}",  # huge factorial
        HANG,  # sympy grinds on this until the timeout
        r"\boxed{" + "x+" * 5000 + "1}",  # very long answer
    ]
    t = time.perf_counter()
    res = math_grader.grade(comps, ["1"] * len(comps))
    elapsed = time.perf_counter() - t
    assert elapsed < math_grader.timeout + 2.0, elapsed
    assert all(r.score == 0.0 for r in res), res
    assert res[6].status == "timeout"
    assert all(r.status in ("wrong", "no_answer", "timeout") for r in res), res
    assert all(r.extracted is None or len(r.extracted) <= 2000 for r in res)
    # the grader still works afterwards
    assert [r.status for r in math_grader.grade([r"\boxed{1}", r"\boxed{2}"], ["1", "1"])] == ["correct", "wrong"]


@pytest.mark.serial
def test_stuck_worker_is_killed_and_replaced():
    # soft_timeout=False: nothing interrupts sympy inside the worker, the parent must kill it
    with MathGrader(num_workers=2, timeout=1.0, soft_timeout=False) as g:
        g.start()
        comps = [HANG, r"\boxed{3}", r"\boxed{4}"]
        t = time.perf_counter()
        res = g.grade(comps, ["1", "3", "3"])
        elapsed = time.perf_counter() - t
        assert elapsed < g.timeout + 2.0, elapsed
        assert [r.status for r in res] == ["timeout", "correct", "wrong"]
        assert g.stats["killed"] == 1 and g.stats["spawned"] == 3
        # a chunk whose first item hangs: the rest of the chunk is regraded by a fresh worker
        g.chunk_size = 10
        comps = [HANG] + [rf"\boxed{{{i}}}" for i in range(9)]
        res = g.grade(comps, ["1"] + [str(i) for i in range(9)])
        assert res[0].status == "timeout" and all(r.status == "correct" for r in res[1:]), res
        assert g.stats["max_item_seconds"] >= 1.0
        assert [r.status for r in g.grade([r"\boxed{1}"] * 4, ["1"] * 4)] == ["correct"] * 4


def test_worker_killed_from_outside_is_replaced(math_grader):
    for w in list(math_grader._workers):
        w.proc.kill()
        w.proc.wait()
    res = math_grader.grade([rf"\boxed{{{i}}}" for i in range(20)], [str(i) for i in range(20)])
    assert all(r.status == "correct" for r in res), res


def test_grade_from_a_thread(math_grader):
    out = []
    th = threading.Thread(target=lambda: out.extend(math_grader.grade([r"\boxed{\frac{2}{4}}"], ["0.5"])))
    th.start()
    th.join(30)
    assert out and out[0].status == "correct"


def test_close_and_context_manager():
    g = MathGrader(num_workers=1, timeout=1.0)
    with g:
        assert g.grade([r"\boxed{1}"], ["1"])[0].score == 1.0
        procs = [w.proc for w in g._workers]
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(RuntimeError):
        g.grade([r"\boxed{1}"], ["1"])


def test_constructor_validates():
    with pytest.raises(ValueError):
        MathGrader(mode="bogus")
    with pytest.raises(ValueError):
        MathGrader(num_workers=0)
    with pytest.raises(ValueError):
        MathGrader(timeout=0)


def test_default_grader_is_shared():
    assert get_default_grader() is get_default_grader("math")
    assert get_default_grader("choice") is not get_default_grader("math")
    assert get_default_grader("choice").mode == "choice"


def test_import_is_cheap():
    code = "import sys, rewards; bad = [m for m in ('sympy', 'math_verify', 'torch') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------
# golden completions on the benchmark sets
# ---------------------------------------------------------------------------------------


def _benchmarks() -> list[Path]:
    root = SHARED_DATA / "benchmarks"
    if not root.is_dir():
        return []
    return sorted(root.glob("*/test.parquet"))


def _require_benchmarks() -> list[Path]:
    files = _benchmarks()
    if not files:
        msg = f"benchmark data not found under {SHARED_DATA / 'benchmarks'}"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but " + msg)
        pytest.skip(msg)
    return files


@pytest.mark.parametrize("name", [p.parent.name for p in _benchmarks()] or ["<absent>"])
def test_golden_completions_score_100(name, math_grader, choice_grader):
    import pandas as pd

    files = {p.parent.name: p for p in _require_benchmarks()}
    df = pd.read_parquet(files[name], columns=["reward_model"])
    if len(df) > 200:
        df = df.sample(n=200, random_state=0)
    gts = [rm["ground_truth"] for rm in df["reward_model"]]
    if name.startswith("gpqa"):
        completions = [f"Reasoning...\nANSWER: {gold_choice_letter(gt)}" for gt in gts]
        res = choice_grader.grade(completions, gts, timeout=20.0)
    else:
        completions = ["Reasoning...\n\\boxed{" + gt + "}" for gt in gts]
        res = math_grader.grade(completions, gts, timeout=20.0)
    failing = [(gt, r) for gt, r in zip(gts, res) if r.score != 1.0]
    assert not failing, f"{len(failing)}/{len(gts)} golden completions fail: {failing[:10]}"


# ---------------------------------------------------------------------------------------
# reward functions (TRL contract)
# ---------------------------------------------------------------------------------------


def test_accuracy_reward_columns_and_missing_ground_truth(math_grader):
    reward = AccuracyReward(grader=math_grader)
    assert reward.__name__ == "accuracy"
    comps = [r"\boxed{1}", r"\boxed{2}", r"\boxed{3}", r"\boxed{4}", r"\boxed{5}"]
    out = reward(
        prompts=["p"] * 5,
        completions=comps,
        completion_ids=[[1]] * 5,
        reward_model=[{"ground_truth": "1", "style": "rule"}, {"ground_truth": "9"}, None, {"style": "rule"}, None],
        answer=[None, None, "3", "4", None],
        data_source=["x"] * 5,
    )
    assert out == [1.0, 0.0, 1.0, 1.0, None]
    m = reward.pop_metrics()
    assert m["grader/graded"] == 4 and m["grader/no_ground_truth"] == 1 and m["grader/seconds"] > 0
    assert reward.pop_metrics()["grader/graded"] == 0  # popped = reset


def test_accuracy_reward_chat_messages_and_ground_truth_column(math_grader):
    reward = AccuracyReward(grader=math_grader)
    comps = [
        [{"role": "assistant", "content": r"The answer is $\boxed{\dfrac{1}{2}}$"}],
        [{"role": "assistant", "content": [{"type": "text", "text": r"\boxed{0.25}"}]}],
        [{"role": "assistant", "content": "I give up"}],
    ]
    out = reward(prompts=[[{"role": "user", "content": "q"}]] * 3, completions=comps, ground_truth=["0.5", "0.5", "0.5"])
    assert out == [1.0, 0.0, 0.0]
    m = reward.pop_metrics()
    assert m["grader/no_answer"] == 1 and m["grader/timeouts"] == 0 and m["grader/errors"] == 0


def test_accuracy_reward_counts_timeouts(math_grader):
    reward = AccuracyReward(grader=math_grader)
    out = reward(prompts=["p", "p"], completions=[HANG, r"\boxed{1}"], answer=["1", "1"])
    assert out == [0.0, 1.0]
    assert reward.pop_metrics()["grader/timeouts"] == 1


def test_accuracy_reward_without_any_ground_truth_does_not_grade():
    reward = AccuracyReward(grader=MathGrader(num_workers=1))  # never started
    assert reward(prompts=["p"], completions=["x"]) == [None]
    assert reward.grader._workers == []


def test_ground_truth_column_length_mismatch():
    with pytest.raises(ValueError, match="answer"):
        ground_truths_from_columns(2, {"answer": ["1"]})
    assert ground_truths_from_columns(2, {"answer": ["1", float("nan")]}) == ["1", None]
    assert ground_truths_from_columns(1, {"answer": [7]}) == ["7"]
    # a list is the row's accepted answers, read the same way as in evaluation
    assert ground_truths_from_columns(2, {"reward_model": [{"ground_truth": ["3", "4"]}, {"ground_truth": ["5"]}]}) == [
        ["3", "4"], "5"]
    assert ground_truths_from_columns(1, {"reward_model": [{"ground_truth": []}], "answer": [2.0]}) == ["2"]


def test_choice_accuracy_reward(choice_grader):
    reward = ChoiceAccuracyReward(grader=choice_grader)
    assert reward.__name__ == "choice_accuracy"
    out = reward(
        prompts=["p"] * 4,
        completions=["ANSWER: A", "The answer is (B)", "ANSWER: C", "hmm"],
        reward_model=[{"ground_truth": "A) 10^-4 eV"}, {"ground_truth": "C) 11"}, {"ground_truth": "C"}, {"ground_truth": "D) x"}],
    )
    assert out == [1.0, 0.0, 1.0, 0.0]
    assert reward.pop_metrics()["grader/no_answer"] == 1


def test_module_level_accuracy_reward_uses_the_default_grader():
    assert accuracy_reward.__name__ == "accuracy"
    assert accuracy_reward(prompts=["p"], completions=[r"\boxed{6}"], answer=["6"]) == [1.0]
    assert accuracy_reward.grader is get_default_grader("math")
    accuracy_reward.pop_metrics()


def test_registry():
    # a registered class is a factory: every resolution gets its own object
    a, b = get_reward_func("accuracy"), get_reward_func("accuracy")
    assert isinstance(a, AccuracyReward) and a is not b and a is not accuracy_reward and a.__name__ == "accuracy"
    assert set(REWARDS) >= {"accuracy", "format", "think_format", "choice_accuracy"}
    # a plain (stateless) function is shared as is
    assert get_reward_func("rewards.format:format_reward") is get_reward_func("format")
    assert get_reward_func("rewards.math:AccuracyReward") is AccuracyReward
    with pytest.raises(ValueError, match="known: .*accuracy"):
        get_reward_func("nope")
    with pytest.raises(ValueError, match="cannot import"):
        get_reward_func("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="no attribute"):
        get_reward_func("rewards.math:nope")


def test_grader_started_from_a_short_lived_thread_survives_it():
    g = MathGrader(num_workers=1, timeout=1.0)
    try:
        th = threading.Thread(target=g.start)
        th.start()
        th.join(60)
        time.sleep(0.2)
        procs = [w.proc for w in g._workers]
        assert procs and all(p.poll() is None for p in procs)
        assert g.grade([r"\boxed{2}"], ["2"])[0].status == "correct"
        assert g.stats["spawned"] == 1
    finally:
        g.close()


def test_workers_exit_when_the_parent_dies_abruptly():
    code = (
        "import os, sys; from rewards.math import MathGrader; g = MathGrader(num_workers=2).start(); "
        "print(' '.join(str(w.proc.pid) for w in g._workers), flush=True); os._exit(0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    pids = [int(x) for x in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.time() + 10
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.1)
        alive = [p for p in pids if _alive(p)]
    assert not alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return False
