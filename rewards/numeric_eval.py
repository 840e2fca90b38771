"""Safe float evaluation of small LaTeX expressions.

:func:`numeric_value` evaluates numbers, single-letter variables (at fixed points), ``+ - * /
^``, ``\\frac``, ``\\sqrt``, ``\\pi`` and implicit products with a tiny recursive-descent
parser (no sympy, no ``eval``), and returns None for anything it cannot evaluate safely;
:func:`tuple_values`, :func:`matrix_values` and :func:`pm_values` do the same for tuples /
intervals, matrices and ``a \\pm b``. :mod:`rewards.equivalence` uses them to say "different"
quickly: two answers whose values differ are not equivalent.
"""

from __future__ import annotations

import re

__all__ = ["numeric_value", "tuple_values", "matrix_values", "pm_values"]


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


def numeric_value(s: str) -> float | None:
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
    return _INF[part] if part in _INF else numeric_value(part)


def tuple_values(key: str) -> tuple[str, list[float]] | None:
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


def matrix_values(key: str) -> tuple[tuple[int, int], list[float]] | None:
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
            v = numeric_value(cell)
            if v is None:
                return None
            vals.append(v)
    return (len(rows), len(rows[0])), vals


def pm_values(key: str) -> list[float] | None:
    """The two values of ``a \\pm b`` (sorted), for one ``\\pm``."""
    if key.count("\\pm") != 1:
        return None
    plus, minus = numeric_value(key.replace("\\pm", "+")), numeric_value(key.replace("\\pm", "-"))
    if plus is None or minus is None:
        return None
    return sorted([plus, minus])

