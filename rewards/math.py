"""Math answer grading and the accuracy rewards.

Three layers:

* **Extraction** (pure functions, cheap, safe on any input): :func:`extract_boxed`,
  :func:`extract_answer`, :func:`extract_choice_letter`.
* **Equivalence**: :func:`verify_answer` = quick string / numeric normalisation first, then
  ``math_verify`` (imported lazily; importing this module never imports sympy).
* **MathGrader**: grades many (completion, ground truth) pairs in a pool of worker
  processes with a hard per-item timeout. Workers are fresh interpreters (the spawn model:
  nothing is forked from the caller, which may hold torch/CUDA state, and unlike
  ``multiprocessing``'s spawn the caller's ``__main__`` is *not* re-imported in them, so a
  training script's top-level ``import torch`` is not paid per worker). They talk to the
  parent over ``multiprocessing.connection`` pipes, start lazily once and are reused.

Reward functions follow TRL's contract
``f(prompts, completions, completion_ids=None, **dataset_columns) -> list[float | None]``:
:data:`accuracy_reward` (an :class:`AccuracyReward`) and :class:`ChoiceAccuracyReward`.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import log10 as _log10
from multiprocessing.connection import Connection, wait as _mp_wait
from typing import Any, Iterable, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "GradeResult",
    "MathGrader",
    "AccuracyReward",
    "ChoiceAccuracyReward",
    "accuracy_reward",
    "choice_accuracy_reward",
    "extract_boxed",
    "extract_answer",
    "extract_choice_letter",
    "verify_answer",
    "verify_choice",
    "gold_choice_letter",
    "grade_one",
    "get_default_grader",
    "completion_text",
    "ground_truths_from_columns",
]

STATUSES = ("correct", "wrong", "no_answer", "timeout", "error")

# Fallback extraction only looks at the end of a completion (the answer is at the end; this
# bounds the cost on megabyte-long outputs). Boxes are searched in the whole text.
_FALLBACK_WINDOW = 10_000
# Longest extracted answer handed to sympy (longer ones are compared as strings only).
_MAX_SYMPY_ANSWER = 1_000
# ``GradeResult.extracted`` is cut to this many characters (it crosses a pipe).
_MAX_REPORTED_EXTRACTED = 2_000


# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------

_BOX_CMDS = ("\\boxed", "\\fbox")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.S)


def _find_last_box_cmd(text: str) -> tuple[int, int] | None:
    """(start, end) of the last ``\\boxed`` / ``\\fbox`` command name (not ``\\boxedfoo``)."""
    end = len(text)
    best: tuple[int, int] | None = None
    for cmd in _BOX_CMDS:
        hi = end
        while True:
            i = text.rfind(cmd, 0, hi)
            if i < 0:
                break
            j = i + len(cmd)
            if j < len(text) and text[j].isalpha():
                hi = i  # e.g. \boxedsymbol: keep looking further left
                continue
            if best is None or i > best[0]:
                best = (i, j)
            break
    return best


def _balanced_group(text: str, open_pos: int) -> str | None:
    """Content of the ``{...}`` group opening at ``open_pos``; None if unbalanced.
    Escaped braces (``\\{``) and other escapes are skipped."""
    depth = 0
    for m in _BRACE_TOKEN.finditer(text, open_pos):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1 : m.start()]
    return None


def extract_boxed(text: str | None) -> str | None:
    """Content of the LAST ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``.

    Braces are balanced (escaped ``\\{``/``\\}`` do not count); ``\\boxed 5`` (command, space,
    one token) is accepted. Returns None when there is no box or the last box is unbalanced /
    has no argument (never raises), and ``""`` for an empty box.
    """
    if not text:
        return None
    found = _find_last_box_cmd(text)
    if found is None:
        return None
    _, j = found
    k = j
    n = len(text)
    while k < n and text[k] in " \t\r\n":
        k += 1
    if k < n and text[k] == "{":
        return _balanced_group(text, k)
    if k == j or k >= n:  # "\boxed" glued to something else, or nothing after it
        return None
    m = re.match(r"[^\s$]+", text[k : k + 200])
    if not m:
        return None
    token = m.group().rstrip(".,;:")
    return token or None


_ANSWER_PHRASES = [
    re.compile(r"final\s+answer\s*(?:is|:)\s*:?", re.I),
    re.compile(r"the\s+answer\s+is\s*:?", re.I),
    re.compile(r"\banswer\s*:", re.I),
]
# bounded lengths keep the scan linear on adversarial input ("\\(" repeated 10^4 times)
_MATH_SEGMENT = re.compile(
    r"\$\$(.{1,1000}?)\$\$|\$([^$]{1,1000}?)\$|\\\((.{1,1000}?)\\\)|\\\[(.{1,1000}?)\\\]", re.S
)
_LAST_NUMBER = re.compile(r"-?\d+(?:,\d{3})+(?:\.\d+)?(?![\d,])|-?\d+(?:\.\d+)?(?:/\d+)?")


def _clean_phrase_answer(rest: str) -> str | None:
    """What follows "the answer is" up to the end of its line, trimmed to the answer."""
    line = rest.split("\n", 1)[0].strip()
    if not line:
        return None
    line = line.strip("*_ ")  # markdown bold/italic around the answer
    m = _MATH_SEGMENT.match(line)
    if m:  # "The answer is $x$." -> x
        ans = next(g for g in m.groups() if g is not None)
        return ans.strip() or None
    # plain text: stop at the end of the first sentence
    m = re.search(r"\.(?:\s|$)", line)
    if m:
        line = line[: m.start()]
    line = line.strip().strip("*_").strip().rstrip(".,;:")
    return line[:300] or None


def _extract_unboxed(text: str) -> str | None:
    window = text[-_FALLBACK_WINDOW:]
    for pat in _ANSWER_PHRASES:
        last = None
        for m in pat.finditer(window):
            last = m
        if last is not None:
            ans = _clean_phrase_answer(window[last.end() :])
            if ans:
                return ans
    last = None
    tail = window[-1100:]  # a segment that ends in the last 20 characters starts in here
    for m in _MATH_SEGMENT.finditer(tail):
        last = m
    if last is not None and len(tail[last.end() :].strip()) <= 20:
        ans = next(g for g in last.groups() if g is not None).strip()
        if ans:
            return ans
    last = None
    for m in _LAST_NUMBER.finditer(window):
        last = m
    return last.group() if last is not None else None


def extract_answer(text: str | None) -> str | None:
    """The final answer of a completion, as a string (None when nothing is found).

    Order:

    0. If ``</think>`` occurs and a box follows the last one, only that tail is used;
       otherwise the whole text.
    1. The last ``\\boxed{}`` / ``\\fbox{}``. When a box is present it decides alone: an
       unbalanced last box gives None, an empty one ``""`` (graded wrong).
    2. ``final answer is X`` / ``Final answer: X``, then ``the answer is X``, then
       ``Answer: X`` (last occurrence of each; X = a leading ``$..$`` or the rest of the
       sentence).
    3. The last math segment (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) if nothing but a
       few characters follow it.
    4. The last number.

    Steps 2-4 only look at the last 10,000 characters.
    """
    if not text:
        return None
    idx = text.rfind("</think>")
    if idx >= 0:
        tail = text[idx + len("</think>") :]
        if _find_last_box_cmd(tail) is not None:
            return extract_boxed(tail)
    if _find_last_box_cmd(text) is not None:
        return extract_boxed(text)
    return _extract_unboxed(text)


_CHOICE_CLEAN = re.compile(r"^[\s*_$]*(?:\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{)?[\s(\[]*")


def _leading_letter(s: str, letters: str) -> str | None:
    """"B", "(B)", "**B**", "\\text{B}", "B) foo", "B." -> "B"; "Bob" -> None."""
    s = _CHOICE_CLEAN.sub("", s, count=1)
    if s and s[0] in letters and (len(s) == 1 or not s[1].isalnum()):
        return s[0]
    return None


def _choice_in(text: str, letters: str) -> str | None:
    window = text[-_FALLBACK_WINDOW:]
    # 1. ANSWER: X (keyword case-insensitive; the last one that names a letter)
    for m in reversed(list(re.finditer(r"answer\s*(?:is\s*)?[:：]", window, re.I))):
        letter = _leading_letter(window[m.end() : m.end() + 40], letters)
        if letter:
            return letter
    # 2. \boxed{X}
    boxed = extract_boxed(text)
    if boxed:
        letter = _leading_letter(boxed, letters)
        if letter:
            return letter
    # 3. "the answer is (X)", "correct option is X"
    for m in reversed(list(re.finditer(r"(?:answer|option|choice)\s+is\s*", window, re.I))):
        letter = _leading_letter(window[m.end() : m.end() + 40], letters)
        if letter:
            return letter
    # 4. the last standalone (X)
    last = None
    for m in re.finditer(r"\(([%s])\)" % re.escape(letters), window):
        last = m
    return last.group(1) if last is not None else None


def extract_choice_letter(text: str | None, letters: str = "ABCDEFGHIJ") -> str | None:
    """The chosen letter of a multiple-choice completion (GPQA, MMLU style), or None.

    Order: ``ANSWER: X`` (keyword case-insensitive, letter upper case), ``\\boxed{X}``,
    ``the answer is (X)`` / ``correct option is X``, the last standalone ``(X)``. If
    ``</think>`` occurs, the text after it is tried first, then the whole text.
    """
    if not text:
        return None
    idx = text.rfind("</think>")
    if idx >= 0:
        got = _choice_in(text[idx + len("</think>") :], letters)
        if got:
            return got
    return _choice_in(text, letters)


_GOLD_LETTER = re.compile(r"^\s*\(?([A-Z])(?:\)|\.|:|\s|$)")


def gold_choice_letter(ground_truth: Any) -> str | None:
    """Letter of a multiple-choice ground truth: ``"B"``, ``"(B)"``, ``"B) -0.7"`` -> ``"B"``."""
    if ground_truth is None:
        return None
    m = _GOLD_LETTER.match(str(ground_truth))
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------

_WRAPPERS = [
    (re.compile(r"^\\\[(.*)\\\]$", re.S), 1),
    (re.compile(r"^\\\((.*)\\\)$", re.S), 1),
]
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\s*(\.)?")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf)\s*\{([^{}]*)\}(?:\s*\^\s*\{?\d\}?)?")
_UNIT_WORDS = re.compile(r"^\s*[A-Za-z]{1,12}(?:\s+[A-Za-z]{1,12})?\s*\.?\s*$")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ\b|°|\\degree(?![A-Za-z])")
_PERCENT = re.compile(r"\\?%")
_SPACING = re.compile(r"\\\\|\\[,;:! ]|\\q?quad(?![A-Za-z])|~")  # "\\\\" (row break) is kept
_ASSIGN = re.compile(r"^\\?[A-Za-z]+(?:_\{?[A-Za-z0-9]+\}?)?\s*=\s*(?=\S)")
_THOUSANDS = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+)(\.\d+)?$")
_THOUSANDS_SEP = re.compile(r"(\d),\s*\\!\s*(?=\d{3}(?!\d))")
_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_SQRT_SHORT = re.compile(r"\\sqrt(\d)")

_NUM_INT = re.compile(r"^[+-]?\d+$")
_NUM_DEC = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_NUM_FRAC = re.compile(r"^([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}$")
_NUM_SLASH = re.compile(r"^([+-]?\d+)/(\d+)$")


def _light_clean(s: str) -> str:
    """Cosmetic clean-up that never changes the meaning (input to math_verify)."""
    s = s.strip()
    for pat, g in _WRAPPERS:
        m = pat.match(s)
        if m:
            s = m.group(g).strip()
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    s = _LEFT_RIGHT.sub("", s)
    s = _THOUSANDS_SEP.sub(r"\1", s.replace("{,}", ""))  # 29,\!322,\!216 -> 29322216
    s = s.strip().rstrip(".").strip()
    return s


def _semantic_normalize(s: str) -> tuple[str, frozenset, bool]:
    """Drops units, degrees, percent, ``x =``, thousands separators. Returns (string, what
    was dropped: subset of {"units", "degrees", "percent"}, changed: more than spacing)."""
    orig = s
    dropped: set[str] = set()
    changed = False
    if _TEXT_CMD.search(s):
        # "5\text{ cm}", "n \text{ meters}^2": a unit after something -> dropped;
        # "\text{Monday}", "\text{(A)}", "x \text{ or } y" -> unwrapped
        if _TEXT_CMD.sub(" ", s).strip():
            def unit_or_text(m: re.Match) -> str:
                if _UNIT_WORDS.match(m.group(1)) and m.group(1).strip().lower() not in ("or", "and"):
                    dropped.add("units")
                    return " "
                return " " + m.group(1) + " "

            s = _TEXT_CMD.sub(unit_or_text, s)
        else:
            s = _TEXT_CMD.sub(lambda m: m.group(1), s)
        changed = True
    s2 = _DEGREES.sub("", s)
    if s2 != s:
        dropped.add("degrees")
        s = s2
    s2 = _PERCENT.sub("", s)
    if s2 != s:
        dropped.add("percent")
        s = s2
    s = _SPACING.sub(lambda m: m.group() if m.group() == "\\\\" else " ", s)
    if s.count("=") == 1 and "," not in s:
        s2 = _ASSIGN.sub("", s, count=1)
        changed = changed or s2 != s
        s = s2
    s = s.strip()
    m = _THOUSANDS.match(s.replace(" ", ""))
    if m:
        s = m.group(1) + m.group(2).replace(",", "") + (m.group(3) or "")
        changed = True
    if not s:
        return orig, frozenset(), False
    return s, frozenset(dropped), changed or bool(dropped)


def _key(s: str) -> str:
    s = re.sub(r"\s+", "", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    return s.rstrip(".")


def _as_number(key: str) -> Fraction | None:
    try:
        if _NUM_INT.match(key) or _NUM_DEC.match(key):
            if len(key) > 60:
                return None
            return Fraction(key)
        m = _NUM_FRAC.match(key) or None
        if m:
            if len(key) > 60 or int(m.group(3)) == 0:
                return None
            v = Fraction(int(m.group(2)), int(m.group(3)))
            return -v if m.group(1) == "-" else v
        m = _NUM_SLASH.match(key)
        if m and int(m.group(2)) != 0 and len(key) <= 60:
            return Fraction(int(m.group(1)), int(m.group(2)))
    except (ValueError, ZeroDivisionError):
        return None
    return None


_NUM_CHAIN = re.compile(r"\d+(?:\s*\}?\s*\^\s*\{?\s*\(?\s*\d+)+")
_BIG_FACT = re.compile(r"\d{6,}\s*!|\(\s*\d+\s*\^[\d\s{}^()]*\)\s*!|\{\s*\d+\s*\^[\d\s{}^()]*\}\s*!")
_CALCULUS = re.compile(r"\\(?:int|iint|iiint|oint|lim|sum|prod)(?![A-Za-z])")


def _dangerous(s: str) -> bool:
    """Answers that would make sympy compute astronomically large numbers (numeric power
    towers or exponents > 10^5, factorials of >= 10^5 or of powers): strings only."""
    if "^" not in s and "!" not in s:
        return False
    if _BIG_FACT.search(s):
        return True
    for m in _NUM_CHAIN.finditer(s):  # a^b^c^...: evaluate the exponent from the top
        nums = re.findall(r"\d+", m.group())
        if any(len(x) > 12 for x in nums[1:]):
            return True
        exp = float(int(nums[-1]))
        for x in reversed(nums[1:-1]):
            b = int(x)
            if b >= 2 and exp * _log10(b) > 6:
                return True
            exp = float(b) ** exp if b >= 2 else float(b)
        if int(nums[0]) >= 2 and exp > 1e5:
            return True
    return False


class _EvalFail(Exception):
    pass


_EVAL_TOKEN = re.compile(r"\s*(\d+\.\d*|\.\d+|\d+|\\[A-Za-z]+|[A-Za-z]|[-+*/^(){}\[\]])")
# values given to single-letter variables (the same for gold and prediction); e and i are
# not variables (Euler's number, imaginary unit): expressions with them are not evaluated
_EVAL_VARS = {ch: 0.5 + ((k * 0.6180339887) % 1.0) + k * 0.0137 for k, ch in enumerate("abcdfghjklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_EVAL_CONST = {"\\pi": 3.141592653589793}
_EVAL_MUL = {"\\cdot": "*", "\\times": "*", "\\div": "/"}


def _tokenize(s: str) -> list[str]:
    pos, out = 0, []
    s = s.rstrip()
    while pos < len(s):
        m = _EVAL_TOKEN.match(s, pos)
        if not m:
            raise _EvalFail
        tok = m.group(1)
        out.append(_EVAL_MUL.get(tok, tok))
        pos = m.end()
    return out


class _NumEval:
    """Float value of a LaTeX expression made of numbers, single-letter variables (fixed
    values), + - * / ^, \\frac, \\sqrt, \\sqrt[n], \\pi, \\cdot, \\times, implicit
    products, parentheses / braces. Raises _EvalFail on anything else (functions, e, i,
    subscripts, sets, relations, unknown commands, ambiguous "a/bc" or "2^10")."""

    def __init__(self, s: str):
        self.t = _tokenize(s)
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, tok: str | None = None) -> str:
        cur = self.peek()
        if cur is None or (tok is not None and cur != tok):
            raise _EvalFail
        self.i += 1
        return cur

    def run(self) -> float:
        v = self.expr()
        if self.peek() is not None:
            raise _EvalFail
        return v

    def expr(self) -> float:
        v = self.term()
        while self.peek() in ("+", "-"):
            v = v + self.term() if self.take() == "+" else v - self.term()
        return v

    def term(self) -> float:
        v = self.unary()
        divided = False
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                rhs = self.unary()
                v = v * rhs if tok == "*" else v / rhs
                divided = divided or tok == "/"
            elif tok is not None and (tok[0].isalnum() or tok[0] == "." or tok in ("(", "{", "\\frac", "\\sqrt", "\\pi")):
                if divided:  # "a/bc": a/(bc) or (a/b)c? don't guess
                    raise _EvalFail
                v = v * self.power()  # implicit product: 2\sqrt{3}, 3\pi, 2(1+x), xy
            else:
                return v

    def unary(self) -> float:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            if self.peek() in ("{", "("):
                e = self.atom()
            else:
                tok = self.take()
                if not (tok.isdigit() and len(tok) == 1):  # "2^10" is ambiguous in LaTeX
                    raise _EvalFail
                e = float(tok)
            if base < 0 and e != int(e):
                raise _EvalFail
            return float(base**e)
        return base

    def group(self) -> float:
        self.take("{")
        v = self.expr()
        self.take("}")
        return v

    def atom(self) -> float:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            return float(tok)
        if tok in _EVAL_CONST:
            return _EVAL_CONST[tok]
        if tok in _EVAL_VARS:
            return _EVAL_VARS[tok]
        if tok == "(":
            v = self.expr()
            self.take(")")
            return v
        if tok == "{":
            self.i -= 1
            return self.group()
        if tok == "\\frac":
            num = self.group()
            return num / self.group()
        if tok == "\\sqrt":
            n = 2.0
            if self.peek() == "[":
                self.take()
                n = self.expr()
                self.take("]")
            v = self.group()
            if v < 0 or n == 0:
                raise _EvalFail
            return v ** (1.0 / n)
        raise _EvalFail


def _numeric_value(s: str) -> float | None:
    """Float value of an expression (variables at fixed points), or None when it cannot be
    evaluated safely. Two expressions whose values differ are not equivalent."""
    if len(s) > 200 or not s:
        return None
    try:
        v = _NumEval(s).run()
    except (_EvalFail, ArithmeticError, ValueError, RecursionError, TypeError):
        return None
    if isinstance(v, complex) or v != v or v in (float("inf"), float("-inf")):
        return None
    return v


def _split_top(s: str) -> list[str]:
    """Splits on commas outside any brackets."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(s):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:k])
            start = k + 1
    parts.append(s[start:])
    return parts


_INF = {"\\infty": float("inf"), "+\\infty": float("inf"), "-\\infty": float("-inf"), "\\infin": float("inf")}


def _element_value(part: str) -> float | None:
    return _INF[part] if part in _INF else _numeric_value(part)


def _tuple_values(key: str) -> tuple[str, list[float]] | None:
    """"(1,\\frac{1}{2}]" -> ("(]", [1.0, 0.5]) for bracketed tuples / intervals whose
    elements can be evaluated (``\\infty`` allowed)."""
    if len(key) < 5 or key[0] not in "([" or key[-1] not in ")]":
        return None
    parts = _split_top(key[1:-1])
    if len(parts) < 2:
        return None
    vals = []
    for part in parts:
        v = _element_value(part)
        if v is None:
            return None
        vals.append(v)
    return key[0] + key[-1], vals


_MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix)\}(.*)\\end\{\1\}$", re.S)


