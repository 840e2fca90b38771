"""Answer extraction: from a completion to its final-answer string.

Pure, cheap functions that never raise on any input: :func:`completion_text` (a completion
given as a string or chat messages -> text), :func:`extract_boxed` (the last ``\\boxed{}``),
:func:`extract_answer` (boxed, else an explicit final-answer statement that ends the
completion; never a number from the body), :func:`extract_choice_letter` and
:func:`gold_choice_letter` (multiple choice).
Deciding whether an extracted answer is right is :mod:`rewards.equivalence`'s job.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "GROUND_TRUTH_FIELDS",
    "accepted_answers",
    "completion_text",
    "format_ground_truth",
    "ground_truth_of",
    "normalize_ground_truth",
    "extract_boxed",
    "extract_answer",
    "extract_choice_letter",
    "gold_choice_letter",
]

# Fallback extraction only looks at the end of a completion (the answer is at the end; this
# bounds the cost on megabyte-long outputs). Boxes are searched in the whole text.
_FALLBACK_WINDOW = 10_000


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


# ---------------------------------------------------------------------------------------
# Ground truths: the one reader, used by the rewards (training) and by evaluation
# ---------------------------------------------------------------------------------------

# where a row keeps its ground truth, in order of preference (dotted = nested field)
GROUND_TRUTH_FIELDS = ("reward_model.ground_truth", "ground_truth", "answer")


def normalize_ground_truth(value: Any) -> str | list[str] | None:
    """A dataset's ground-truth value -> what the grader takes.

    None, NaN and blank strings -> None; a number -> its string (``2.0`` -> ``"2"``); a string
    -> itself, stripped. A list (tuple, numpy array) is the list of the problem's **accepted
    answers**: a completion is correct when its final answer matches *any* of them (as the
    OlympiadBench and Qwen-Math graders read ``final_answer`` lists). Its elements are
    normalised the same way (nested lists are flattened, blanks dropped); a list with one
    answer becomes that string, an empty one None. All of a list's answers together
    (``"2, 3"``) are accepted as well (:func:`accepted_answers`), but an answer made of parts
    that must *all* be given is best stored as one string, ``"2, 3"``: as a list, one part
    alone is accepted too.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN from pandas
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        out: list[str] = []
        for item in value:
            v = normalize_ground_truth(item)
            for x in v if isinstance(v, list) else [v]:
                if x is not None and x not in out:
                    out.append(x)
        if not out:
            return None
        return out[0] if len(out) == 1 else out
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    s = str(value).strip()
    return s or None


def _field(row: Any, dotted: str) -> Any:
    cur = row
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def ground_truth_of(row: Any) -> str | list[str] | None:
    """The ground truth of a dataset row: the first of :data:`GROUND_TRUTH_FIELDS` that holds
    one, through :func:`normalize_ground_truth`; None when none does. Training (the reward
    functions, via :func:`rewards.math.ground_truths_from_columns`) and evaluation
    (:func:`curriculum.data.get_ground_truth`) both read it here."""
    for name in GROUND_TRUTH_FIELDS:
        value = normalize_ground_truth(_field(row, name))
        if value is not None:
            return value
    return None


def accepted_answers(gt: Any) -> list[str]:
    """The answers a completion may give for ground truth ``gt``: its one answer, or for a
    list each accepted answer and, last, all of them together (``"1, 2"`` for ``["1", "2"]``,
    so a list that holds the parts of one answer still accepts the complete answer)."""
    v = normalize_ground_truth(gt)
    if v is None:
        return []
    if not isinstance(v, list):
        return [v]
    return v + [", ".join(v)]


def format_ground_truth(gt: Any) -> str:
    """A ground truth as one line of text (logs, judge prompts): accepted answers joined
    with ``" or "``."""
    v = normalize_ground_truth(gt)
    if v is None:
        return ""
    return " or ".join(v) if isinstance(v, list) else v


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
# any explicit final-answer statement: "Final answer: X", "the final answer is X", "the answer is X",
# "Answer: X", "ANSWER: X"
_ANSWER_STATEMENT = re.compile(r"final\s+answer\s*(?:is|:)\s*:?|the\s+answer\s+is\s*:?|\banswer\s*:", re.I)
# what may follow a stated final answer for it to count (grading): at most this many characters of
# closing words ("I hope it is correct."), none of them a digit; closing tags and markup do not count
_STATEMENT_TAIL_CHARS = 80
_CLOSING_MARKUP = re.compile(r"</?[A-Za-z_]+>|<\|[^|<>]{1,40}\|>|[\s*_$.,;:!`~\\]+")
# bounded lengths keep the scan linear on adversarial input ("\\(" repeated 10^4 times)
_MATH_SEGMENT = re.compile(
    r"\$\$(.{1,1000}?)\$\$|\$([^$]{1,1000}?)\$|\\\((.{1,1000}?)\\\)|\\\[(.{1,1000}?)\\\]", re.S
)
_LAST_NUMBER = re.compile(r"-?\d+(?:,\d{3})+(?:\.\d+)?(?![\d,])|-?\d+(?:\.\d+)?(?:/\d+)?")

