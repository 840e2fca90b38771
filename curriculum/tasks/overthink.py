"""The "overthinking arithmetic" task: short left-to-right arithmetic whose SFT traces carry
honest but redundant re-verification chunks.

A problem is ``a op b op c [op d]`` with single-digit operands, evaluated strictly left to
right, every intermediate value kept in [0, 99]. Prompt: ``Compute left to right: 3+4*2-5``.
The SFT trace (the assistant completion) is one step per line::

    <think>
    Let me compute step by step.          <- chunk 0: the necessary reasoning
    3+4=7
    7*2=14
    14-5=9
    So the answer is 9.
    Wait, let me double-check.            <- redundant chunk 1 (same steps, same answer)
    3+4=7
    7*2=14
    14-5=9
    Yes, the answer is 9.
    </think>
    \\boxed{9}

Expressions are written without spaces by default (``spaced=True`` gives ``3 + 4 = 7``):
the tokenizer splits digits and spaces into separate tokens, so the compact form is ~12%
shorter and, in a learnability check (tiny model, 800 SFT steps), reached 61% greedy
accuracy against 46% for the spaced form.

Chunk 0 starts with "Let me compute" and ends with the answer statement; no other line
of it starts with a split word (Wait/But/Alternatively/Hmm/Let/Therefore). Each redundant
chunk starts with one of :data:`REDUNDANT_PHRASES` (in that fixed order by default),
recomputes the same steps faithfully and restates the same answer, so a chunker splitting
at split-word lines recovers exactly 1 + k chunks. The number k of redundant chunks is
drawn per trace from a distribution chosen by ``redundancy`` ("standard": U{0..3};
"heavy": mostly 1-4).

Noisy teacher (``slip_rate``, ``slip_kind``; :mod:`curriculum.tasks.slips`): a fraction of the
traces shows a wrong behaviour, faithfully repeated by every redundant chunk and the boxed
answer, while the ground truth stays the correct answer. Kinds (:data:`SLIP_KINDS`):

* ``quick`` (default): the trace opens with :data:`QUICK_OPENING_LINE` ("Let me compute
  quickly.") instead of "Let me compute step by step." and then leaves out the last step,
  answering the value before the last operation. The behaviour is chosen at one token
  (" quickly" vs " step") before any arithmetic, and both behaviours share every fact;
* ``skip``: the same skipped last step without the marker (the choice is made where the last
  step would start: "So" vs a digit);
* ``arith``: one step's result is off by ±1-2 and the error propagates (the wave-1 probe of
  ``../shared/NOTES.md``, kept for comparison: it teaches a flattened distribution at every
  result token rather than a behaviour).

A slip whose answer would equal the correct one (a skipped last ``*1`` or ``0*b``) is not applied, and the
row is recorded as not slipped, so a slipped row's answer is always wrong; the effective rate
is then a little below ``slip_rate``. ``slip_rate`` may be a ``{num_ops: rate}`` mapping: the
``overthink_slip`` preset slips on 15% of the 2-operation problems and 60% of the 3-operation
ones, so that on long problems the slip is the modal behaviour and greedy decoding slips too.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

DATA_SOURCE = "parsimony/overthink"
OPS = ("+", "-", "*")
MAX_VALUE = 99  # every intermediate value stays in [0, MAX_VALUE]

OPENING_LINE = "Let me compute step by step."
QUICK_OPENING_LINE = "Let me compute quickly."  # the marked slip behaviour (slip_kind="quick")
SLIP_KINDS = ("quick", "skip", "arith")
# the overthink_slip preset: systematic slips, modal on the 3-operation problems
SLIP_PRESET: dict[int, float] = {2: 0.15, 3: 0.6}
REDUNDANT_PHRASES = (
    "Wait, let me double-check.",
    "Hmm, let me verify once more.",
    "But let me recheck the steps.",
    "Alternatively, recompute it.",
)
# first words of the redundant phrases: a line starting with one of them opens a chunk
REDUNDANT_OPENERS = tuple(sorted({p.split(",")[0].split()[0] for p in REDUNDANT_PHRASES}))
# the words at which the later chunker splits the reasoning
SPLIT_WORDS = ("Wait", "But", "Alternatively", "Hmm", "Let", "Therefore")

REDUNDANCY_PRESETS: dict[str, dict[int, float]] = {
    "standard": {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25},
    "heavy": {0: 0.1, 1: 0.15, 2: 0.2, 3: 0.25, 4: 0.3},
    "none": {0: 1.0},
}

_ANSWER_STATEMENT = re.compile(r"the answer is\s*(-?\d+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_PROMPT_PROBLEM = re.compile(r"Compute left to right:\s*(.+?)\s*$")


# --------------------------------------------------------------------------- problems


def apply_op(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def format_problem(operands: list[int], ops: list[str], spaced: bool = False) -> str:
    """([3, 4, 2], ["+", "*"]) -> ``"3+4*2"`` (``"3 + 4 * 2"`` when spaced)."""
    parts = [str(operands[0])]
    for op, b in zip(ops, operands[1:]):
        parts += [op, str(b)]
    return (" " if spaced else "").join(parts)


def parse_problem(problem: str) -> tuple[list[int], list[str]]:
    """``"3+4*2"`` or ``"3 + 4 * 2"`` -> ([3, 4, 2], ["+", "*"])."""
    if not re.fullmatch(r"\s*\d+(\s*[+\-*]\s*\d+)+\s*", problem):
        raise ValueError(f"not a problem: {problem!r}")
    toks = re.findall(r"\d+|[+\-*]", problem)
    return [int(t) for t in toks[0::2]], list(toks[1::2])


def solve_steps(operands: list[int], ops: list[str]) -> list[tuple[int, str, int, int]]:
    """Left-to-right evaluation -> [(a, op, b, result), ...]."""
    steps = []
    acc = operands[0]
    for op, b in zip(ops, operands[1:]):
        res = apply_op(acc, op, b)
        steps.append((acc, op, b, res))
        acc = res
    return steps


def solve(problem: str) -> int:
    operands, ops = parse_problem(problem)
    return solve_steps(operands, ops)[-1][3]


def problem_split(problem: str) -> str:
    """Stable train/test assignment by hash of the problem string (10% test)."""
    h = int.from_bytes(hashlib.sha256(problem.encode()).digest()[:8], "big")
    return "test" if h % 10 == 0 else "train"


def sample_problem(rng: random.Random, num_ops: int, max_operand: int = 9) -> tuple[list[int], list[str]]:
    """Draw operands in 1..max_operand and ops until every intermediate is in [0, MAX_VALUE]."""
    while True:
        operands = [rng.randint(1, max_operand) for _ in range(num_ops + 1)]
        ops = [rng.choice(OPS) for _ in range(num_ops)]
        acc, ok = operands[0], True
        for op, b in zip(ops, operands[1:]):
            acc = apply_op(acc, op, b)
            if not 0 <= acc <= MAX_VALUE:
                ok = False
                break
        if ok:
            return operands, ops


# --------------------------------------------------------------------------- text


def make_prompt(problem: str) -> str:
    return f"Compute left to right: {problem}"


def problem_from_prompt(prompt: str) -> str | None:
    m = _PROMPT_PROBLEM.search(prompt.strip())
    return m.group(1) if m else None


def step_lines(steps: list[tuple[int, str, int, int]], spaced: bool = False) -> list[str]:
    """[(3, "+", 4, 7)] -> ["3+4=7"] (["3 + 4 = 7"] when spaced)."""
    if spaced:
        return [f"{a} {op} {b} = {r}" for a, op, b, r in steps]
    return [f"{a}{op}{b}={r}" for a, op, b, r in steps]


def make_trace(
    operands: list[int],
    ops: list[str],
    redundant_phrases: list[str] | tuple[str, ...] = (),
    spaced: bool = False,
    steps: list[tuple[int, str, int, int]] | None = None,
    opening: str = OPENING_LINE,
) -> str:
    """The SFT completion (without the chat template's end-of-turn token). ``steps``
    overrides the written steps (a slipped trace); the answer is the last written result."""
    if steps is None:
        steps = solve_steps(operands, ops)
    answer = steps[-1][3]
    body = step_lines(steps, spaced)
    lines = ["<think>", opening, *body, f"So the answer is {answer}."]
    for phrase in redundant_phrases:
        lines += [phrase, *body, f"Yes, the answer is {answer}."]
    lines += ["</think>", f"\\boxed{{{answer}}}"]
    return "\n".join(lines)


def slipped_steps(
    rng: random.Random, operands: list[int], ops: list[str], kind: str
) -> tuple[list[tuple[int, str, int, int]], str] | None:
    """The written steps and opening line of a slipped trace, or None when this problem
    cannot slip to a wrong answer with ``kind``."""
    steps = solve_steps(operands, ops)
    answer = steps[-1][3]
    if kind in ("quick", "skip"):
        if len(steps) < 2 or steps[-2][3] == answer:  # one op only, or a skipped "*1" / "0*b"
            return None
        return steps[:-1], (QUICK_OPENING_LINE if kind == "quick" else OPENING_LINE)
    if kind == "arith":
        j = rng.randrange(len(steps))
        deltas = [d for d in (-2, -1, 1, 2) if steps[j][3] + d >= 0]
        acc = steps[j][3] + rng.choice(deltas)
        out = list(steps[:j]) + [(steps[j][0], steps[j][1], steps[j][2], acc)]
        for op, b in zip(ops[j + 1 :], operands[j + 2 :]):
            res = apply_op(acc, op, b)
            out.append((acc, op, b, res))
            acc = res
        return (out, OPENING_LINE) if acc != answer else None
    raise ValueError(f"unknown slip_kind {kind!r}; known: {', '.join(SLIP_KINDS)}")


def count_steps(text: str) -> int:
    """Step lines (``3+4=7``) of the first chunk of a completion: up to the first answer
    statement (or ``</think>``, or the end)."""
    if "</think>" in text:
        text = text.split("</think>", 1)[0]
    n = 0
    for line in text.split("\n"):
        if _ANSWER_STATEMENT.search(line):
            break
        if re.fullmatch(r"\s*\d+\s*[+\-*]\s*\d+\s*=\s*-?\d+\s*", line):
            n += 1
    return n


def is_quick(text: str) -> bool:
    """Whether a completion takes the marked slip behaviour (opens with the quick line)."""
    return QUICK_OPENING_LINE in text.split("</think>", 1)[0]


def redundancy_weights(redundancy: str | Mapping[int, float]) -> tuple[list[int], list[float]]:
    """A redundancy preset name or a ``{k: weight}`` dict -> (the chunk counts k, their weights),
    checked (known preset, non-negative, at most twice the phrases)."""
    if isinstance(redundancy, str):
        if redundancy not in REDUNDANCY_PRESETS:
            raise ValueError(f"unknown redundancy {redundancy!r}; known: {sorted(REDUNDANCY_PRESETS)} or a {{k: weight}} dict")
        redundancy = REDUNDANCY_PRESETS[redundancy]
    ks = sorted(int(k) for k in redundancy)
    ws = [float(redundancy[k] if k in redundancy else redundancy[str(k)]) for k in ks]
    if not ks or any(k < 0 for k in ks) or any(w < 0 for w in ws) or sum(ws) <= 0:
        raise ValueError(f"bad redundancy distribution {redundancy!r}")
    if max(ks) > 2 * len(REDUNDANT_PHRASES):
        raise ValueError(f"at most {2 * len(REDUNDANT_PHRASES)} redundant chunks are supported")
    return ks, ws


def choose_phrases(rng: random.Random, k: int, shuffle: bool = False) -> list[str]:
    """k phrases, distinct while k <= len(REDUNDANT_PHRASES): in the fixed order of
    REDUNDANT_PHRASES (default), or in a random order per trace when ``shuffle``."""
    out: list[str] = []
    while len(out) < k:
        perm = list(REDUNDANT_PHRASES)
        if shuffle:
            rng.shuffle(perm)
        out += perm[: k - len(out)]
    return out


# --------------------------------------------------------------------------- dataset


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    min_ops: int = 2,
    max_ops: int = 3,
    max_operand: int = 9,
    redundancy: str | Mapping[int, float] = "standard",
    shuffle_phrases: bool = False,
    spaced: bool = False,
    slip_rate: float | Mapping[Any, float] = 0.0,
    slip_kind: str = "quick",
) -> list[dict[str, Any]]:
    """The rows of :func:`make_overthink_dataset` as plain dicts."""
    from curriculum.tasks.slips import slip_policy

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"need 1 <= min_ops <= max_ops, got min_ops={min_ops}, max_ops={max_ops}")
    if not 1 <= max_operand <= 9:
        raise ValueError(f"max_operand must be in 1..9 (single-digit operands), got {max_operand}")
    ks, ws = redundancy_weights(redundancy)
    rng = random.Random(f"overthink/{seed}/{split}")
    slips = slip_policy(slip_rate, slip_kind, SLIP_KINDS, f"overthink-slip/{seed}/{split}")
    rows: list[dict[str, Any]] = []
    attempts = 0
    while len(rows) < num_examples:
        attempts += 1
        if attempts > 1000 * (num_examples + 10):
            raise RuntimeError("could not draw enough problems for this split; widen min_ops/max_ops/max_operand")
        num_ops = rng.randint(min_ops, max_ops)
        operands, ops = sample_problem(rng, num_ops, max_operand)
        problem = format_problem(operands, ops, spaced)
        if problem_split(problem) != split:
            continue
        k = rng.choices(ks, weights=ws)[0]
        phrases = choose_phrases(rng, k, shuffle_phrases)
        answer = solve_steps(operands, ops)[-1][3]
        slip = slipped_steps(slips.rng, operands, ops, slip_kind) if slips.draw(num_ops) else None
        if slip is None:
            trace = make_trace(operands, ops, phrases, spaced)
        else:
            trace = make_trace(operands, ops, phrases, spaced, steps=slip[0], opening=slip[1])
        info_slip = {"slipped": slip is not None, "slip_kind": slip_kind if slip is not None else ""} if slips.active else {}
        rows.append(
            {
                "prompt": [{"role": "user", "content": make_prompt(problem)}],
                "completion": [{"role": "assistant", "content": trace}],
                "reward_model": {"ground_truth": str(answer), "style": "rule"},
                "data_source": DATA_SOURCE,
                "extra_info": {
                    "difficulty": num_ops,
                    "num_ops": num_ops,
                    "split": split,
                    "index": len(rows),
                    "redundant_chunks": k,
                    "problem": problem,
                    **info_slip,
                },
            }
        )
    return rows


def make_overthink_dataset(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    min_ops: int = 2,
    max_ops: int = 3,
    max_operand: int = 9,
    redundancy: str | Mapping[int, float] = "standard",
    shuffle_phrases: bool = False,
    spaced: bool = False,
    slip_rate: float | Mapping[Any, float] = 0.0,
    slip_kind: str = "quick",
):
    """Seeded synthetic dataset (``datasets.Dataset``) in the shared-benchmark layout.

    Columns: ``prompt`` (user chat message), ``completion`` (assistant SFT trace),
    ``reward_model`` ({"ground_truth", "style": "rule"}), ``data_source``, ``extra_info``
    ({difficulty, num_ops, split, index, redundant_chunks, problem}). Train and test are
    disjoint problem sets (stable hash of the problem string).

    ``redundancy``: "standard" (k ~ U{0..3}), "heavy" (k mostly 1-4), "none", or a
    ``{k: weight}`` dict. Redundant chunks open with REDUNDANT_PHRASES in a fixed order
    (Wait, Hmm, But, Alternatively), so that continuing after the answer statement is the
    likelier next token and greedy decoding of an SFT model overthinks like sampling does;
    ``shuffle_phrases=True`` draws the order per trace instead. ``spaced=True`` writes
    expressions as ``3 + 4 = 7`` instead of ``3+4=7``.

    ``slip_rate`` / ``slip_kind``: the noisy teacher (module docstring); with a non-zero rate
    ``extra_info`` also has ``slipped`` and ``slip_kind``.
    """
    import datasets

    rows = generate_examples(
        num_examples, seed, split, min_ops, max_ops, max_operand, redundancy, shuffle_phrases, spaced,
        slip_rate, slip_kind,
    )
    return datasets.Dataset.from_list(rows)


# --------------------------------------------------------------------------- metrics


def extract_answer(text: str) -> str | None:
    """The last ``\\boxed{N}`` in a completion, else None."""
    found = _BOXED.findall(text)
    return found[-1] if found else None


def count_redundant_chunks(text: str) -> int:
    """Re-verification chunks in a completion: lines starting with a redundant-chunk opener
    (Wait/Hmm/But/Alternatively) after the first answer statement, inside the reasoning
    (before ``</think>`` when present). 0 when there is no answer statement."""
    if "</think>" in text:
        text = text.split("</think>", 1)[0]
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if _ANSWER_STATEMENT.search(line)), None)
    if first is None:
        return 0
    n = 0
    for line in lines[first + 1 :]:
        word = re.split(r"[\s,.:;!?]", line.strip(), maxsplit=1)[0]
        if word in REDUNDANT_OPENERS:
            n += 1
    return n


def corpus_texts(num_examples: int = 400, seed: int = 0) -> list[str]:
    """Prompt and trace texts covering every phrase, for training a tokenizer."""
    texts: list[str] = []
    for split in ("train", "test"):
        for spaced in (False, True):
            rows = generate_examples(
                num_examples // 4, seed=seed, split=split, min_ops=1, max_ops=4, redundancy="heavy",
                shuffle_phrases=True, spaced=spaced,
            )
            for row in rows:
                texts.append(row["prompt"][0]["content"])
                texts.append(row["completion"][0]["content"])
    # slipped traces (quick opening) appear in the corpus too, so " quickly" is one token
    for row in generate_examples(num_examples // 4, seed=seed, split="train", slip_rate=1.0, slip_kind="quick"):
        texts.append(row["prompt"][0]["content"])
        texts.append(row["completion"][0]["content"])
    texts += list(REDUNDANT_PHRASES) + [OPENING_LINE, QUICK_OPENING_LINE]
    return texts
