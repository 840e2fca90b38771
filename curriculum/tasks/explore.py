"""The "explore" task: necessary trial and error of variable length, then redundant re-checks.

A problem asks for the unknown ``x`` in 1..9 of ``a*x+b=c`` (or ``a*x-b=c``) with ``a`` in
2..9 and ``b`` in 1..9. Prompt: ``Find x: 3*x+5=23``. Guessing ``x`` directly means dividing,
which the tiny model cannot do; checking one candidate is one short line it can. So the SFT
trace tries the candidates in order until one fits, states the answer, and then re-verifies it
0-4 times::

    <think>
    Let me try x from 1.          <- chunk 0: the necessary reasoning (x tries)
    3*1+5=8, no
    3*2+5=11, no
    ...
    3*6+5=23, yes
    So the answer is 6.
    Wait, let me double-check.    <- redundant chunk 1
    3*6+5=23
    Yes, the answer is 6.
    </think>
    \\boxed{6}

The necessary prefix has ``x`` tries and cannot be shortened without guessing: a sequence-level
length penalty pays for skipping tries, DECS (which penalises only the tokens after the first
chunk that states the right answer) does not. Only the opening line and the redundant phrases
start with a chunk split word, so the chunker (:mod:`rewards.decs.chunking`) recovers exactly the
1 + k chunks, and the rule judge finds the NRP at chunk 0, whose answer statement is explicit.
Failing tries never state an answer and never end in ``=`` plus a number, so no try line can be
mistaken for an answer.

Redundancy ``k`` is drawn per trace (default "heavy": mostly 1-4, with 10% 0-chunk traces so the
model can learn to stop at the answer; see ``../shared/NOTES.md``).

Noisy teacher (:mod:`curriculum.tasks.slips`; difficulty = ``x``, the number of tries needed):
``slip_kind="guess"`` opens with "Let me guess x." and states a wrong value at once (uniform
over the other eight), with redundant chunks that restate it without a check line (so the
guess teaches no false fact). This is the shortcut a length penalty rewards.

Train and test are disjoint problem sets (a stable hash of the problem; ``test_fraction``
20%). With the default ranges there are 1,258 problems, about 250 of them held out, so a
500-row test split repeats problems.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

from curriculum.tasks.overthink import REDUNDANT_PHRASES, choose_phrases, redundancy_weights

DATA_SOURCE = "parsimony/explore"
OPENING_LINE = "Let me try x from 1."
GUESS_OPENING_LINE = "Let me guess x."
SLIP_KINDS = ("guess",)
MAX_X = 9

_PROMPT = re.compile(r"Find x:\s*(\d+)\*x([+-])(\d+)=(-?\d+)\s*$")
_TRY = re.compile(r"^\s*(\d+)\*(\d+)([+-])(\d+)=(-?\d+), (no|yes)\s*$")
_ANSWER_STATEMENT = re.compile(r"the answer is\s*(-?\d+)", re.IGNORECASE)


# --------------------------------------------------------------------------- problems


def lhs(a: int, op: str, b: int, x: int) -> int:
    return a * x + b if op == "+" else a * x - b


def format_problem(a: int, op: str, b: int, c: int) -> str:
    return f"{a}*x{op}{b}={c}"


def make_prompt(problem: str) -> str:
    return f"Find x: {problem}"


def parse_prompt(prompt: str) -> tuple[int, str, int, int] | None:
    """``"Find x: 3*x+5=23"`` -> (3, "+", 5, 23); None when it is not an explore prompt."""
    m = _PROMPT.search(prompt.strip())
    if not m:
        return None
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))


def solve(a: int, op: str, b: int, c: int) -> int | None:
    """The x in 1..9 with ``a*x op b = c`` (the first one; None when there is none)."""
    return next((x for x in range(1, MAX_X + 1) if lhs(a, op, b, x) == c), None)


def problem_split(problem: str, test_fraction: float = 0.2) -> str:
    """Stable train/test assignment by hash of the problem string."""
    h = int.from_bytes(hashlib.sha256(("explore/" + problem).encode()).digest()[:8], "big")
    return "test" if (h % 10_000) < round(test_fraction * 10_000) else "train"


def all_problems(max_a: int = 9, max_b: int = 9, ops: tuple[str, ...] = ("+", "-")) -> list[tuple[int, str, int, int, int]]:
    """Every (a, op, b, c, x) with x in 1..9 and c >= 1 (c = a*x op b)."""
    out = []
    for op in ops:
        for a in range(2, max_a + 1):
            for b in range(1, max_b + 1):
                for x in range(1, MAX_X + 1):
                    c = lhs(a, op, b, x)
                    if c >= 1:
                        out.append((a, op, b, c, x))
    return out


# --------------------------------------------------------------------------- text


def try_line(a: int, op: str, b: int, x: int, c: int) -> str:
    v = lhs(a, op, b, x)
    return f"{a}*{x}{op}{b}={v}, {'yes' if v == c else 'no'}"


def make_trace(a: int, op: str, b: int, c: int, redundant_phrases=(), guess: int | None = None) -> str:
    """The SFT completion: tries 1..x in order (or, with ``guess``, the guessing slip)."""
    if guess is None:
        x = solve(a, op, b, c)
        if x is None:
            raise ValueError(f"no x in 1..{MAX_X} solves {format_problem(a, op, b, c)}")
        tries = [try_line(a, op, b, t, c) for t in range(1, x + 1)]
        lines = ["<think>", OPENING_LINE, *tries, f"So the answer is {x}."]
        check = [f"{a}*{x}{op}{b}={c}"]
        answer = x
    else:
        lines = ["<think>", GUESS_OPENING_LINE, f"So the answer is {guess}."]
        check = []
        answer = guess
    for phrase in redundant_phrases:
        lines += [phrase, *check, f"Yes, the answer is {answer}."]
    lines += ["</think>", f"\\boxed{{{answer}}}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- dataset


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    max_a: int = 9,
    max_b: int = 9,
    ops: tuple[str, ...] | list[str] = ("+", "-"),
    redundancy: str | Mapping[int, float] = "heavy",
    shuffle_phrases: bool = False,
    test_fraction: float = 0.2,
    slip_rate: float | Mapping[Any, float] = 0.0,
    slip_kind: str = "guess",
) -> list[dict[str, Any]]:
    """The rows of :func:`make_explore_dataset` as plain dicts."""
    from curriculum.tasks.slips import slip_policy

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 2 <= max_a <= 9 or not 1 <= max_b <= 9:
        raise ValueError(f"need 2 <= max_a <= 9 and 1 <= max_b <= 9, got max_a={max_a}, max_b={max_b}")
    ops = tuple(ops)
    if not ops or any(o not in ("+", "-") for o in ops):
        raise ValueError(f"ops must be a non-empty subset of ('+', '-'), got {ops!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ks, ws = redundancy_weights(redundancy)
    pool = [p for p in all_problems(max_a, max_b, ops) if problem_split(format_problem(*p[:4]), test_fraction) == split]
    if not pool:
        raise RuntimeError("no problems in this split; widen max_a/max_b/ops")
    rng = random.Random(f"explore/{seed}/{split}")
    slips = slip_policy(slip_rate, slip_kind, SLIP_KINDS, f"explore-slip/{seed}/{split}")
    rows: list[dict[str, Any]] = []
    while len(rows) < num_examples:
        a, op, b, c, x = rng.choice(pool)
        problem = format_problem(a, op, b, c)
        k = rng.choices(ks, weights=ws)[0]
        phrases = choose_phrases(rng, k, shuffle_phrases)
        guess = None
        if slips.draw(x):
            guess = slips.rng.choice([g for g in range(1, MAX_X + 1) if g != x])
        info_slip = {"slipped": guess is not None, "slip_kind": slip_kind if guess is not None else ""} if slips.active else {}
        rows.append(
            {
                "prompt": [{"role": "user", "content": make_prompt(problem)}],
                "completion": [{"role": "assistant", "content": make_trace(a, op, b, c, phrases, guess)}],
                "reward_model": {"ground_truth": str(x), "style": "rule"},
                "data_source": DATA_SOURCE,
                "extra_info": {
                    "difficulty": x,
                    "tries": x if guess is None else 0,
                    "x": x,
                    "split": split,
                    "index": len(rows),
                    "redundant_chunks": k,
                    "problem": problem,
                    **info_slip,
                },
            }
        )
    return rows


def make_explore_dataset(num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Seeded synthetic dataset (``datasets.Dataset``) in the shared-benchmark layout; the options
    are those of :func:`generate_examples` (``max_a``, ``max_b``, ``ops``, ``redundancy``,
    ``shuffle_phrases``, ``test_fraction``, ``slip_rate``, ``slip_kind``). ``extra_info`` holds
    {difficulty (= x), tries (the tries the trace makes), x, split, index, redundant_chunks, problem}
    and, with a non-zero ``slip_rate``, {slipped, slip_kind}."""
    import datasets

    return datasets.Dataset.from_list(generate_examples(num_examples, seed, split, **kwargs))


