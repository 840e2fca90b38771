"""Answer equivalence: is an extracted answer the same as the ground truth?

:func:`verify_answer` = quick string / numeric normalisation first (units, degrees, percent,
``x =``, thousands separators; numeric evaluation through :mod:`rewards.numeric_eval` to say
"different" cheaply), then ``math_verify`` (imported lazily: importing this module never
imports sympy). :func:`verify_choice` compares multiple-choice letters, and
:func:`grade_one` grades one completion in-process (extraction from :mod:`rewards.answers`
+ equivalence, no timeout; :mod:`rewards.grader_pool` runs it in worker processes).
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache
from math import log10 as _log10
from typing import Any

from rewards.answers import (
    accepted_answers,
    completion_text,
    extract_answer,
    extract_choice_letter,
    gold_choice_letter,
    normalize_ground_truth,
)
from rewards.numeric_eval import matrix_values, numeric_value, pm_values, tuple_values

logger = logging.getLogger(__name__)

__all__ = ["verify_answer", "verify_choice", "matches_ground_truth", "grade_one"]

# Longest extracted answer handed to sympy (longer ones are compared as strings only).
_MAX_SYMPY_ANSWER = 1_000


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


def load_math_verify():
    """math_verify's ``(parse, verify, extraction config)``, imported on first use (keeps
    ``import rewards`` cheap; a grader worker calls it once at start-up to warm up)."""
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
    parse, _, config = load_math_verify()
    # timeouts are enforced by the grader (signals / killing the worker), not math_verify
    return parse("\\boxed{" + s + "}", extraction_config=config, parsing_timeout=None)


@lru_cache(maxsize=16384)
def _mv_equal(gold: str, pred: str) -> bool:
    _, verify, _ = load_math_verify()
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
    pv = numeric_value(p_key)
    gv = numeric_value(g_key) if pv is not None else None
    if pv is not None and gv is not None:
        return False if _far(pv, gv) else None
    pt = tuple_values(p_key)
    gt = tuple_values(g_key) if pt is not None else None
    if pt is not None and gt is not None and pt[0] == gt[0] and len(pt[1]) == len(gt[1]):
        return False if any(_far(a, b) for a, b in zip(pt[1], gt[1])) else None
    pm = matrix_values(p_key)
    gm = matrix_values(g_key) if pm is not None else None
    if pm is not None and gm is not None:
        if pm[0] != gm[0]:
            return False
        return False if any(_far(a, b) for a, b in zip(pm[1], gm[1])) else None
    ppm = pm_values(p_key)
    gpm = pm_values(g_key) if ppm is not None else None
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
    """True when the letter ``pred`` is the ground truth's letter (or, for a list of accepted
    answers, one of theirs)."""
    golds = normalize_ground_truth(gold)
    golds = golds if isinstance(golds, list) else [golds]
    letters = {gold_choice_letter(g) for g in golds} - {None}
    return bool(pred) and pred.strip().upper() in letters


def matches_ground_truth(pred: str | None, ground_truth: Any) -> bool:
    """:func:`verify_answer` against a ground truth that may be a list of accepted answers
    (:func:`rewards.answers.accepted_answers`): True when ``pred`` matches any of them."""
    return any(verify_answer(pred, g) for g in accepted_answers(ground_truth))


def grade_one(completion: Any, ground_truth: Any, mode: str = "math") -> tuple[float, str | None, str]:
    """Grades one completion in this process (no timeout): (score, extracted, status).

    ``ground_truth`` is a string or a list of accepted answers (any match is correct, and so
    is all of them together; see :func:`rewards.answers.accepted_answers`)."""
    text = completion if isinstance(completion, str) else completion_text(completion)
    golds = normalize_ground_truth(ground_truth)
    golds = [] if golds is None else golds if isinstance(golds, list) else [golds]
    if mode == "choice":
        letters = [x for x in (gold_choice_letter(g) for g in golds) if x is not None]
        if not letters:
            return 0.0, None, "error"
        letter = extract_choice_letter(text)
        if letter is None:
            return 0.0, None, "no_answer"
        return (1.0, letter, "correct") if letter in letters else (0.0, letter, "wrong")
    if mode != "math":
        raise ValueError(f"unknown grading mode {mode!r} (expected 'math' or 'choice')")
    if not golds:
        return 0.0, None, "error"
    extracted = extract_answer(text)
    if extracted is None:
        return 0.0, None, "no_answer"
    if any(verify_answer(extracted, g) for g in accepted_answers(golds)):
        return 1.0, extracted, "correct"
    return 0.0, extracted, "wrong"
