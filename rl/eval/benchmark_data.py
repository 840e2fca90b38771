"""Where the named benchmarks' files are found, and the download that fills the cache.

A registered benchmark (``math500``, ``aime24``, ...) is ``<directory>/test.parquet`` in

1. ``--data-dir`` when given, else ``$PARSIMONY_BENCHMARK_DIR`` when set (only there: the user's own copy);
2. otherwise the first of the cache, ``$PARSIMONY_CACHE/benchmarks`` (default
   ``$XDG_CACHE_HOME/parsimony/benchmarks``, i.e. ``~/.cache/parsimony/benchmarks``), and
   ``../shared/data/benchmarks`` next to the repository that holds it.

When neither holds it and the benchmark has a hub source (:data:`HUB_SOURCES`), it is downloaded once
into the cache, in the same layout (chat prompt with the instruction, ``reward_model.ground_truth``), so
``parsimony eval --benchmarks math500`` works as written on a fresh clone with network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

DATA_DIR_ENV = "PARSIMONY_BENCHMARK_DIR"
CACHE_ENV = "PARSIMONY_CACHE"
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


@dataclass(frozen=True)
class HubSource:
    """A hub copy of a benchmark: its id, split and columns (the prompt gets :data:`INSTRUCTION`)."""

    dataset: str
    split: str
    prompt_column: str
    answer_column: str


HUB_SOURCES: dict[str, HubSource] = {
    "math500": HubSource("HuggingFaceH4/MATH-500", "test", "problem", "answer"),
    "aime24": HubSource("HuggingFaceH4/aime_2024", "train", "problem", "answer"),
    "aime25": HubSource("MathArena/aime_2025", "train", "problem", "answer"),
    "hmmt25": HubSource("MathArena/hmmt_feb_2025", "train", "problem", "answer"),
}


def cache_dir() -> Path:
    """``$PARSIMONY_CACHE``, else ``$XDG_CACHE_HOME/parsimony``, else ``~/.cache/parsimony``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "parsimony"


def shared_dir() -> Path:
    """``../shared/data/benchmarks`` next to the repository (rl/eval/ -> repo/..)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmarks"


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The directories a registered benchmark is looked for in, in order (see the module doc)."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if chosen:
        return [Path(chosen).expanduser()]
    return [cache_dir() / "benchmarks", shared_dir()]


def find_file(directory: str, data_dir: str | Path | None = None) -> Path | None:
    """The first ``<dir>/<directory>/test.parquet`` of :func:`search_dirs` that exists."""
    for d in search_dirs(data_dir):
        path = d / directory / "test.parquet"
        if path.is_file():
            return path
    return None


def download(name: str, directory: str, loader: Callable[..., Any] | None = None) -> Path:
    """Fetch benchmark ``name`` from its hub source into ``<cache>/benchmarks/<directory>/test.parquet``
    (shared layout); returns the path. ``loader`` replaces ``datasets.load_dataset`` (tests)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = HUB_SOURCES[name]
    if loader is None:
        import datasets

        loader = datasets.load_dataset
    rows = list(loader(source.dataset, split=source.split))
    out = []
    for i, row in enumerate(rows):
        problem, answer = row[source.prompt_column], row[source.answer_column]
        out.append({
            "data_source": name,
            "prompt": [{"role": "user", "content": f"{problem} {INSTRUCTION}"}],
            "reward_model": {"ground_truth": str(answer), "style": "rule"},
            "extra_info": {"index": i, "split": "test", "source": f"hub:{source.dataset} [{source.split}]"},
        })
    path = cache_dir() / "benchmarks" / directory / "test.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(out), tmp)
    tmp.replace(path)  # a complete file or none
    return path
