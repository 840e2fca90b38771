"""One flag syntax for every ``parsimony`` command (``train`` and ``sft`` through
:mod:`rl.config_loading`, the others through :class:`FlagParser`):

- ``--snake_case`` and ``--kebab-case`` both name a flag (``--top_p`` = ``--top-p``);
- a list flag takes its values separated by spaces or commas (``--benchmarks aime24 math500`` =
  ``--benchmarks aime24,math500``);
- no prefix abbreviations (``--learning_rat`` is an error, not ``--learning_rate``);
- a negative number after a space is a value (``--learning_rate -1e-5``), not a flag;
- a bad command line is one ``error:`` line (with a "did you mean" for a mistyped flag) and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import Iterable, Sequence

# -1, -1.5, -.5, -1e-5, -2.0E+3, -inf: read as a value wherever a value is expected
NEGATIVE_NUMBER = re.compile(r"^-(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)
LIST_NARGS = ("+", "*")

__all__ = ["CommaList", "FlagParser", "NEGATIVE_NUMBER", "did_you_mean", "normalize_argv", "unknown_flags_message"]


def other_spelling(flag: str) -> str:
    """``--a_b`` <-> ``--a-b`` (the part after the leading dashes)."""
    body = flag[2:]
    return "--" + (body.replace("_", "-") if "_" in body else body.replace("-", "_"))


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_flags_message(rest: Sequence[str], known: Iterable[str]) -> str:
    """The message for unrecognised arguments, each flag with its closest known flag."""
    known = sorted(set(known))
    parts = []
    for tok in rest:
        if tok.startswith("--"):
            name = tok.partition("=")[0]
            parts.append(name + (did_you_mean(name, known) or did_you_mean(other_spelling(name), known)))
        else:
            parts.append(repr(tok))
    return f"unrecognized argument(s) {', '.join(parts)}"


def normalize_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` in the parser's own spelling: the other spelling of a known flag renamed to it, and
    comma-separated values of a list flag split into separate values. Tokens after ``--`` are kept."""
    known = parser._option_string_actions  # noqa: SLF001 (argparse keeps no public map)
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            out.extend(args[i:])
            break
        if not tok.startswith("--"):
            out.append(tok)
            i += 1
            continue
        name, eq, value = tok.partition("=")
        if name not in known and other_spelling(name) in known:
            name = other_spelling(name)
        action = known.get(name)
        if action is None or action.nargs not in LIST_NARGS:
            out.append(name + eq + value)
            i += 1
            continue
        out.append(name)
        values = [value] if eq else []
        i += 1
        if not eq:
            while i < len(args) and (not args[i].startswith("-") or NEGATIVE_NUMBER.match(args[i])):
                values.append(args[i])
                i += 1
        out.extend(split_list_values(values))
    return out


def split_list_values(values: Iterable[str]) -> list[str]:
    """Each value split at commas (a value that looks like JSON, ``{...}`` / ``[...]``, is kept whole)."""
    out: list[str] = []
    for v in values:
        if v.strip().startswith(("{", "[")) or "," not in v:
            out.append(v)
        else:
            out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` (and an argparse parser of another library, e.g. ``HfArgumentParser``) read
    negative numbers as values and fail with one ``error:`` line and exit code 2."""
    parser._negative_number_matcher = NEGATIVE_NUMBER  # noqa: SLF001 (argparse's own hook for this)

    def error(message: str):
        parser.exit(2, f"error: {parser.prog}: {message} (see --help)\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


class CommaList(argparse.Action):
    """A list flag kept as one comma-separated string (as the command reads it), its values given with
    spaces, commas or both: ``--report-to console wandb`` = ``--report-to console,wandb``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("nargs", "+")
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, ",".join(split_list_values(values)))


class FlagParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the one flag syntax of this module (``allow_abbrev=False``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        argv = sys.argv[1:] if args is None else args
        return super().parse_known_args(normalize_argv(self, argv), namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, rest = self.parse_known_args(args, namespace)
        if rest:
            self.error(unknown_flags_message(rest, self._option_string_actions))
        return ns

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