def _matrix_values(key: str) -> tuple[tuple[int, int], list[float]] | None:
    """Shape and entries of a ``pmatrix``/``bmatrix``/... of evaluable entries."""
    m = _MATRIX.match(key)
    if not m:
        return None
    rows = [r.split("&") for r in m.group(2).split("\\\\") if r.strip()]
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    vals = []
    for r in rows:
        for cell in r:
            v = _numeric_value(cell)
            if v is None:
                return None
            vals.append(v)
    return (len(rows), len(rows[0])), vals


def _pm_values(key: str) -> list[float] | None:
    """The two values of ``a \\pm b`` (sorted), for one ``\\pm``."""
    if key.count("\\pm") != 1:
        return None
    plus, minus = _numeric_value(key.replace("\\pm", "+")), _numeric_value(key.replace("\\pm", "-"))
    if plus is None or minus is None:
        return None
    return sorted([plus, minus])


_BASE_NUM = re.compile(r"^([0-9A-Za-z]+)_\{?(\d+)\}?$")


def _base_value(key: str) -> int | None:
    """``4210_{5}`` -> its value (math_verify ignores the base: 4210_8 == 4210_5 there)."""
    m = _BASE_NUM.match(key)
    if not m or len(m.group(1)) > 40:
        return None
    try:
        base = int(m.group(2))
        return int(m.group(1), base) if 2 <= base <= 36 else None
    except ValueError:
        return None


