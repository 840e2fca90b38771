"""The "mixed difficulty" task (DeReason's world): many one-step problems, fewer multi-step ones.

Every row is an overthinking-arithmetic problem (:mod:`curriculum.tasks.overthink`, same prompt,
trace format and tokenizer), drawn from *components* of different reasoning intensity:

=============  ======  =====================  ===========  ============================
component      weight  problem                difficulty   teacher
=============  ======  =====================  ===========  ============================
``one_step``   0.50    ``a op b`` (1 op)       1            clean
``two_step``   0.25    2 ops, left to right    2            clean
``multi_step`` 0.25    3 ops, left to right    4            noisy: skips the last step
                                                            ("Let me compute quickly.")
                                                            on 60% of traces
=============  ======  =====================  ===========  ============================

``extra_info.difficulty`` is the component's reasoning intensity on the 1-5 rubric of
:mod:`curriculum.dereason.difficulty` (so ``score-difficulty --scorer column`` reads it), and
``extra_info.component`` its name.

RL headroom (the embedded-world principle: RL's gain must come from choosing among behaviours the
model already has): the multi-step teacher's slip is a *behaviour*, chosen at one token before any
arithmetic (" quickly" vs " step"), and both behaviours use the same facts. Where the slip rate is
0.6 it is the modal behaviour, so an SFT policy trained on those traces slips on most greedy and
sampled answers; GRPO with the accuracy reward removes it without learning a new fact. The clean
step-by-step behaviour itself is what the one- and two-step traces teach. One-step problems have
nothing to choose: an SFT policy answers them right, and RL spends its rollouts there on groups
with no reward variance.

The three-step behaviour itself is learned only from three-step traces (measured: after 1,000 SFT
steps on the one- and two-step rows alone, no three-step completion wrote a third step), so a
DeReason split of this task sends a focused fraction of the hard rows to RL (``rl_fraction``) and
keeps the rest in SFT; docs/dereason.md has the numbers.

``components`` (a task option, e.g. ``--dataset_kwargs '{"components": [...]}'``) replaces the
mixture: a list of ``{"name", "weight", "num_ops", "difficulty", "slip_rate"}`` dicts
(``slip_rate`` optional, default 0). ``redundancy`` (default ``"none"``: no re-verification
chunks, the shortest traces) and ``max_operand`` pass through to the generator. Row counts per
component are the weights times ``num_examples`` rounded by largest remainder, and the rows are
shuffled (seeded). The train and test splits are disjoint problem sets (overthink's stable hash).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

DATA_SOURCE = "parsimony/mixed"

DEFAULT_COMPONENTS: tuple[dict[str, Any], ...] = (
    {"name": "one_step", "weight": 0.50, "num_ops": 1, "difficulty": 1},
    {"name": "two_step", "weight": 0.25, "num_ops": 2, "difficulty": 2},
    {"name": "multi_step", "weight": 0.25, "num_ops": 3, "difficulty": 4, "slip_rate": 0.6},
)
# the evaluation buckets: difficulty >= HARD_THRESHOLD is a "hard" problem (the RL set is a fraction of these)
HARD_THRESHOLD = 4
_KEYS = {"name", "weight", "num_ops", "difficulty", "slip_rate"}


def check_components(components: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a mixture; the error names the component (by index) and the field."""
    if not components:
        raise ValueError("components: needs at least one component")
    out, names = [], set()
    for i, c in enumerate(components):
        if not isinstance(c, dict):
            raise ValueError(f"components[{i}]: must be a mapping, got {type(c).__name__}")
        unknown = sorted(set(c) - _KEYS)
        if unknown:
            raise ValueError(f"components[{i}]: unknown field(s) {unknown}; known: {sorted(_KEYS)}")
        for key in ("name", "weight", "num_ops", "difficulty"):
            if key not in c:
                raise ValueError(f"components[{i}]: missing field {key!r}")
        name = str(c["name"])
        if name in names:
            raise ValueError(f"components[{i}]: duplicate name {name!r}")
        names.add(name)
        weight, num_ops, difficulty = float(c["weight"]), c["num_ops"], c["difficulty"]
        slip = float(c.get("slip_rate", 0.0))
        if weight < 0:
            raise ValueError(f"components[{i}] ({name}): weight must be >= 0, got {weight}")
        if not isinstance(num_ops, int) or not 1 <= num_ops <= 4:
            raise ValueError(f"components[{i}] ({name}): num_ops must be an integer in 1..4, got {num_ops!r}")
        if not isinstance(difficulty, int) or not 1 <= difficulty <= 5:
            raise ValueError(f"components[{i}] ({name}): difficulty must be an integer in 1..5, got {difficulty!r}")
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"components[{i}] ({name}): slip_rate must be in [0, 1], got {slip}")
        if slip > 0 and num_ops < 2:
            raise ValueError(f"components[{i}] ({name}): a slip skips the last step, so it needs num_ops >= 2")
        out.append({"name": name, "weight": weight, "num_ops": num_ops, "difficulty": difficulty, "slip_rate": slip})
    if sum(c["weight"] for c in out) <= 0:
        raise ValueError("components: the weights sum to 0")
    return out


