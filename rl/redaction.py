"""Secrets never leave the process: a config is redacted wherever it is saved or logged (a checkpoint's
``trainer_state.json``, the W&B and ``metrics.jsonl`` config, ``--dry_run``'s YAML).

Redacted: the password of any URL (``redis://:secret@host`` -> ``redis://:***@host``), and the value of
any key whose name says it is a secret (``password``, ``secret``, ``token``, ``api_key``, ...), at any depth.
"""

from __future__ import annotations

import re
from typing import Any

from rollout.mgrpo.store import redact_url

# a key that names a secret: the word on its own or between underscores (not `tokenizer`, `max_tokens`)
SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|api_?key|credentials?)($|_)", re.IGNORECASE)
MASK = "***"


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (dicts, lists, tuples, strings) with its secrets masked."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, key) for v in value)
    if isinstance(value, str):
        if value and SECRET_KEY.search(key) and not key.endswith("_env"):  # *_env: the variable's name, not its value
            return MASK
        return redact_url(value)
    return value
