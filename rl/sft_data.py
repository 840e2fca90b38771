"""SFT data: rows -> token ids and labels, packing, collation.

Two row layouts, both chat-template based:

* ``prompt`` + ``completion`` (TRL's prompt-completion layout): the prompt (messages or text)
  rendered with the generation prompt, then the completion text and the tokenizer's eos. This is
  what the task generators (``task:<name>``) produce.
* ``messages``: a whole conversation. Every assistant turn is trained on, every other token
  (system, user, tool, the template's role headers) carries no loss. Turn ``i``'s tokens are
  the difference between the template rendered over ``messages[:i]`` with the generation prompt
  and over ``messages[:i+1]``; text after the turn's last eos (the template's newline) is not
  trained on. This needs a chat template that renders a prefix of a conversation as a prefix of
  the text, which is checked row by row. An optional ``tools`` field (a list of JSON schemas, or
  that list as a JSON string) is passed to the template's ``tools=``, as in TRL's tool-calling SFT,
  so a tool trace is trained on the same rendering that a tool episode's rollouts see.

Segments are tokenized one at a time and concatenated (the same as the prompt-completion layout
always did), so a label boundary is always a token boundary.

Packing (``packing: true``): the examples of one micro-batch are packed into as few rows of at most
``max_length`` tokens as possible (first-fit decreasing). ``position_ids`` restart at 0 for every
example and the attention mask is left out, so transformers isolates the examples itself: the
flash-attention path turns the position ids into varlen ``cu_seqlens``, and the sdpa/eager mask
builder (``masking_utils.find_packed_sequence_indices``) turns them into a block-diagonal causal
mask. The first label of every packed example is ignored, so no loss crosses a boundary (the last
token of one example never predicts the first of the next). The step's examples, and so its
gradient, are those of the unpacked batch.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from curriculum.data import DatasetError, completion_text, render_prompt, validate_prompt

IGNORE = -100

Example = tuple[list[int], list[int]]  # (input_ids, labels)


# --- validation ----------------------------------------------------------------------------------
def row_layout(dataset: Any, name: str = "train_dataset") -> str:
    """``"messages"`` or ``"prompt_completion"``; DatasetError when neither layout is there."""
    cols = set(dataset.column_names)
    if "messages" in cols:
        return "messages"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    raise DatasetError(
        f"{name}: row 0 has neither a 'messages' field nor 'prompt' + 'completion' (columns: {sorted(cols)})"
    )


def validate_sft_dataset(dataset: Any, name: str = "train_dataset") -> str:
    """Raise DatasetError naming the first bad row and field; returns the layout."""
    if len(dataset) == 0:
        raise DatasetError(f"{name} is empty")
    layout = row_layout(dataset, name)
    for i, row in enumerate(dataset):
        if layout == "messages":
            msgs = row["messages"]
            problem = validate_prompt(msgs) if not isinstance(msgs, str) else "is a string; expected chat messages"
            if problem:
                raise DatasetError(f"{name}: row {i} field 'messages' {problem}")
            if not any(m["role"] == "assistant" and str(m["content"]).strip() for m in msgs):
                raise DatasetError(f"{name}: row {i} field 'messages' has no non-empty assistant message")
            row_tools(row, f"{name}: row {i}")
            continue
        problem = validate_prompt(row["prompt"])
        if problem:
            raise DatasetError(f"{name}: row {i} field 'prompt' {problem}")
        c = row["completion"]
        if c is None or (isinstance(c, str) and not c.strip()) or (isinstance(c, list) and not c):
            raise DatasetError(f"{name}: row {i} field 'completion' is missing or empty")
    return layout


def row_tools(row: dict, where: str = "row") -> list[dict] | None:
    """A row's ``tools`` field as a list of JSON schemas (None when absent or empty)."""
    tools = row.get("tools")
    if tools is None:
        return None
    if isinstance(tools, str):
        import json

        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where} field 'tools' is not valid JSON ({e.msg})") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise DatasetError(f"{where} field 'tools' must be a list of JSON schemas (objects), got {type(tools).__name__}")
    return tools or None


# --- tokenization --------------------------------------------------------------------------------
def tokenize_example(
    tokenizer, prompt: Any, completion: Any, max_length: int, system_prompt: str | None = None,
    completion_only: bool = True,
) -> Example:
    """-> (input_ids, labels) with labels = IGNORE on prompt tokens (on none if not ``completion_only``)."""
    p_ids = tokenizer(render_prompt(tokenizer, prompt, system_prompt), add_special_tokens=False)["input_ids"]
    text = completion_text(completion)
    if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
        text = text + tokenizer.eos_token
    c_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = (p_ids + c_ids)[:max_length]
    labels = ((([IGNORE] * len(p_ids)) if completion_only else p_ids) + c_ids)[:max_length]
    return ids, labels