_WORD = re.compile(r"^[A-Za-z][A-Za-z ]{2,}$")


# "5 cm", "3 m^2": math_verify drops such units; the evaluator would read them as variables
_UNIT_TAIL = re.compile(r"\d\s+[A-Za-z]+(?:\^\{?\d\}?)?\s*$")


def _far(a: float, b: float) -> bool:
    if a in (float("inf"), float("-inf")) or b in (float("inf"), float("-inf")):
        return a != b
    return abs(a - b) > 1e-3 * max(1.0, abs(a), abs(b))


_COLLECTION = re.compile(r"\\cup|\\cap|\\pm|\\mp|\\begin\{|;|\bor\b|\band\b")
# relations, R, empty set: math_verify compares intervals with inequalities etc.
_SET_LIKE = re.compile(r"[<>=]|\\(?:le|ge|leq|geq|lt|gt|ne|neq|in|mathbb|emptyset|varnothing|infty)(?![A-Za-z])")


def _is_collection(s: str) -> bool:
    """Tuple / list / set / interval union / matrix / "a or b" (commas outside braces)."""
    if _COLLECTION.search(s):
        return True
    depth = 0
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


_MV: Any = None


def _mv():
    """math_verify objects, imported on first use (keeps ``import rewards`` cheap)."""
    global _MV
    if _MV is None:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        config = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
        _MV = (parse, verify, config)
    return _MV


