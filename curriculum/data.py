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
    """A dataset file, id or row cannot be used; the message names the file and line, the id, or the
    row index and field."""


MAX_NAMED_ROWS = 10  # validation names up to this many bad rows
HUB_PROBE_TIMEOUT_S = 3.0  # how long a hub id waits to learn that there is no network


def load_dataset_spec(
    spec: str,
    split: str = "train",
    num_examples: int = 4096,
    seed: int = 0,
    task_kwargs: dict[str, Any] | None = None,
):
    """``task:<name>`` | a .parquet/.jsonl/.json file | a ``datasets.save_to_disk`` folder (a
    ``DatasetDict``'s ``split``) | a hub dataset id -> ``datasets.Dataset``.

    ``task_kwargs`` are the task generator's keyword arguments; for the other sources they may name
    the columns (``prompt_column``, ``answer_column``, see :func:`map_columns`), which are otherwise
    found as GSM8K (``question``, ``answer`` ending ``#### N``) and MATH (``problem``, ``solution``
    with a boxed answer) store them."""
    if spec.startswith("task:"):
        from curriculum.tasks import get_task_dataset

        return get_task_dataset(spec[5:], num_examples, seed=seed, split=split, **(task_kwargs or {}))
    mapping = dict(task_kwargs or {})
    unknown = sorted(set(mapping) - {"prompt_column", "answer_column"})
    if unknown:
        raise DatasetError(f"dataset {spec!r}: dataset_kwargs {unknown} are a task's; a file, folder or hub dataset "
                           "takes prompt_column and answer_column")
    with _quiet_datasets():  # no progress bars around what may end in one error line
        return map_columns(_load_table(spec, split), name=spec, **mapping)


class _quiet_datasets:
    """``datasets``' progress bars off inside the block (restored after)."""

    def __enter__(self) -> None:
        from datasets.utils import logging as dlog

        self.was_on = dlog.is_progress_bar_enabled()
        dlog.disable_progress_bar()

    def __exit__(self, *exc: Any) -> None:
        from datasets.utils import logging as dlog

        if self.was_on:
            dlog.enable_progress_bar()


def _load_table(spec: str, split: str):
    import datasets

    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".jsonl", ".json", ".csv"):
        if not path.is_file():
            raise DatasetError(f"dataset file {spec!r} does not exist")
        if suffix == ".jsonl":
            check_json_lines(path)
        kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}[suffix]
        try:
            return datasets.load_dataset(kind, data_files=str(path), split="train")
        except Exception as e:  # pyarrow / datasets raise many types for an unreadable file
            raise DatasetError(f"{path}: cannot be read as {kind} ({type(e).__name__}: {_first_line(e)})") from None
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # not a save_to_disk folder
            raise DatasetError(f"{path}: not a datasets.save_to_disk folder ({type(e).__name__}: {_first_line(e)})") from None
        if isinstance(ds, datasets.DatasetDict):  # a save_to_disk of several splits: take dataset_split
            if split not in ds:
                raise DatasetError(f"{path}: a DatasetDict without split {split!r}; its splits: {sorted(ds)} "
                                   "(set dataset_split)")
            return ds[split]
        return ds
    return load_hub_dataset(spec, split)


PROMPT_COLUMNS = ("prompt", "question", "problem")  # where a prompt is found, in order (ours, GSM8K, MATH)


def map_columns(dataset, *, prompt_column: str | None = None, answer_column: str | None = None, name: str = "dataset"):
    """A table's columns mapped to ours: ``prompt`` from ``prompt_column`` (default: the first of
    :data:`PROMPT_COLUMNS`), and, when the row has no ground truth of ours, ``ground_truth`` from
    ``answer_column`` or as GSM8K and MATH store it: the ``N`` of an ``answer`` that ends ``#### N``,
    the boxed answer of a ``solution``. A table that already has ours is returned unchanged."""
    columns = list(getattr(dataset, "column_names", None) or [])
    source = prompt_column or next((c for c in PROMPT_COLUMNS if c in columns), None)
    if prompt_column and prompt_column not in columns:
        raise DatasetError(f"{name}: prompt_column {prompt_column!r} is not a column (columns: {sorted(columns)})")
    if answer_column and answer_column.split(".")[0] not in columns:
        raise DatasetError(f"{name}: answer_column {answer_column!r} is not a column (columns: {sorted(columns)})")
    if source is None or not len(dataset):
        return dataset  # validation names what is missing
    answer = answer_column or _derived_answer_column(dataset[0], columns)
    if source == "prompt" and answer is None:
        return dataset

    def row_map(row: Any) -> dict[str, Any]:
        row = dict(row)  # datasets passes a lazy mapping, not a dict
        out: dict[str, Any] = {"prompt": row[source]}
        if answer is not None:
            out["ground_truth"] = _answer_of(get_field(row, answer), answer if answer_column else None)
        return out

    return dataset.map(row_map, desc=None, load_from_cache_file=False)