# --------------------------------------------------------------------------- metrics


def count_tries(text: str) -> int:
    """Tries (``3*2+5=11, no`` lines) a completion makes before its first answer statement,
    inside the reasoning (before ``</think>`` when present). A guess makes 0 tries."""
    if "</think>" in text:
        text = text.split("</think>", 1)[0]
    n = 0
    for line in text.split("\n"):
        if _ANSWER_STATEMENT.search(line):
            break
        if _TRY.match(line):
            n += 1
    return n


def mean_tries(texts: list[str]) -> float:
    """Mean :func:`count_tries` over completions (0.0 for none)."""
    return sum(count_tries(t) for t in texts) / len(texts) if texts else 0.0


def corpus_texts(num_examples: int = 200, seed: int = 0) -> list[str]:
    """Prompt and trace texts (both splits, both ops, guesses too), for training a tokenizer."""
    texts: list[str] = []
    for split in ("train", "test"):
        rows = generate_examples(num_examples // 2, seed=seed, split=split, shuffle_phrases=True, slip_rate=0.2)
        for row in rows:
            texts.append(row["prompt"][0]["content"])
            texts.append(row["completion"][0]["content"])
    return texts + [OPENING_LINE, GUESS_OPENING_LINE, *REDUNDANT_PHRASES]