@lru_cache(maxsize=8192)
def _mv_parse(s: str):
    parse, _, config = _mv()
    # timeouts are enforced by the grader (signals / killing the worker), not math_verify
    return parse("\\boxed{" + s + "}", extraction_config=config, parsing_timeout=None)


@lru_cache(maxsize=16384)
def _mv_equal(gold: str, pred: str) -> bool:
    _, verify, _ = _mv()
    g = _mv_parse(gold)
    p = _mv_parse(pred)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def _quick_verdict(p: str, g: str, p_sem: str, g_sem: str, p_drop: frozenset, g_drop: frozenset) -> bool | None:
    """Decides cheaply when it safely can (None = ask sympy). ``p``/``g`` are cleaned,
    ``*_sem`` unit-stripped, ``*_drop`` what the stripping dropped."""
    p_key, g_key = _key(p_sem), _key(g_sem)
    if p_key and p_key == g_key:
        return True
    pn, gn = _as_number(p_key), _as_number(g_key)
    if pn is not None and gn is not None and pn == gn:
        return True
    # decisive "no" only when both sides dropped the same kinds of things (50% vs 0.5: ask
    # sympy) and neither ends in a bare unit ("5 m": math_verify drops it, we'd see "m")
    if p_drop != g_drop or _UNIT_TAIL.search(p_sem) or _UNIT_TAIL.search(g_sem):
        return None
    if pn is not None and gn is not None and pn.denominator == 1 and gn.denominator == 1:
        return False
    pb, gb = _base_value(p_key), _base_value(g_key)
    if pb is not None and gb is not None:
        return pb == gb
    if _WORD.match(p_sem) and re.search(r"\d", g_sem) or _WORD.match(g_sem) and re.search(r"\d", p_sem):
        return False  # "Evelyn" vs "12"
    if _is_collection(p_sem) != _is_collection(g_sem) and not (_SET_LIKE.search(p_sem) or _SET_LIKE.search(g_sem)):
        return False  # a single value vs a tuple / set / interval union / matrix
    # expressions evaluated numerically (variables at fixed points): different values mean
    # different answers (sympy would take 5-200 ms to say the same); equal values: ask sympy
    pv = _numeric_value(p_key)
    gv = _numeric_value(g_key) if pv is not None else None
    if pv is not None and gv is not None:
        return False if _far(pv, gv) else None
    pt = _tuple_values(p_key)
    gt = _tuple_values(g_key) if pt is not None else None
    if pt is not None and gt is not None and pt[0] == gt[0] and len(pt[1]) == len(gt[1]):
        return False if any(_far(a, b) for a, b in zip(pt[1], gt[1])) else None
    pm = _matrix_values(p_key)
    gm = _matrix_values(g_key) if pm is not None else None
    if pm is not None and gm is not None:
        if pm[0] != gm[0]:
            return False
        return False if any(_far(a, b) for a, b in zip(pm[1], gm[1])) else None
    ppm = _pm_values(p_key)
    gpm = _pm_values(g_key) if ppm is not None else None
    if ppm is not None and gpm is not None:
        return False if any(_far(a, b) for a, b in zip(ppm, gpm)) else None
    return None


