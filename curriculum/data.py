"""Loading and validating prompt datasets.

Rows follow the shared-benchmark layout: ``prompt`` (chat messages or a string),
``reward_model.ground_truth`` (or ``ground_truth`` / ``answer``), ``data_source``,
``extra_info``. Malformed rows fail *before* training starts with the row index and
field named, so no compute is wasted on a run that would crash at step 900.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ANSWER_FIELDS = ("reward_model.ground_truth", "ground_truth", "answer")  # = rewards.answers.GROUND_TRUTH_FIELDS


class DatasetError(ValueError):
    """A dataset row is malformed; the message names the row index and field."""


def load_dataset_spec(
    spec: str,
    split: str = "train",
    num_examples: int = 4096,
    seed: int = 0,
    task_kwargs: dict[str, Any] | None = None,
):
    """``task:<name>`` | a .parquet/.jsonl/.json file | a hub dataset id -> ``datasets.Dataset``."""
    import datasets

    if spec.startswith("task:"):
        from curriculum.tasks import get_task_dataset

        return get_task_dataset(spec[5:], num_examples, seed=seed, split=split, **(task_kwargs or {}))
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".jsonl", ".json", ".csv"):
        if not path.is_file():
            raise DatasetError(f"dataset file {spec!r} does not exist")
        kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}[suffix]
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    if path.is_dir():
        return datasets.load_from_disk(str(path))
    return datasets.load_dataset(spec, split=split)


def get_field(row: dict[str, Any], dotted: str) -> Any:
    cur: Any = row
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def get_ground_truth(row: dict[str, Any]) -> str | list[str] | None:
    """The row's ground truth (the first of :data:`ANSWER_FIELDS` that holds one), read by
    :func:`rewards.answers.ground_truth_of`, the same reader the reward functions use: a
    string, a list of accepted answers (a completion matching any of them is correct), or
    None."""
    from rewards.answers import ground_truth_of

    return ground_truth_of(row)


def validate_prompt(prompt: Any) -> str | None:
    """None when ``prompt`` is usable, else what is wrong with it."""
    if prompt is None:
        return "is missing"
    if isinstance(prompt, str):
        return None if prompt.strip() else "is an empty string"
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            return "is an empty message list"
        for j, m in enumerate(prompt):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                return f"message {j} is not a {{'role', 'content'}} dict"
        return None
    return f"has type {type(prompt).__name__}; expected chat messages or a string"


def validate_dataset(dataset, require_answer: bool = True, name: str = "train_dataset") -> None:
    """Raise DatasetError naming the first bad row and field."""
    if len(dataset) == 0:
        raise DatasetError(f"{name} is empty")
    columns = set(dataset.column_names)
    if "prompt" not in columns:
        raise DatasetError(f"{name}: row 0 has no field 'prompt' (columns: {sorted(columns)})")
    for i, row in enumerate(dataset):
        problem = validate_prompt(row.get("prompt"))
        if problem:
            raise DatasetError(f"{name}: row {i} field 'prompt' {problem}")
        if require_answer and get_ground_truth(row) is None:
            raise DatasetError(
                f"{name}: row {i} has no answer field (looked for {', '.join(ANSWER_FIELDS)})"
            )


def _raw_prompt_text(prompt: Any, system_prompt: str | None) -> str:
    if isinstance(prompt, str):
        parts = [prompt]
    else:
        parts = [str(m.get("content", "")) for m in prompt]
    if system_prompt and (isinstance(prompt, str) or not prompt or prompt[0].get("role") != "system"):
        parts = [system_prompt] + parts
    return "\n\n".join(parts)


def render_prompt(tokenizer: Any, prompt: Any, system_prompt: str | None = None, chat_template: bool = True) -> str:
    """Chat messages or a string -> the text the model continues: the one prompt renderer of
    training (GRPO rollouts, SFT) and evaluation (:mod:`rl.eval`).

    With ``chat_template`` and a tokenizer that has one, the messages (a string is wrapped as
    one user message) go through the template with the generation prompt, the optional
    system prompt first as a system message. Otherwise the message contents (system prompt
    first) are joined with blank lines; a plain string with no system prompt is used as is.
    """
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if system_prompt and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return _raw_prompt_text(prompt, system_prompt)


def completion_text(completion: Any) -> str:
    """A completion given as text or as assistant chat messages -> text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    raise DatasetError(f"completion has type {type(completion).__name__}; expected text or messages")
