"""Arithmetic word problems in natural language (GSM8K-like, one to three steps), for a real pretrained
model: a story about a person and things they have, buy, give away, pack or share, and one question.

    Maya has 12 marbles. Maya buys 5 more marbles. Then Maya gives 4 marbles to a friend.
    How many marbles does Maya have now? Put the final answer in \\boxed{}.

The answer is an integer (every intermediate value too: a share divides evenly), and the contract is
the project's: the last ``\\boxed{...}`` of the completion. The SFT trace writes one equation per step and
closes with ``The answer is \\boxed{N}.``, a short format a small instruct model can pick up in a few
steps. Train and test are disjoint problem sets (stable hash of the problem text, 10% test), drawn with a
seeded RNG per (seed, split). ``extra_info``: ``difficulty`` = ``num_steps``, ``split``, ``index``,
``problem``.

``style="think"`` (the task ``word_problems_think``) writes the trace a reasoning model writes: the
equations inside ``<think>``, the first answer statement, then k re-checks that repeat the equations and
the answer (k drawn from ``redundancy``, the ``overthink`` task's presets: U{0..3} by default), and
``The answer is \\boxed{N}.`` after ``</think>``. The re-checks change nothing: the redundancy DECS and the
length presets are meant to remove, on a real model. ``extra_info["redundant_chunks"]`` is k.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Mapping

from curriculum.tasks.overthink import choose_phrases, redundancy_weights

NAMES = ("Maya", "Tom", "Sara", "Leo", "Ana", "Ben", "Nora", "Omar", "Lily", "Sam", "Ivy", "Max")
THINGS = ("apple", "marble", "sticker", "pencil", "book", "coin", "card", "shell", "cookie", "stamp")
INSTRUCTION = "Put the final answer in \\boxed{}."
MAX_VALUE = 200
STYLES = ("plain", "think")


def problem_split(problem: str) -> str:
    """Stable train/test assignment by hash of the problem text (10% test)."""
    h = int.from_bytes(hashlib.sha256(problem.encode()).digest()[:8], "big")
    return "test" if h % 10 == 0 else "train"


def _step(rng: random.Random, value: int, name: str, thing: str, last: bool) -> tuple[str, str, int] | None:
    """One step applied to ``value``: (sentence, equation, new value), or None when it does not fit. A
    share (the question then asks for one share) is only ever the last step."""
    kind = rng.choice(("buy", "give", "pack", "share") if last else ("buy", "give", "pack"))
    if kind == "buy":
        b = rng.randint(2, 20)
        return f"Then {name} buys {b} more {thing}s.", f"{value} + {b} = {value + b}", value + b
    if kind == "give":
        if value < 3:
            return None
        b = rng.randint(1, value - 1)
        return f"Then {name} gives {b} {thing}s to a friend.", f"{value} - {b} = {value - b}", value - b
    if kind == "pack":
        b = rng.randint(2, 6)
        if value * b > MAX_VALUE:
            return None
        k = b - 1
        return (f"Then {name} gets {k} more {'bag' if k == 1 else 'bags'}, each holding as many {thing}s as "
                f"{name} has now.", f"{value} * {b} = {value * b}", value * b)
    divisors = [d for d in range(2, 7) if value % d == 0 and value // d >= 1]
    if not divisors:
        return None
    d = rng.choice(divisors)
    return (f"Then {name} shares them equally among {d} friends, and counts one friend's share.",
            f"{value} / {d} = {value // d}", value // d)


def sample_problem(rng: random.Random, num_steps: int) -> dict[str, Any]:
    """A problem of ``num_steps`` steps: its text, its trace and its answer."""
    while True:
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        start = rng.randint(2, 30)
        sentences, equations, value = [f"{name} has {start} {thing}s."], [], start
        ok = True
        for i in range(num_steps):
            step = _step(rng, value, name, thing, last=i == num_steps - 1)
            if step is None:
                ok = False
                break
            sentence, equation, value = step
            if i == 0:  # the first step follows the opening sentence without "Then"
                sentence = sentence.replace("Then ", "", 1)
                sentence = sentence[0].upper() + sentence[1:]
            sentences.append(sentence)
            equations.append(equation)
        if ok and 0 <= value <= MAX_VALUE:
            question = (f"How many {thing}s does {name} have now?" if "shares" not in sentences[-1]
                        else f"How many {thing}s are in one share?")
            problem = " ".join(sentences) + " " + question
            trace = "\n".join(equations) + f"\nThe answer is \\boxed{{{value}}}."
            return {"problem": problem, "trace": trace, "answer": value}


def think_trace(equations: list[str], answer: int, phrases: list[str]) -> str:
    """A reasoning trace: the equations, the first answer statement, one re-check per phrase (the same
    equations, the same answer), then the boxed answer after ``</think>``."""
    lines = ["<think>", *equations, f"So the answer is {answer}."]
    for phrase in phrases:
        lines += [phrase, *equations, f"Yes, the answer is {answer}."]
    return "\n".join([*lines, "</think>", f"The answer is \\boxed{{{answer}}}."])


def generate_examples(num_examples: int, seed: int = 0, split: str = "train", min_steps: int = 1,
                      max_steps: int = 3, style: str = "plain",
                      redundancy: str | Mapping[int, float] = "standard") -> list[dict[str, Any]]:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    ks, ws = redundancy_weights(redundancy)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
    rng = random.Random(f"word_problems/{seed}/{split}")
    # the re-check draws use their own stream: both styles pose the same problems in the same order
    chunk_rng = random.Random(f"word_problems/{seed}/{split}/rechecks")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < num_examples:
        attempts += 1
        if attempts > 200 * num_examples + 1000:
            raise RuntimeError("could not draw enough distinct problems for this split")
        steps = rng.randint(min_steps, max_steps)
        p = sample_problem(rng, steps)
        if p["problem"] in seen or problem_split(p["problem"]) != split:
            continue
        seen.add(p["problem"])
        extra: dict[str, Any] = {}
        completion = p["trace"]
        if style == "think":
            k = chunk_rng.choices(ks, weights=ws)[0]
            completion = think_trace(p["trace"].split("\n")[:-1], p["answer"], choose_phrases(chunk_rng, k))
            extra["redundant_chunks"] = k
        rows.append({
            "prompt": [{"role": "user", "content": f"{p['problem']} {INSTRUCTION}"}],
            "completion": completion,
            "reward_model": {"ground_truth": str(p["answer"]), "style": "rule"},
            "data_source": "word_problems",
            "extra_info": {"difficulty": steps, "num_steps": steps, "split": split, "index": len(rows),
                           "problem": p["problem"], **extra},
        })
    return rows


def make_word_problems_dataset(num_examples: int, seed: int = 0, split: str = "train", min_steps: int = 1,
                               max_steps: int = 3, style: str = "plain",
                               redundancy: str | Mapping[int, float] = "standard"):
    """Seeded word problems (``datasets.Dataset``) in the shared-benchmark layout, with SFT traces."""
    import datasets

    return datasets.Dataset.from_list(
        generate_examples(num_examples, seed, split, min_steps, max_steps, style, redundancy))