def _derived_answer_column(row: dict[str, Any], columns: list[str]) -> str | None:
    """The column a GSM8K / MATH row keeps its answer in, when it has no ground truth of ours."""
    if "ground_truth" in columns or ("reward_model" in columns and get_field(row, "reward_model.ground_truth") is not None):
        return None
    if isinstance(row.get("answer"), str) and "####" in row["answer"]:
        return "answer"
    if "answer" not in columns and isinstance(row.get("solution"), str):
        return "solution"
    return None


def _answer_of(value: Any, given: str | None) -> Any:
    """A ground truth from an answer column: after GSM8K's ``####``, the last ``\\boxed{}`` of a
    MATH solution, else the value itself (a column named by ``answer_column`` is read as it is)."""
    if not isinstance(value, str):
        return value
    if "####" in value:
        return value.rsplit("####", 1)[1].strip().replace(",", "")
    if given is None or "\\boxed" in value:
        from rewards.answers import extract_boxed

        boxed = extract_boxed(value)
        if boxed is not None:
            return boxed
    return value


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def check_json_lines(path: Path) -> None:
    """Every non-blank line of a JSONL file is a JSON object; the first one that is not is a
    :class:`DatasetError` naming the file and line."""
    import json

    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise DatasetError(f"{path}: line {n}: a JSON {type(obj).__name__}, expected an object (one row)")
        except UnicodeDecodeError as e:
            raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` (no network: False, fast)."""
    import os

    import httpx

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", ""):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        httpx.head(endpoint, timeout=timeout)
        return True
    except httpx.HTTPError:
        return False


def load_hub_dataset(spec: str, split: str):
    """A hub dataset id: from the hub, or from the local cache when the hub cannot be reached (found in
    ``HUB_PROBE_TIMEOUT_S``, not after datasets' retries); neither is a :class:`DatasetError`."""
    import datasets
    import datasets.config
    import huggingface_hub.constants

    online = hub_reachable()
    # no network: the cache only (datasets and huggingface_hub read their offline flags at import time,
    # so the flags are set on the modules for this call), instead of retries against a network that is not there
    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    if not online:
        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
        huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        return datasets.load_dataset(spec, split=split)
    except Exception as e:
        where = "the hub" if online else "the local cache (no network: the hub cannot be reached)"
        raise DatasetError(f"dataset {spec!r}: not a local file or folder, and not found in {where} "
                           f"({type(e).__name__}: {_first_line(e)})") from None
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved[0], saved[1]
        huggingface_hub.constants.HF_HUB_OFFLINE = saved[2]


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


def answer_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a row's answer (None: it has a usable one). The answer is the first of
    :data:`ANSWER_FIELDS` present: a string, a number, or a list of accepted answers."""
    for f in ANSWER_FIELDS:
        raw = get_field(row, f)
        if raw is None:
            continue
        if isinstance(raw, dict):
            return f"field '{f}' is a dict ({str(raw)[:60]}); expected a string, a number or a list of accepted answers"
        if isinstance(raw, (list, tuple)) and any(isinstance(x, dict) for x in raw):
            return f"field '{f}' is a list holding a dict; expected strings or numbers"
        break
    if get_ground_truth(row) is None:
        return f"has no answer field (looked for {', '.join(ANSWER_FIELDS)})"
    return None


def validate_dataset(dataset, require_answer: bool = True, name: str = "train_dataset") -> None:
    """Raise one DatasetError naming the bad rows and fields (the first :data:`MAX_NAMED_ROWS`, and how
    many more there are)."""
    if len(dataset) == 0:
        raise DatasetError(f"{name} is empty")
    columns = set(dataset.column_names)
    if "prompt" not in columns:
        raise DatasetError(f"{name}: row 0 has no field 'prompt' (columns: {sorted(columns)})")
    bad: list[str] = []
    count = 0
    for i, row in enumerate(dataset):
        problem = validate_prompt(row.get("prompt"))
        msg = f"row {i} field 'prompt' {problem}" if problem else None
        if msg is None and require_answer:
            problem = answer_problem(row)
            msg = f"row {i} {problem}" if problem else None
        if msg is not None:
            count += 1
            if len(bad) < MAX_NAMED_ROWS:
                bad.append(msg)
    if bad:
        more = f" (and {count - len(bad)} more bad rows)" if count > len(bad) else ""
        raise DatasetError(f"{name}: " + "; ".join(bad) + more)


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