def verify_answer(pred: str | None, gold: str | None) -> bool:
    """True when the extracted answer ``pred`` is equivalent to ``gold``.

    1. Clean both (``$``, ``\\dfrac``, ``\\left``/``\\right``, ``1,\\!000``); equal -> True.
    2. Normalise (units in ``\\text{}``, degrees, ``\\%``, ``x =``, thousands separators,
       spacing) and decide cheaply where that is safe: equal strings or numbers -> True;
       different integers, a value vs a tuple, two expressions whose numeric values
       differ (variables at fixed points), different tuples / matrices / ``a \\pm b`` ->
       False.
    3. Otherwise math_verify (sympy) on the cleaned strings, then on the normalised ones
       if normalising changed more than spacing. Answers that would make sympy compute
       astronomically large numbers, answers > 1,000 characters and unevaluated
       integrals / limits / sums (when the gold has none) are not handed to sympy.

    Never raises; does not time out by itself (see :class:`MathGrader`).
    """
    if pred is None or gold is None:
        return False
    try:
        p = _light_clean(str(pred))
        g = _light_clean(str(gold))
        if not p or not g:
            return False
        if p == g:
            return True
        p_sem, p_drop, p_changed = _semantic_normalize(p)
        g_sem, g_drop, g_changed = _semantic_normalize(g)
        quick = _quick_verdict(p, g, p_sem, g_sem, p_drop, g_drop)
        if quick is not None:
            return quick
        if len(p) > max(_MAX_SYMPY_ANSWER, 4 * len(g)) or _dangerous(p) or _dangerous(g):
            return False
        if _CALCULUS.search(p) and not _CALCULUS.search(g):
            return False  # an unevaluated integral / limit / sum is not a final answer
        if _mv_equal(g, p):
            return True
        if p_changed or g_changed:
            return _mv_equal(g_sem, p_sem)
        return False
    except Exception:  # math_verify/sympy bugs on odd input: not equivalent
        logger.debug("verify_answer failed", exc_info=True)
        return False


def verify_choice(pred: str | None, gold: Any) -> bool:
    letter = gold_choice_letter(gold)
    return bool(pred) and letter is not None and pred.strip().upper() == letter


def grade_one(completion: Any, ground_truth: Any, mode: str = "math") -> tuple[float, str | None, str]:
    """Grades one completion in this process (no timeout): (score, extracted, status)."""
    text = completion if isinstance(completion, str) else completion_text(completion)
    if mode == "choice":
        gold = gold_choice_letter(ground_truth)
        if gold is None:
            return 0.0, None, "error"
        letter = extract_choice_letter(text)
        if letter is None:
            return 0.0, None, "no_answer"
        return (1.0, letter, "correct") if letter == gold else (0.0, letter, "wrong")
    if mode != "math":
        raise ValueError(f"unknown grading mode {mode!r} (expected 'math' or 'choice')")
    if ground_truth is None or not str(ground_truth).strip():
        return 0.0, None, "error"
    extracted = extract_answer(text)
    if extracted is None:
        return 0.0, None, "no_answer"
    if verify_answer(extracted, str(ground_truth)):
        return 1.0, extracted, "correct"
    return 0.0, extracted, "wrong"