FALLBACKS = ("statement", "any")


def _phrase_answer(rest: str) -> tuple[str | None, int]:
    """What follows "the answer is" up to the end of its line, trimmed to the answer, and how
    many characters of ``rest`` the answer sentence takes."""
    nl = rest.find("\n")
    raw = rest if nl < 0 else rest[:nl]
    lead = len(raw) - len(raw.lstrip())
    line = raw.strip()
    if not line:
        return None, len(raw)
    core = line.strip("*_ ")  # markdown bold/italic around the answer
    offset = lead + line.find(core) if core else lead
    m = _MATH_SEGMENT.match(core)
    if m:  # "The answer is $x$." -> x
        ans = next(g for g in m.groups() if g is not None)
        return ans.strip() or None, offset + m.end()
    # plain text: stop at the end of the first sentence
    m = re.search(r"\.(?:\s|$)", core)
    end = m.start() if m else len(core)
    ans = core[:end].strip().strip("*_").strip().rstrip(".,;:")
    return ans[:300] or None, offset + end


def _clean_phrase_answer(rest: str) -> str | None:
    """What follows "the answer is" up to the end of its line, trimmed to the answer."""
    return _phrase_answer(rest)[0]


def _closing_only(tail: str) -> bool:
    """True when ``tail`` (what follows a stated answer) is only closing markup and a few
    closing words without a digit: the statement ends the completion."""
    words = _CLOSING_MARKUP.sub("", tail)
    return len(words) <= _STATEMENT_TAIL_CHARS and not any(ch.isdigit() for ch in words)


def _final_statement(text: str) -> str | None:
    """The answer of the last explicit final-answer statement, when it ends the completion."""
    window = text[-_FALLBACK_WINDOW:]
    for m in reversed(list(_ANSWER_STATEMENT.finditer(window))):
        ans, used = _phrase_answer(window[m.end() :])
        if ans is None:
            continue  # "The answer is:" with nothing after it on the line: an earlier statement may hold
        return ans if _closing_only(window[m.end() + used :]) else None
    return None


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


def extract_answer(text: str | None, fallback: str = "statement") -> str | None:
    """The final answer of a completion, as a string (None when it states none).

    Order:

    0. If ``</think>`` occurs and a box follows the last one, only that tail is used;
       otherwise the whole text.
    1. The last ``\\boxed{}`` / ``\\fbox{}``. When a box is present it decides alone: an
       unbalanced last box gives None, an empty one ``""`` (graded wrong).
    2. Without a box, ``fallback`` decides:

       * ``"statement"`` (grading, the default): only an explicit final-answer statement
         that ends the completion: the last of ``Final answer: X``, ``the final answer is X``,
         ``the answer is X``, ``Answer: X`` / ``ANSWER: X`` (X = a leading ``$..$`` or the rest
         of the sentence), followed by nothing but closing markup (``</think>``, ``**``) and
         at most 80 characters of words without a digit ("I hope it is correct."). A number
         or a formula somewhere in the body is never an answer: a truncated completion
         states none, and crediting one would reward the model for being cut off.
       * ``"any"`` (reading an answer out of a reasoning segment, e.g. the DECS rule judge):
         ``final answer is X`` / ``Final answer: X``, then ``the answer is X``, then
         ``Answer: X`` anywhere (last occurrence of each), then the last math segment
         (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) if nothing but a few characters
         follow it, then the last number.

    Step 2 only looks at the last 10,000 characters.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if not text:
        return None
    idx = text.rfind("</think>")
    if idx >= 0:
        tail = text[idx + len("</think>") :]
        if _find_last_box_cmd(tail) is not None:
            return extract_boxed(tail)
    if _find_last_box_cmd(text) is not None:
        return extract_boxed(text)
    return _final_statement(text) if fallback == "statement" else _extract_unboxed(text)


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
