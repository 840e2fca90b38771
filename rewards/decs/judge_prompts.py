"""What the DECS endpoint judge says and how it reads the answer: the two prompts
(``decs_judge_prompt``), their decoding and verdict rules.

* ``paper`` (the default): the prompt that the released NRP detector (``pixas/DECS_NRP_DETECTOR``,
  arXiv 2509.25827) was fine-tuned on, word for word (its typo "segement" included), sent as the one
  user message of a chat request with ``max_tokens=5``; the chunk presents the answer when the reply
  contains the substring ``yes`` (case-sensitive, anywhere: ``\\boxed{yes}``, ``The answer is yes``).
  A prompt longer than 17,990 judge tokens is not sent and counts as "no". These are the rules of the
  paper's released code (``ChunkAwareGRPO`` in ``src_valid/reward_manager.py``).
* ``parsimony``: our rewritten prompt (stricter wording about intermediate results and guesses), up to
  128 new tokens, the verdict read from the reply's last ``\\boxed{yes}`` / ``\\boxed{no}``; segments
  over 20,000 characters are not sent. Meant for a general instruction model as the judge.

:class:`JudgePrompt` holds one profile; :data:`JUDGE_PROMPTS` maps the names to them;
:func:`render_template` fills a template; :data:`VERDICTS` maps a verdict rule to its parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_JUDGE_TEMPLATE",
    "JUDGE_PROMPTS",
    "PAPER_JUDGE_TEMPLATE",
    "PARSIMONY_JUDGE_TEMPLATE",
    "VERDICTS",
    "JudgePrompt",
    "parse_verdict",
    "render_template",
    "verdict_contains_yes",
]

# Placeholders: {problem}, {segment}, {ground_truth} (alias {answer}, the paper's name); every other
# brace is literal (render_template), so the LaTeX needs no escaping: the rendered text has \boxed{yes}.
PAPER_JUDGE_TEMPLATE = (
    "Given a math problem and a segement of a long reasoning process to solve the problem, your task is to "
    "identify whether this segment has presented a correct final answer. If the segment contains information "
    "that can serve as the final answer to the problem and the answer is semantically correct when referring "
    "to the ground truth, simply explain the reason and output \\boxed{yes}. Otherwise, directly output "
    "\\boxed{no}.\n**Problem**:\n{problem}\n**Reasoning segment**:\n{segment}\n**Ground Truth**: {ground_truth}"
)

PARSIMONY_JUDGE_TEMPLATE = (
    "You are given a math problem, its ground-truth answer, and one segment of a model's "
    "step-by-step reasoning about the problem.\n"
    "Decide whether this reasoning segment arrives at and explicitly states a final answer to "
    "the problem that is equivalent to the ground-truth answer. An intermediate result that only "
    "happens to equal the answer, an answer that is merely guessed, planned or repeated from the "
    "problem statement, or a different final answer does not count.\n\n"
    "Problem:\n{problem}\n\n"
    "Reasoning segment:\n{segment}\n\n"
    "Ground-truth answer:\n{ground_truth}\n\n"
    "Does the reasoning segment present the correct final answer? "
    "Reply with \\boxed{yes} or \\boxed{no} only."
)

DEFAULT_JUDGE_PROMPT = "paper"
DEFAULT_JUDGE_TEMPLATE = PAPER_JUDGE_TEMPLATE  # the template of the default prompt

_PLACEHOLDER = re.compile(r"\{(problem|segment|ground_truth|answer)\}")
_VERDICT = re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?(yes|no)\s*\}", re.I)


def render_template(template: str, problem: str, segment: str, ground_truth: str) -> str:
    """Fills ``{problem}``, ``{segment}`` and ``{ground_truth}`` (or ``{answer}``) in one pass. Unlike
    ``str.format``, any other brace is kept literally (``\\boxed{yes}`` needs no escaping), and
    braces inside the inserted texts are never interpreted."""
    values = {"problem": problem, "segment": segment, "ground_truth": ground_truth, "answer": ground_truth}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_verdict(text: str | None) -> bool | None:
    """The ``boxed`` rule: the last ``\\boxed{yes}`` / ``\\boxed{no}`` (case-insensitive;
    ``\\boxed{\\text{yes}}`` too) -> True / False; None when the reply has neither."""
    if not text:
        return None
    last = None
    for m in _VERDICT.finditer(text):
        last = m
    if last is None:
        return None
    return last.group(1).lower() == "yes"


def verdict_contains_yes(text: str | None) -> bool | None:
    """The ``contains_yes`` rule of the paper's code: True when ``yes`` occurs anywhere in the reply
    (case-sensitive substring), else False; None (counted as unparseable, then "no") when the reply
    has neither ``yes`` nor ``no``, a count the paper's code does not keep."""
    text = text or ""
    if "yes" in text:
        return True
    return False if "no" in text else None


VERDICTS: dict[str, Callable[[str | None], bool | None]] = {"contains_yes": verdict_contains_yes, "boxed": parse_verdict}


@dataclass(frozen=True)
class JudgePrompt:
    """One way of asking the endpoint judge: the template, the decoding and the verdict rule."""

    template: str
    max_tokens: int  # new tokens per reply
    verdict: str  # a key of VERDICTS
    max_prompt_tokens: int  # longer prompts (judge tokens) are not sent and count as "no"; 0: no limit
    max_segment_chars: int  # longer segments are not sent and count as "no"; 0: no limit
    strip_problem: bool  # the problem text is stripped of surrounding whitespace (the paper's code does)


JUDGE_PROMPTS: dict[str, JudgePrompt] = {
    "paper": JudgePrompt(PAPER_JUDGE_TEMPLATE, max_tokens=5, verdict="contains_yes", max_prompt_tokens=17_990,
                         max_segment_chars=0, strip_problem=True),
    "parsimony": JudgePrompt(PARSIMONY_JUDGE_TEMPLATE, max_tokens=128, verdict="boxed", max_prompt_tokens=0,
                             max_segment_chars=20_000, strip_problem=False),
}