# ---------------------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker. BaseException: ``except Exception`` won't eat it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout()


def _set_parent_death_signal() -> None:
    """Linux: the worker is SIGKILLed when the parent (thread) dies, even while stuck in C
    code. Idle workers also exit on EOF when the parent goes away."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _worker_main(fd: int, parent_pid: int, die_with_parent: bool = True) -> None:
    """Entry point of a grader worker (``python -c``). Protocol over the connection:
    parent -> ``(mode, soft_timeout_or_0, [(idx, completion, gt), ...])`` or None;
    worker -> ``("ready", pid)`` once, then ``(idx, score, extracted, status, seconds)``
    per item, in order."""
    import signal
    import warnings

    warnings.filterwarnings("ignore")
    if die_with_parent:
        _set_parent_death_signal()
    if os.getppid() != parent_pid:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGALRM, _on_alarm)
    conn = Connection(fd)
    try:
        _mv()
        grade_one("so \\boxed{\\frac{1}{2}}", "0.5")  # warm sympy / latex2sympy up
        grade_one("so \\boxed{(1, 2)}", "(1,2]")
    except Exception:
        pass
    try:
        conn.send(("ready", os.getpid()))
    except (EOFError, OSError):
        return
    perf = time.perf_counter
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        mode, soft, items = msg
        for idx, completion, gt in items:
            t0 = perf()
            try:
                try:
                    if soft:
                        signal.setitimer(signal.ITIMER_REAL, soft)
                    score, extracted, status = grade_one(completion, gt, mode)
                finally:
                    if soft:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            except _SoftTimeout:
                score, extracted, status = 0.0, None, "timeout"
            except Exception:
                score, extracted, status = 0.0, None, "error"
            if extracted is not None and len(extracted) > _MAX_REPORTED_EXTRACTED:
                extracted = extracted[:_MAX_REPORTED_EXTRACTED]
            try:
                conn.send((idx, score, extracted, status, perf() - t0))
            except (EOFError, OSError):
                return


# ---------------------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeResult:
    score: float
    extracted: str | None
    status: str  # correct | wrong | no_answer | timeout | error
    seconds: float = 0.0  # time the item held a worker

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class _Worker:
    __slots__ = ("proc", "conn", "ready", "inflight", "item_started", "spawned_at")

    def __init__(self, proc: subprocess.Popen, conn: Connection):
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.inflight: collections.deque = collections.deque()  # (idx, completion, gt)
        self.item_started = 0.0
        self.spawned_at = time.monotonic()


_LIVE_GRADERS: "weakref.WeakSet[MathGrader]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _close_all_graders() -> None:
    for g in list(_LIVE_GRADERS):
        try:
            g.close()
        except Exception:
            pass


class MathGrader:
    """Grades completions against ground truths in a pool of worker processes.

    Each item gets ``timeout`` seconds: a SIGALRM inside the worker interrupts sympy at
    ``timeout`` (status ``"timeout"``, the worker lives on), and a worker that has not
    answered by ``timeout + kill_grace`` (stuck in C code, or ``soft_timeout=False``) is
    killed and replaced; its item is a ``"timeout"`` and the rest of its chunk goes to
    another worker. A worker that dies marks its current item ``"error"``. ``grade`` never
    raises for bad inputs and never waits longer than the per-item limits allow (plus
    worker start-up).

    Items go to workers in chunks (one pipe message per chunk, one small reply per item).
    Workers start on the first ``grade`` (or :meth:`start`) and are reused; ``close()``
    (also on ``with`` exit, garbage collection and interpreter exit) stops them.
    ``stats`` counts spawned / killed workers and the longest time an item held one.
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout: float = 1.0,
        mode: str = "math",
        *,
        chunk_size: int | None = None,
        soft_timeout: bool = True,
        kill_grace: float = 0.5,
        startup_timeout: float = 120.0,
    ):
        if mode not in ("math", "choice"):
            raise ValueError(f"mode must be 'math' or 'choice', got {mode!r}")
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.num_workers = int(num_workers)
        self.timeout = float(timeout)
        self.mode = mode
        self.chunk_size = chunk_size
        self.soft_timeout = bool(soft_timeout)
        self.kill_grace = float(kill_grace) if soft_timeout else 0.0
        self.startup_timeout = float(startup_timeout)
        self.stats: dict[str, float] = {"spawned": 0, "killed": 0, "died": 0, "max_item_seconds": 0.0}
        self._workers: list[_Worker] = []
        self._lock = threading.RLock()
        self._closed = False
        self._owner_pid = os.getpid()
        self._startup_failures = 0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> "MathGrader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _spawn(self) -> _Worker:
        global _ATEXIT_REGISTERED
        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # PR_SET_PDEATHSIG fires when the *thread* that started the worker ends: only the
        # main thread lives as long as the process (others: EOF on the pipe ends workers)
        die_with_parent = threading.current_thread() is threading.main_thread()
        code = f"from rewards.math import _worker_main; _worker_main({child_fd}, {os.getpid()}, {die_with_parent})"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            child_sock.close()
        w = _Worker(proc, Connection(parent_sock.detach()))
        self._workers.append(w)
        self.stats["spawned"] += 1
        _LIVE_GRADERS.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_all_graders)
            _ATEXIT_REGISTERED = True
        return w

    def _discard(self, w: _Worker, kill: bool = True) -> None:
        if w in self._workers:
            self._workers.remove(w)
        try:
            w.conn.close()
        except Exception:
            pass
        if kill and w.proc.poll() is None:
            try:
                w.proc.kill()
            except Exception:
                pass
        try:
            w.proc.wait(timeout=5)
        except Exception:
            pass

    def _check_owner(self) -> None:
        if os.getpid() != self._owner_pid:  # we are a fork of the owner: its workers aren't ours
            self._workers = []
            self._owner_pid = os.getpid()
            self._closed = False

    def start(self, wait: bool = True) -> "MathGrader":
        """Starts the workers now (otherwise the first ``grade`` does); ``wait`` for them."""
        with self._lock:
            self._check_owner()
            if self._closed:
                raise RuntimeError("MathGrader is closed")
            while len(self._workers) < self.num_workers:
                self._spawn()
            if wait:
                deadline = time.monotonic() + self.startup_timeout
                while any(not w.ready for w in self._workers) and time.monotonic() < deadline:
                    if self._startup_failures >= 3:
                        logger.error("grader workers fail to start (see their stderr above)")
                        break
                    pending = [w for w in self._workers if not w.ready]
                    for c in _mp_wait([w.conn for w in pending], timeout=0.5):
                        w = next(x for x in pending if x.conn is c)
                        self._read(w, None)
        return self

    def close(self) -> None:
        with self._lock:
            if os.getpid() != self._owner_pid:
                self._workers = []
                return
            self._closed = True
            workers, self._workers = self._workers, []
            for w in workers:
                try:
                    w.conn.close()  # idle workers see EOF and exit
                except Exception:
                    pass
            deadline = time.monotonic() + 1.0
            for w in workers:
                try:
                    w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:
                    pass
                if w.proc.poll() is None:
                    try:
                        w.proc.kill()
                        w.proc.wait(timeout=5)
                    except Exception:
                        pass
            _LIVE_GRADERS.discard(self)

    # -- grading -----------------------------------------------------------------------

    def grade(
        self, completions: Sequence[Any], ground_truths: Sequence[Any], *, timeout: float | None = None
    ) -> list[GradeResult]:
        """One :class:`GradeResult` per (completion, ground truth), in order. ``timeout``
        overrides the grader's per-item timeout for this call."""
        if len(completions) != len(ground_truths):
            raise ValueError(f"{len(completions)} completions but {len(ground_truths)} ground truths")
        n = len(completions)
        if n == 0:
            return []
        items = []
        for i, (c, g) in enumerate(zip(completions, ground_truths)):
            if not isinstance(c, str):
                c = completion_text(c)
            items.append((i, c, None if g is None else str(g)))
        with self._lock:
            self._check_owner()
            if self._closed:
                raise RuntimeError("MathGrader is closed")
            return self._grade_items(items, self.timeout if timeout is None else float(timeout))

    def _read(self, w: _Worker, batch: "_Batch | None") -> None:
        """Drains ``w``'s pipe; on EOF the worker is dead and handled as such."""
        try:
            while w.conn.poll(0):
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready = True
                    self._startup_failures = 0
                    continue
                idx, score, extracted, status, secs = msg
                if w.inflight and w.inflight[0][0] == idx:
                    w.inflight.popleft()
                w.item_started = time.monotonic()
                if batch is not None:
                    batch.set(idx, GradeResult(score, extracted, status, secs))
                if secs > self.stats["max_item_seconds"]:
                    self.stats["max_item_seconds"] = secs
        except (EOFError, OSError):
            if not w.ready:
                self._startup_failures += 1
            self.stats["died"] += 1
            self._fail_head(w, batch, "error")

    def _fail_head(self, w: _Worker, batch: "_Batch | None", status: str) -> None:
        """Current item of ``w`` gets ``status``, the rest of its chunk is requeued, ``w`` is
        replaced."""
        if w.inflight:
            idx = w.inflight.popleft()[0]
            held = time.monotonic() - w.item_started
            if batch is not None:
                batch.set(idx, GradeResult(0.0, None, status, held))
            self.stats["max_item_seconds"] = max(self.stats["max_item_seconds"], held)
        if w.inflight:
            if batch is not None:
                batch.pending.appendleft(list(w.inflight))
            w.inflight.clear()
        self._discard(w)
        if not self._closed and len(self._workers) < self.num_workers:
            self._spawn()

    def _grade_items(self, items: list[tuple[int, str, str | None]], timeout: float) -> list[GradeResult]:
        n = len(items)
        size = self.chunk_size or max(1, min(64, -(-n // (self.num_workers * 4))))
        batch = _Batch(n, [items[i : i + size] for i in range(0, n, size)])
        for w in list(self._workers):  # workers that died while idle (killed from outside)
            if w.proc.poll() is not None:
                self.stats["died"] += 1
                self._discard(w, kill=False)
        while len(self._workers) < self.num_workers:
            self._spawn()
        hard = timeout + self.kill_grace
        soft = timeout if self.soft_timeout else 0.0
        while batch.remaining > 0:
            if self._startup_failures >= 3:
                logger.error("grader workers fail to start; %d items marked as errors", batch.remaining)
                for w in list(self._workers):
                    self._discard(w)
                self._startup_failures = 0
                break
            # dispatch to idle ready workers (never to a busy one: a big message could block
            # us on a worker that is stuck and about to be killed)
            for w in list(self._workers):
                if w.ready and not w.inflight and batch.pending:
                    if w.proc.poll() is not None:  # died while idle: nothing of ours was lost
                        self.stats["died"] += 1
                        self._fail_head(w, batch, "error")
                        continue
                    chunk = batch.pending.popleft()
                    w.inflight.extend(chunk)
                    w.item_started = time.monotonic()
                    try:
                        w.conn.send((self.mode, soft, chunk))
                    except (OSError, EOFError, ValueError):
                        w.inflight.clear()
                        batch.pending.appendleft(chunk)
                        self.stats["died"] += 1
                        self._fail_head(w, batch, "error")
            # sleep until a message, the next item deadline or a start-up deadline
            now = time.monotonic()
            wake = now + 1.0
            for w in self._workers:
                if w.inflight:
                    wake = min(wake, w.item_started + hard)
                elif not w.ready:
                    wake = min(wake, w.spawned_at + self.startup_timeout)
            conns = [w.conn for w in self._workers]
            if not conns:
                break
            for c in _mp_wait(conns, timeout=max(0.0, wake - now)):
                w = next((x for x in self._workers if x.conn is c), None)
                if w is not None:
                    self._read(w, batch)
            now = time.monotonic()
            for w in list(self._workers):
                if w.inflight and now >= w.item_started + hard:
                    self._read(w, batch)  # it may have answered just now
                    if w in self._workers and w.inflight and time.monotonic() >= w.item_started + hard:
                        self.stats["killed"] += 1
                        self._fail_head(w, batch, "timeout")
                elif not w.ready and now >= w.spawned_at + self.startup_timeout:
                    self._startup_failures += 1
                    self._discard(w)
                    self._spawn()
        return [r if r is not None else GradeResult(0.0, None, "error") for r in batch.results]


class _Batch:
    __slots__ = ("results", "remaining", "pending")

    def __init__(self, n: int, chunks: list):
        self.results: list[GradeResult | None] = [None] * n
        self.remaining = n
        self.pending: collections.deque = collections.deque(chunks)

    def set(self, idx: int, result: GradeResult) -> None:
        if self.results[idx] is None:
            self.results[idx] = result
            self.remaining -= 1


_DEFAULT_GRADERS: dict[str, MathGrader] = {}
_DEFAULT_LOCK = threading.Lock()


def get_default_grader(mode: str = "math") -> MathGrader:
    """The process-wide shared grader for ``mode`` (created on first use). Workers and
    timeout come from ``PARSIMONY_GRADER_WORKERS`` (default 2) and
    ``PARSIMONY_GRADER_TIMEOUT`` (default 1.0 s)."""
    with _DEFAULT_LOCK:
        g = _DEFAULT_GRADERS.get(mode)
        if g is None or g._closed or g._owner_pid != os.getpid():
            g = MathGrader(
                num_workers=int(os.environ.get("PARSIMONY_GRADER_WORKERS", "2")),
                timeout=float(os.environ.get("PARSIMONY_GRADER_TIMEOUT", "1.0")),
                mode=mode,
            )
            _DEFAULT_GRADERS[mode] = g
        return g


# ---------------------------------------------------------------------------------------
# Reward functions (TRL contract)
# ---------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """A completion as text: a string, or chat messages (assistant contents joined; content
    may be a string or a list of ``{"type": "text", "text": ...}`` parts)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    parts: list[str] = []
    for msg in completion:
        if isinstance(msg, str):
            parts.append(msg)
            continue
        if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, (list, tuple)):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("text"))
    return "".join(parts)


