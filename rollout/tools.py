"""Tools for multi-turn episodes, and the tool environment (``environment: tools``).

A tool is a plain Python function with type hints and a Google-style docstring (``Args:``); its
JSON schema comes from ``transformers.utils.get_json_schema`` and is rendered by the chat
template's ``tools=`` argument, as TRL's ``tools=`` does. The model calls a tool by writing

    <tool_call>{"name": "calculator", "arguments": {"expression": "12*7"}}</tool_call>

Generation stops at ``</tool_call>``; the result comes back as the template's ``tool`` turn.

Counting (``meta`` of the trajectory, via ``episode_meta``):

- ``tool_calls``: every round-trip, i.e. every turn with a complete ``<tool_call>...</tool_call>``
  that got an observation, including invalid JSON, unknown tools, bad arguments and tools that
  raised (each becomes an error observation; nothing reaches the trainer as an exception);
- ``tool_calls_by_name``: ``{name: count}`` of the calls that named a known tool;
- ``tool_errors``: calls whose observation is an error; ``invalid_tool_calls``: unparseable ones.

A call in the episode's last allowed turn (``max_turns``) is not executed and not counted: the loop
does not step the environment on that turn. Only the first call of a turn is executed (generation
stops at the first ``</tool_call>``).

Built-in tools: ``calculator`` (exact arithmetic, no ``eval``) and ``python`` (model-written code,
run only in :mod:`rollout.sandbox`). Tools are given by name or as ``module:function``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import math
import operator
import re
from typing import Any, Callable, Mapping, Sequence

from rollout.episodes import Messages, StepResult, Turn, register_environment, row_messages
from rollout.sandbox import SandboxUnavailableError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_CALL_RE = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


# --- built-in tools -----------------------------------------------------------------------------

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNOPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _eval_node(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
        return _UNOPS[type(node.op)](_eval_node(node.operand))
    raise ValueError(f"unsupported expression element: {type(node).__name__}")


def calculator(expression: str) -> str:
    """Exact arithmetic.

    Args:
        expression: e.g. 12*(3+4)
    """
    if len(expression) > 200:
        raise ValueError("expression too long")
    value = _eval_node(ast.parse(expression.strip(), mode="eval"))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("result is not finite")
        if value.is_integer():
            value = int(value)
    return str(value)


def python(code: str) -> str:
    """Run Python code in a sandbox (no network, only /tmp writable, limited time and memory) and return its output.

    Args:
        code: The Python program to run; print what you want to see.
    """
    from rollout.sandbox import run_python

    res = run_python(code, timeout=10.0, memory_mb=512, output_limit=4000)
    if res.ok:
        return res.stdout
    out = res.stdout
    tail = res.stderr.strip().splitlines()[-5:] if res.stderr.strip() else []
    return (out + ("\n" if out and not out.endswith("\n") else "") + f"Error: {res.error}" +
            ("\n" + "\n".join(tail) if tail and not res.timed_out else ""))


TOOLS: dict[str, Callable[..., Any]] = {"calculator": calculator, "python": python}


def register_tool(name: str | None = None):
    """Decorator: make a function available to ``environment_kwargs: {tools: [name]}``."""

    def deco(fn):
        key = name or fn.__name__
        if key in TOOLS:
            raise ValueError(f"tool {key!r} is already registered")
        TOOLS[key] = fn
        return fn

    return deco


def import_function(spec: str, what: str) -> Callable[..., Any]:
    """The callable at ``module:function``; a ValueError naming ``what`` when it cannot be had."""
    mod, sep, attr = str(spec).partition(":")
    if not sep:
        raise ValueError(f"{what} must be 'module:function', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{what} {spec!r}: cannot import it ({e})") from None
    if not callable(fn):
        raise ValueError(f"{what} {spec!r} is not callable")
    return fn


def resolve_tool(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """A callable, a registered tool name, or ``module:function``."""
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"a tool is a function, a registered name or 'module:function', got {spec!r}")
    if spec in TOOLS:
        return TOOLS[spec]
    if ":" in spec:
        return import_function(spec, "tool")
    raise ValueError(f"unknown tool {spec!r}; registered: {sorted(TOOLS)} (or give 'module:function')")


@functools.lru_cache(maxsize=None)
def tool_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    from transformers.utils import get_json_schema

    return get_json_schema(fn)


def parse_tool_call(text: str) -> tuple[str, dict[str, Any]] | None | str:
    """The first complete call in ``text``: ``(name, arguments)``; a string = why it is invalid;
    None = no complete ``<tool_call>...</tool_call>`` (not a round-trip)."""
    m = _CALL_RE.search(text)
    if m is None:
        return None
    body = m.group(1).strip()
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return f"invalid JSON in tool call ({e.msg})"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return 'a tool call must be {"name": <tool name>, "arguments": {...}}'
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return "tool call arguments are not a JSON object"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return "tool call arguments must be a JSON object"
    return obj["name"], args


# --- the environment ----------------------------------------------------------------------------


class ToolEnvironment:
    """One episode with tools: the row's prompt as the first messages; each model turn with a
    complete tool call is executed and answered with a ``tool`` turn; a turn without one ends the
    episode. ``tools``: functions, registered names or ``module:function`` paths."""

    stop = (TOOL_CALL_CLOSE,)

    def __init__(
        self,
        tools: Sequence[str | Callable[..., Any]] = ("calculator",),
        max_observation_chars: int = 2000,
        prompt_key: str = "prompt",
        tool_schemas: bool = True,
    ) -> None:
        fns = [resolve_tool(t) for t in tools]
        if not fns:
            raise ValueError("the tool environment needs at least one tool")
        self.functions: dict[str, Callable[..., Any]] = {}
        for fn in fns:
            self.functions[fn.__name__] = fn
        # tool_schemas=False: the template renders no tools block (the model knows its tools from training:
        # the embedded tiny model's 512 positions, task:planner); the calls still work the same
        self.tools = [tool_schema(fn) for fn in fns] if tool_schemas else []
        self.max_observation_chars = int(max_observation_chars)
        self.prompt_key = prompt_key
        self.tool_calls = 0
        self.tool_errors = 0
        self.invalid_tool_calls = 0
        self.by_name: dict[str, int] = {}

    def reset(self, row: Mapping[str, Any]) -> Messages:
        return row_messages(row, self.prompt_key)

    def step(self, turn: Turn) -> StepResult:
        call = parse_tool_call(turn.text)
        if call is None:
            return StepResult(done=True)
        self.tool_calls += 1  # a round-trip: it gets an observation, whatever happens below
        name = None
        if isinstance(call, str):
            self.invalid_tool_calls += 1
            self.tool_errors += 1
            content = f"Error: {call}"
        else:
            name, args = call
            content = self._execute(name, args)
        msg = {"role": "tool", "content": content}
        if name is not None:
            msg["name"] = name
        return StepResult(observation=[msg])

    def _execute(self, name: str, args: dict[str, Any]) -> str:
        fn = self.functions.get(name)
        if fn is None:
            self.tool_errors += 1
            return f"Error: unknown tool {name!r}; available: {sorted(self.functions)}"
        self.by_name[name] = self.by_name.get(name, 0) + 1
        try:
            result = fn(**args)
        except SandboxUnavailableError:  # no sandbox for model-written code: the run stops, it does not train on errors
            raise
        except Exception as e:  # a crashing tool is an observation, never a crash of the trainer
            self.tool_errors += 1
            return f"Error: {type(e).__name__}: {e}"
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > self.max_observation_chars:
            text = text[: self.max_observation_chars] + "\n[output truncated]"
        return text

    def episode_meta(self) -> dict[str, Any]:
        return {
            "tool_calls": self.tool_calls,
            "tool_calls_by_name": dict(self.by_name),
            "tool_errors": self.tool_errors,
            "invalid_tool_calls": self.invalid_tool_calls,
        }


@register_environment("tools")
def make_tool_environment(**kwargs: Any) -> ToolEnvironment:
    """``environment: tools`` with ``environment_kwargs: {tools: [calculator, ...], max_observation_chars: ...,
    tool_schemas: true}`` (false: no tools block in the prompt)."""
    return ToolEnvironment(**kwargs)


__all__ = [
    "TOOLS",
    "ToolEnvironment",
    "calculator",
    "import_function",
    "parse_tool_call",
    "python",
    "register_tool",
    "resolve_tool",
    "tool_schema",
]