def conversation_segments(
    tokenizer, messages: Sequence[dict], system_prompt: str | None = None, tools: list[dict] | None = None,
) -> list[tuple[str, bool]]:
    """A conversation -> [(text, trained)] whose concatenation is the chat template's rendering;
    ``trained`` marks assistant turns (up to and including their last eos)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DatasetError("a 'messages' dataset needs a tokenizer with a chat template")
    msgs = [dict(m) for m in messages]
    if system_prompt and msgs[0].get("role") != "system":
        msgs = [{"role": "system", "content": system_prompt}] + msgs

    def render(k: int, gen: bool) -> str:
        if k == 0:
            return ""
        kw = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(msgs[:k], tokenize=False, add_generation_prompt=gen, **kw)

    segments: list[tuple[str, bool]] = []
    done = ""  # the text covered so far
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        head = render(i, True)
        full = render(i + 1, False)
        if not head.startswith(done) or not full.startswith(head):
            raise DatasetError(
                "the chat template does not render a conversation prefix as a text prefix; "
                "assistant-only labels cannot be derived for 'messages' rows"
            )
        if head[len(done):]:
            segments.append((head[len(done):], False))
        turn = full[len(head):]
        eos = tokenizer.eos_token
        cut = turn.rfind(eos) + len(eos) if eos and eos in turn else len(turn)
        segments.append((turn[:cut], True))
        if turn[cut:]:
            segments.append((turn[cut:], False))
        done = full
    return segments


def tokenize_messages(
    tokenizer, messages: Sequence[dict], max_length: int, system_prompt: str | None = None, completion_only: bool = True,
    tools: list[dict] | None = None,
) -> Example:
    """A conversation -> (input_ids, labels), labels on the assistant turns only (on everything
    if not ``completion_only``). Truncated to ``max_length`` tokens."""
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in conversation_segments(tokenizer, messages, system_prompt, tools):
        seg = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += seg
        labels += seg if (trained or not completion_only) else [IGNORE] * len(seg)
    return ids[:max_length], labels[:max_length]


def tokenize_row(tokenizer, row: dict, layout: str, max_length: int, system_prompt: str | None = None,
                 completion_only: bool = True) -> Example:
    if layout == "messages":
        return tokenize_messages(tokenizer, row["messages"], max_length, system_prompt, completion_only, row_tools(row))
    return tokenize_example(tokenizer, row["prompt"], row["completion"], max_length, system_prompt, completion_only)


def loss_tokens(example: Example) -> int:
    """Tokens whose loss counts (labels after the one-position shift)."""
    return sum(1 for x in example[1][1:] if x != IGNORE)


# --- batching ------------------------------------------------------------------------------------
def split_by_length(idx: list[int], examples: list[Example], pieces: int) -> list[list[int]]:
    """Cut one batch of example indices into ``pieces`` groups of similar length (sorted by length,
    order kept among equals). Each group pads only to its own longest example; the batch, and so the
    gradient, is unchanged."""
    if pieces <= 1 or len(idx) <= 1:
        return [list(idx)]
    ordered = sorted(idx, key=lambda i: len(examples[i][0]))
    size = -(-len(ordered) // min(pieces, len(ordered)))  # ceil
    return [ordered[j : j + size] for j in range(0, len(ordered), size)]


def pack_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: positions into ``lengths`` grouped into bins of total <= ``capacity``
    (an item longer than ``capacity`` gets a bin of its own). Deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b in range(len(bins)):
            if lengths[i] <= room[b]:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def collate_padded(items: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded rows: input_ids, labels, attention_mask [B, L]."""
    L = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), L), pad_id, dtype=torch.long)  # [B, L]
    labels = torch.full((len(items), L), IGNORE, dtype=torch.long)  # [B, L]
    attention = torch.zeros((len(items), L), dtype=torch.long)  # [B, L]
    for i, (ids, lab) in enumerate(items):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def collate_packed(items: list[Example], max_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows: input_ids, labels, position_ids [R, L] (no attention mask: the restarting
    position ids delimit the examples). The tail padding of a row is one more segment of its own
    (positions from 0, labels ignored), so it attends only to itself."""
    bins = pack_bins([len(ids) for ids, _ in items], max_length)
    L = max(sum(len(items[i][0]) for i in b) for b in bins)
    input_ids = torch.full((len(bins), L), pad_id, dtype=torch.long)  # [R, L]
    labels = torch.full((len(bins), L), IGNORE, dtype=torch.long)  # [R, L]
    position_ids = torch.zeros((len(bins), L), dtype=torch.long)  # [R, L]
    for r, b in enumerate(bins):
        at = 0
        for i in b:
            ids, lab = items[i]
            n = len(ids)
            input_ids[r, at : at + n] = torch.tensor(ids)
            labels[r, at : at + n] = torch.tensor(lab)
            labels[r, at] = IGNORE  # never predicted from the previous example
            position_ids[r, at : at + n] = torch.arange(n)
            at += n
        position_ids[r, at:] = torch.arange(L - at)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def example_spans(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """[R, L] packed position ids -> per row the (start, end) of each segment."""
    out = []
    for row in position_ids.tolist():
        starts = [j for j, p in enumerate(row) if p == 0]
        out.append(list(zip(starts, starts[1:] + [len(row)])))
    return out