def _gt_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v != v:  # NaN from pandas
        return None
    if isinstance(v, (list, tuple)) or type(v).__name__ == "ndarray":
        vals = [x for x in (_gt_value(x) for x in v) if x is not None]
        return ", ".join(vals) if vals else None
    s = str(v)
    return s if s.strip() else None


def ground_truths_from_columns(n: int, columns: dict[str, Any]) -> list[str | None]:
    """Per-row ground truth from the ``reward_model`` column (dicts with ``ground_truth``),
    else ``ground_truth``, else ``answer``; None where a row has none."""
    out: list[str | None] = [None] * n
    for name in ("reward_model", "ground_truth", "answer"):
        col = columns.get(name)
        if col is None:
            continue
        if isinstance(col, (str, bytes)) or not hasattr(col, "__len__"):
            col = [col] * n  # one value for the whole batch
        if len(col) != n:
            raise ValueError(f"column {name!r} has {len(col)} values for {n} completions")
        for i, v in enumerate(col):
            if out[i] is not None:
                continue
            if name == "reward_model":
                v = v.get("ground_truth") if isinstance(v, dict) else None
            out[i] = _gt_value(v)
    return out


class AccuracyReward:
    """1.0 if the completion's final answer matches the ground truth, else 0.0; None for
    rows without a ground truth. Grades through a :class:`MathGrader` (the shared default
    one unless given). ``pop_metrics()`` returns and resets the grader counters."""

    mode = "math"

    def __init__(self, grader: MathGrader | None = None, name: str = "accuracy"):
        self.__name__ = name
        self._grader = grader
        self._mlock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._counts = {s: 0 for s in STATUSES}
        self._skipped = 0
        self._seconds = 0.0

    @property
    def grader(self) -> MathGrader:
        """The grader given at construction, else the shared default one for ``mode``."""
        return self._grader if self._grader is not None else get_default_grader(self.mode)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        gts = ground_truths_from_columns(n, kwargs)
        rows = [i for i in range(n) if gts[i] is not None]
        out: list[float | None] = [None] * n
        t0 = time.perf_counter()
        results = self.grader.grade([completion_text(completions[i]) for i in rows], [gts[i] for i in rows]) if rows else []
        for i, r in zip(rows, results):
            out[i] = float(r.score)
        with self._mlock:
            for r in results:
                self._counts[r.status] = self._counts.get(r.status, 0) + 1
            self._skipped += n - len(rows)
            self._seconds += time.perf_counter() - t0
        return out

    def pop_metrics(self) -> dict[str, float]:
        with self._mlock:
            c = self._counts
            m = {
                "grader/timeouts": float(c["timeout"]),
                "grader/no_answer": float(c["no_answer"]),
                "grader/errors": float(c["error"]),
                "grader/graded": float(sum(c.values())),
                "grader/no_ground_truth": float(self._skipped),
                "grader/seconds": float(self._seconds),
            }
            self._reset()
        return m


class ChoiceAccuracyReward(AccuracyReward):
    """Multiple-choice accuracy (GPQA): the letter from ``ANSWER: X`` etc. against the
    ground truth's letter (``"B"`` or ``"B) text of option B"``)."""

    mode = "choice"

    def __init__(self, grader: MathGrader | None = None, name: str = "choice_accuracy"):
        super().__init__(grader, name)


accuracy_reward = AccuracyReward()
choice_accuracy_reward = ChoiceAccuracyReward()
