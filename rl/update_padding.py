"""Less padding in the GRPO update, the same gradient.

A batch is padded to its longest prompt (left) and longest completion (right). With completions
of uneven length most of the forward and backward work can be padding. Two pure helpers:

- :func:`length_sorted_chunks`: the ``gradient_accumulation_steps`` index chunks of the update
  (as ``torch.arange(n).tensor_split(k)``), each cut into ``pieces`` pieces of rows sorted by
  completion length, so each piece holds rows of similar length. Every piece's loss is divided
  by the whole batch's token (or row) count, so the accumulated gradient is the batch's.
- :func:`trim_padding`: a micro-batch cut to the columns some row uses (leading prompt columns
  that are padding in every row, trailing completion columns past the longest completion).
  Padding is masked out of attention and loss, so the values are those of the untrimmed rows.

The number of chunks is always ``k * pieces`` (some may be empty), the same on every process,
so DDP's collective calls stay aligned.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from rl.batch import RolloutBatch


def length_sorted_chunks(lengths: Tensor, k: int, pieces: int = 1) -> list[Tensor]:
    """``k`` accumulation chunks of ``arange(len(lengths))``, each split into ``pieces`` index
    tensors of rows sorted by ``lengths`` (longest first); ``pieces`` 1 = the chunks as they are."""
    n = int(lengths.shape[0])
    chunks = list(torch.arange(n).tensor_split(k))
    if pieces <= 1:
        return chunks
    out: list[Tensor] = []
    for c in chunks:
        order = c[torch.argsort(lengths[c], descending=True, stable=True)] if len(c) else c
        out.extend(order.tensor_split(pieces))
    return out


def trim_padding(mb: RolloutBatch) -> RolloutBatch:
    """``mb`` without the prompt columns that are padding in every row and the completion columns
    past its longest completion (every other [n, T] tensor field, and [n, T] values of its dict
    fields, is cut alike)."""
    if mb.num_rollouts == 0:
        return mb
    used_p = mb.prompt_mask.sum(dim=0) > 0  # [P]
    p0 = int(used_p.nonzero()[0]) if bool(used_p.any()) else mb.prompt_ids.shape[1]
    t1 = max(1, int(mb.attention_mask_completion.sum(dim=1).max()))
    T = mb.completion_ids.shape[1]
    if p0 == 0 and t1 >= T:
        return mb

    def cut(x):
        return x[:, :t1] if isinstance(x, Tensor) and x.dim() == 2 and x.shape[1] == T else x

    changes = {}
    for f in dataclasses.fields(mb):
        v = getattr(mb, f.name)
        if f.name in ("prompt_ids", "prompt_mask"):
            changes[f.name] = v[:, p0:]
        elif isinstance(v, dict):
            changes[f.name] = {k: cut(x) for k, x in v.items()}
        else:
            changes[f.name] = cut(v)
    return dataclasses.replace(mb, **changes)


def pad_columns(x: Tensor, width: int, value: float = 0.0) -> Tensor:
    """[n, t] -> [n, width] (right-padded with ``value``), for values computed on a trimmed batch."""
    if x.shape[1] >= width:
        return x
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)