def component_counts(weights: Sequence[float], n: int) -> list[int]:
    """``n`` rows shared by ``weights`` (largest remainder; ties go to the earlier component)."""
    total = sum(weights)
    exact = [w / total * n for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    components: Sequence[dict[str, Any]] | None = None,
    redundancy: Any = "none",
    max_operand: int = 9,
) -> list[dict[str, Any]]:
    """The rows of :func:`make_mixed_dataset` as plain dicts."""
    from curriculum.tasks.overthink import generate_examples as overthink_examples

    comps = check_components(DEFAULT_COMPONENTS if components is None else components)
    counts = component_counts([c["weight"] for c in comps], num_examples)
    rows: list[dict[str, Any]] = []
    for j, (c, n) in enumerate(zip(comps, counts)):
        if n == 0:
            continue
        part = overthink_examples(
            n, seed=seed * 1000 + j, split=split, min_ops=c["num_ops"], max_ops=c["num_ops"],
            max_operand=max_operand, redundancy=redundancy, slip_rate=c["slip_rate"], slip_kind="quick",
        )
        for row in part:
            info = dict(row["extra_info"])
            info.update(difficulty=c["difficulty"], component=c["name"], slipped=bool(info.get("slipped", False)))
            rows.append({**row, "data_source": DATA_SOURCE, "extra_info": info})
    random.Random(f"mixed/{seed}/{split}").shuffle(rows)
    for i, row in enumerate(rows):
        row["extra_info"]["index"] = i
    return rows


def make_mixed_dataset(num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Seeded ``datasets.Dataset`` in the shared-benchmark layout (``prompt``, ``completion``,
    ``reward_model``, ``data_source``, ``extra_info`` with {difficulty, component, num_ops, slipped,
    split, index, redundant_chunks, problem}); options as :func:`generate_examples`."""
    import datasets

    return datasets.Dataset.from_list(generate_examples(num_examples, seed, split, **kwargs))


def bucket_of(row: dict[str, Any], threshold: int = HARD_THRESHOLD) -> str:
    """``"hard"`` when the row's ``extra_info.difficulty`` >= ``threshold``, else ``"easy"``."""
    info = row.get("extra_info") or {}
    d = info.get("difficulty")
    if not isinstance(d, int):
        raise ValueError(f"row {info.get('index', '?')}: extra_info.difficulty must be an integer, got {d!r}")
    return "hard" if d >= threshold else "easy"


__all__ = ["DEFAULT_COMPONENTS", "HARD_THRESHOLD", "bucket_of", "check_components", "component_counts",
           "generate_examples", "make_mixed_dataset"]
