"""Benchmark registry and loading: every evaluation source becomes a :class:`Benchmark`,
a list of :class:`EvalProblem` (prompt, ground-truth answer) plus its grading mode.

Sources (:func:`load_benchmark`):

* a registered name (``aime24, aime25, amc23, hmmt25, math500, olympiadbench, gpqa``; ``all``
  expands to every one): ``<data_dir>/<directory>/test.parquet`` in the shared layout
  (``data_source, prompt`` as chat messages, ``reward_model.ground_truth``, ``extra_info``);
* ``task:<name>``: the test split of an embedded synthetic task (``curriculum.tasks``);
* a ``.parquet`` / ``.jsonl`` / ``.json`` file with a ``prompt`` column and an answer
  (``answer``, ``ground_truth`` or ``reward_model.ground_truth``), or other columns named
  with ``prompt_column`` / ``answer_column``;
* a hub dataset id (:func:`load_table_benchmark` with ``datasets.load_dataset``) with a
  split and a column mapping.

The hub and file paths go through the same function, :func:`load_table_benchmark`, which
maps columns with :func:`rows_to_problems`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from curriculum.data import DatasetError, get_field, get_ground_truth, validate_prompt
from rewards.answers import normalize_ground_truth
from rl.eval.benchmark_data import DATA_DIR_ENV, HUB_SOURCES, cache_dir, download, find_file, search_dirs

FILE_SUFFIXES = (".parquet", ".jsonl", ".json")
SPLIT_FILE_STEMS = ("test", "train", "validation", "val", "dev", "data")  # a file named so takes its folder's name


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str  # the name users type
    directory: str  # directory under the data dir holding test.parquet
    title: str  # what it is
    num_problems: int  # rows in the shared copy
    mode: str = "math"  # grading mode: math | choice
    aliases: tuple[str, ...] = ()


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("aime24", "aime2024", "AIME 2024", 30, aliases=("aime2024", "aime_2024")),
        BenchmarkSpec("aime25", "aime2025", "AIME 2025", 30, aliases=("aime2025", "aime_2025")),
        BenchmarkSpec("amc23", "amc23", "AMC 2023", 40, aliases=("amc2023",)),
        BenchmarkSpec("hmmt25", "hmmt25", "HMMT February 2025", 30, aliases=("hmmt_feb_2025", "hmmt2025")),
        BenchmarkSpec("math500", "math", "MATH-500", 500, aliases=("math-500", "math_500", "math")),
        BenchmarkSpec("olympiadbench", "olympiad_bench", "OlympiadBench (maths, English, open-ended)", 581,
                      aliases=("olympiad_bench", "olympiad")),
        BenchmarkSpec("gpqa", "gpqa_diamond", "GPQA-Diamond (multiple choice)", 198, mode="choice",
                      aliases=("gpqa_diamond", "gpqa-diamond")),
    )
}
_ALIASES = {a: s.name for s in BENCHMARKS.values() for a in (s.name, *s.aliases)}


@dataclass
class EvalProblem:
    index: int  # position in the source (after --limit: still the source position)
    prompt: Any  # chat messages (list of {"role", "content"}) or a string
    answer: str | list[str]  # ground truth (a choice letter or "B) text" for choice benchmarks); a list: accepted answers
    data_source: str = ""


@dataclass
class Benchmark:
    name: str
    problems: list[EvalProblem]
    mode: str = "math"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.problems)


# ---------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------


def canonical_name(name: str) -> str | None:
    """Registered name for ``name`` or one of its aliases (case-insensitive), else None."""
    return _ALIASES.get(name.strip().lower())


def expand_benchmark_names(names: Iterable[str]) -> list[str]:
    """``all`` -> every registered benchmark; registered aliases -> their names; anything
    else (``task:...``, files) unchanged. Duplicates are dropped, order kept."""
    out: list[str] = []
    for raw in names:
        for name in (x for x in str(raw).split(",") if x.strip()):
            name = name.strip()
            items = list(BENCHMARKS) if name.lower() == "all" else [canonical_name(name) or name]
            out.extend(i for i in items if i not in out)
    return out


def default_data_dir() -> Path | None:
    """The first existing directory of :func:`rl.eval.benchmark_data.search_dirs` (``$PARSIMONY_BENCHMARK_DIR``,
    the cache, ``../shared/data/benchmarks``), else None."""
    return next((d for d in search_dirs() if d.is_dir()), None)


def _looks_like_file(spec: str) -> bool:
    return spec.lower().endswith(FILE_SUFFIXES)


# ---------------------------------------------------------------------------------------
# rows -> problems
# ---------------------------------------------------------------------------------------


def _answer_value(value: Any) -> str | list[str] | None:
    """An answer column's value, read like every ground truth
    (:func:`rewards.answers.normalize_ground_truth`): a list is the accepted answers."""
    return normalize_ground_truth(value)


def _prompt_value(value: Any) -> Any:
    if type(value).__name__ == "ndarray":  # pandas stores lists as numpy arrays
        value = list(value)
    if isinstance(value, (list, tuple)):
        return [dict(m) if isinstance(m, dict) else m for m in value]
    return value


def rows_to_problems(
    rows: Iterable[dict[str, Any]],
    *,
    prompt_column: str = "prompt",
    answer_column: str | None = None,
    prompt_template: str | None = None,
    name: str = "dataset",
    limit: int | None = None,
    where: Mapping[str, str] | None = None,
) -> list[EvalProblem]:
    """Map table rows to problems.

    ``prompt_column`` (dotted paths like ``a.b`` allowed) holds chat messages or a string;
    ``answer_column`` the ground truth (default: ``reward_model.ground_truth``, then
    ``ground_truth``, then ``answer``), read as training reads it
    (:func:`rewards.answers.normalize_ground_truth`): a list is the accepted answers (any
    match is correct); numbers become strings (``2.0`` -> ``"2"``). ``prompt_template`` (containing ``{prompt}``) is applied to
    string prompts and to the content of the last user message. ``where`` keeps only the rows whose
    column (dotted paths allowed) reads as the given text (``{"level": "1"}``: MATH's level-1 problems),
    before ``limit``. Raises :class:`DatasetError` naming the row and field when a row is unusable.
    """
    if prompt_template is not None and "{prompt}" not in prompt_template:
        raise DatasetError(f"prompt_template must contain '{{prompt}}', got {prompt_template!r}")
    out: list[EvalProblem] = []
    seen_columns: set[str] = set()
    for i, row in enumerate(rows):
        if limit is not None and len(out) >= limit:
            break
        if where:
            values = {col: get_field(row, col) for col in where}
            seen_columns.update(col for col, v in values.items() if v is not None)
            if any(v is None or str(v) != str(where[col]) for col, v in values.items()):
                continue
        prompt = _prompt_value(get_field(row, prompt_column))
        problem = validate_prompt(prompt)
        if problem:
            cols = sorted(row) if isinstance(row, dict) else []
            raise DatasetError(f"{name}: row {i} field {prompt_column!r} {problem} (columns: {cols})")
        if answer_column:
            answer = _answer_value(get_field(row, answer_column))
            looked = repr(answer_column)
        else:
            answer = _answer_value(get_ground_truth(row))
            looked = "reward_model.ground_truth, ground_truth, answer"
        if answer is None:
            raise DatasetError(f"{name}: row {i} has no answer (looked for {looked})")
        if prompt_template is not None:
            prompt = _apply_template(prompt, prompt_template)
        out.append(EvalProblem(index=i, prompt=prompt, answer=answer, data_source=str(row.get("data_source") or name)))
    if not out:
        if where:
            missing = sorted(set(where) - seen_columns)
            why = f"no row has column(s) {missing}" if missing else "no row matches"
            raise DatasetError(f"{name}: no problems where {_where_text(where)} ({why})")
        raise DatasetError(f"{name}: no problems")
    return out


def _where_text(where: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def subset_name(name: str, where: Mapping[str, str] | None) -> str:
    """A benchmark's name in the results: ``math500[level=1]`` for a ``--where`` subset, so that it
    is never mistaken for the whole set."""
    return f"{name}[{_where_text(where)}]" if where else name


def parse_where(items: Sequence[str] | None) -> dict[str, str]:
    """``["level=1", "subject=Algebra"]`` -> ``{"level": "1", "subject": "Algebra"}`` (``--where``)."""
    out: dict[str, str] = {}
    for item in items or ():
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise DatasetError(f"--where takes COLUMN=VALUE, got {item!r}")
        out[col.strip()] = value.strip()
    return out


def _apply_template(prompt: Any, template: str) -> Any:
    if isinstance(prompt, str):
        return template.replace("{prompt}", prompt)
    messages = [dict(m) for m in prompt]
    for m in reversed(messages):
        if m.get("role") == "user":
            m["content"] = template.replace("{prompt}", str(m["content"]))
            break
    return messages


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local ``.parquet`` / ``.jsonl`` / ``.json`` file as Python dicts."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"benchmark file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text()
    if suffix == ".jsonl":
        rows = []
        for ln, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{path}: line {ln} is not valid JSON ({e.msg})") from None
        return rows
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):  # {"data": [...]} or column-oriented {"prompt": [...], ...}
            if len(data) == 1 and isinstance(next(iter(data.values())), list):
                data = next(iter(data.values()))
            elif data and all(isinstance(v, list) for v in data.values()):
                keys = list(data)
                data = [dict(zip(keys, vals)) for vals in zip(*data.values())]
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a list of rows")
        return data
    raise DatasetError(f"{path}: unsupported file type {suffix!r} (use {', '.join(FILE_SUFFIXES)})")


def load_registered(name: str, data_dir: str | Path | None = None, limit: int | None = None,
                    loader: Any = None, where: Mapping[str, str] | None = None) -> Benchmark:
    """A registered benchmark from ``<dir>/<directory>/test.parquet``: in ``data_dir`` (or
    ``$PARSIMONY_BENCHMARK_DIR``) when given, else the first of the cache and ``../shared/data/benchmarks``
    that holds it, else downloaded into the cache from its hub source (:mod:`rl.eval.benchmark_data`;
    ``loader`` replaces ``datasets.load_dataset``)."""
    canon = canonical_name(name)
    if canon is None:
        raise DatasetError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}, all")
    spec = BENCHMARKS[canon]
    path = find_file(spec.directory, data_dir)
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if path is None and chosen:
        flag = "--data-dir" if data_dir else f"${DATA_DIR_ENV}"
        raise DatasetError(f"benchmark {canon!r}: {Path(chosen) / spec.directory / 'test.parquet'} does not exist "
                           f"(is {flag} right? unset it to use the cache {cache_dir() / 'benchmarks'})")
    if path is None:
        searched = ", ".join(str(d) for d in search_dirs())
        place = (f"put {spec.directory}/test.parquet under ${DATA_DIR_ENV} or {cache_dir() / 'benchmarks'}, or pass "
                 "--data-dir")
        source = HUB_SOURCES.get(canon)
        if source is None:
            raise DatasetError(f"benchmark {canon!r}: {spec.directory}/test.parquet is in none of {searched}: {place} "
                               "(docs/evaluation.md)")
        try:
            path = download(canon, spec.directory, loader)
        except Exception as e:  # no network, a gated or renamed dataset: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DatasetError(f"benchmark {canon!r}: not in {searched}, and fetching {source.dataset} from the hub "
                               f"failed ({type(e).__name__}: {msg[:200]}): {place}") from None
    problems = rows_to_problems(read_table(path), name=canon, limit=limit, where=where)
    meta: dict[str, Any] = {"title": spec.title, **({"where": dict(where)} if where else {})}
    return Benchmark(subset_name(canon, where), problems, mode=spec.mode, source=str(path), meta=meta)


def load_task(spec: str, num_examples: int = 200, seed: int = 1, limit: int | None = None,
              where: Mapping[str, str] | None = None, **task_kwargs) -> Benchmark:
    """``task:<name>``: the test split of an embedded synthetic task (seeded)."""
    from curriculum.tasks import get_task_dataset

    task = spec[len("task:"):]
    try:
        ds = get_task_dataset(task, num_examples, seed=seed, split="test", **task_kwargs)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    problems = rows_to_problems(ds, name=spec, limit=limit, where=where)
    return Benchmark(subset_name(spec, where), problems, mode="math",
                     source=f"{spec} (test split, {num_examples} problems, seed {seed})")


def load_table_benchmark(
    source: str,
    *,
    name: str | None = None,
    split: str = "test",
    config: str | None = None,
    prompt_column: str = "prompt",
    answer_column: str | None = None,
    prompt_template: str | None = None,
    mode: str | None = None,
    limit: int | None = None,
    loader: Any = None,
    where: Mapping[str, str] | None = None,
) -> Benchmark:
    """A benchmark from a table: a local file, or else a hub dataset id loaded with
    ``datasets.load_dataset(source, config, split=split)`` (``loader`` replaces that call).
    Columns are mapped with :func:`rows_to_problems`. The name defaults to the file stem /
    the last part of the id; the grading mode to the registered benchmark of that name
    (``gpqa`` -> choice), else ``math``."""
    path = Path(source)
    if path.is_file():
        rows: Any = read_table(path)
        # name/test.parquet is benchmark "name" (the shared layout), other files are named by their stem
        default_name = path.parent.name if path.stem.lower() in SPLIT_FILE_STEMS and path.parent.name else path.stem
    elif _looks_like_file(source):
        raise DatasetError(f"benchmark file {source!r} does not exist")
    else:
        if loader is None:
            import datasets

            loader = datasets.load_dataset
        try:
            rows = loader(source, config, split=split) if config else loader(source, split=split)
        except Exception as e:  # network / auth / missing split: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DatasetError(f"could not load hub dataset {source!r} (split {split!r}): {msg}") from None
        default_name = source.rstrip("/").split("/")[-1]
    name = name or default_name
    canon = canonical_name(name)
    if mode is None:
        mode = BENCHMARKS[canon].mode if canon else "math"
    if mode not in ("math", "choice"):
        raise DatasetError(f"grading mode must be 'math' or 'choice', got {mode!r}")
    problems = rows_to_problems(
        rows, prompt_column=prompt_column, answer_column=answer_column, prompt_template=prompt_template,
        name=name, limit=limit, where=where,
    )
    src = str(path) if path.is_file() else f"hub:{source}" + (f":{config}" if config else "") + f" [{split}]"
    return Benchmark(subset_name(name, where), problems, mode=mode, source=src)


def load_benchmark(
    spec: str,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    task_num_examples: int = 200,
    seed: int = 1,
    prompt_column: str = "prompt",
    answer_column: str | None = None,
    prompt_template: str | None = None,
    mode: str | None = None,
    task_kwargs: dict[str, Any] | None = None,
    where: Mapping[str, str] | None = None,
) -> Benchmark:
    """One benchmark from a registered name, ``task:<name>`` or a local file (see module doc).

    ``limit`` keeps the first K problems (of those ``where`` keeps: see :func:`rows_to_problems`).
    ``task_num_examples`` and ``seed`` size and seed a synthetic task's test split.
    """
    spec = spec.strip()
    if spec.startswith("task:"):
        return load_task(spec, task_num_examples, seed=seed, limit=limit, where=where, **(task_kwargs or {}))
    if canonical_name(spec) is not None:
        return load_registered(spec, data_dir, limit=limit, where=where)
    if _looks_like_file(spec) or Path(spec).is_file():
        return load_table_benchmark(
            spec, prompt_column=prompt_column, answer_column=answer_column, prompt_template=prompt_template,
            mode=mode, limit=limit, where=where,
        )
    raise DatasetError(
        f"unknown benchmark {spec!r}: use one of {', '.join(BENCHMARKS)}, all, task:<name>, a .parquet/.jsonl "
        "file, or --hub-dataset ID for a hub dataset"
    )


def load_benchmarks(specs: Sequence[str], **kwargs: Any) -> list[Benchmark]:
    """:func:`load_benchmark` for each of ``expand_benchmark_names(specs)``."""
    return [load_benchmark(s, **kwargs) for s in expand_benchmark_names(specs)]
