"""Before any model loads: which checkpoint a run resumes from, and whether it can be loaded, and
whether a new run may write into its output directory.

- ``resume_from_checkpoint: latest`` means the newest *complete* checkpoint: one with its
  ``trainer_state.json``, model weights, optimizer and scheduler state and one RNG state per process.
  Incomplete ones (a crash mid-save that left an empty ``checkpoint-N/``, a deleted file) are skipped,
  and the run says which and why.
- A complete checkpoint whose files are corrupt (truncated, random bytes) or hold Python objects that
  loading could execute is refused with one line naming the file (:class:`rl.errors.CheckpointError`):
  every file is opened here the way the resume will read it (safetensors headers, ``torch.load`` with
  ``weights_only=True``, memory-mapped so that optimizer state is not read twice).
- A new run (no ``resume_from_checkpoint``) into an output directory that already holds a run is
  refused unless ``overwrite_output_dir`` is set; then the old run's checkpoints, ``final/`` and metric
  files are removed first.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any, Callable

from rl.checkpoint import list_checkpoints, read_torch, read_trainer_state
from rl.errors import CheckpointError, ConfigError

# what a run writes into its output directory (a directory holding any of these holds a run)
RUN_FILES = ("metrics.jsonl", "completions.jsonl", "final")
SHARDED_DIRS = ("sharded", "zero3")


def missing_parts(path: Path, world_size: int) -> list[str]:
    """The files a complete checkpoint has and ``path`` lacks (empty: complete). ``world_size`` is the
    number of resuming processes (a checkpoint written by another number is refused by :func:`check_readable`)."""
    path = Path(path)
    missing = []
    if not (path / "trainer_state.json").is_file():
        missing.append("trainer_state.json")
    sharded = any((path / d).is_dir() for d in SHARDED_DIRS)
    if sharded:
        if (path / "sharded").is_dir() and not (path / "sharded" / ".metadata").is_file():
            missing.append("sharded/.metadata")
    else:
        weights = (list(path.glob("model*.safetensors")) + list(path.glob("adapter_model.safetensors"))
                   + list(path.glob("*/adapter_model.safetensors")))
        if not weights:
            missing.append("model weights (model.safetensors or adapter_model.safetensors)")
        if not (path / "optimizer.pt").is_file():
            missing.append("optimizer.pt")
    if not (path / "scheduler.pt").is_file():
        missing.append("scheduler.pt")
    if not (path / "rng_state_0.pt").is_file():  # (a count unequal to the resuming processes: check_readable)
        missing.append("rng_state_0.pt")
    return missing


def check_readable(path: Path, world_size: int) -> None:
    """Open every file of a complete checkpoint as the resume will; the first problem is a
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    read_trainer_state(path)
    saved = sorted(path.glob("rng_state_*.pt"))
    if len(saved) != world_size:
        raise CheckpointError(f"{path}: written by {len(saved)} process(es) but {world_size} are resuming; exact "
                              "resume needs the same number")
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*/adapter_model.safetensors")):
        check_safetensors(f)
    if (path / "sharded" / ".metadata").is_file():
        check_dcp_metadata(path / "sharded" / ".metadata")
    for name in ("optimizer.pt", "scheduler.pt"):
        if (path / name).is_file():
            read_torch(path / name, mmap=True)
    for f in saved:
        state = read_torch(f, mmap=True)
        if not isinstance(state, dict) or "rng" not in state:
            raise CheckpointError(f"{f}: not a parsimony RNG state (no 'rng' entry)")


# DCP's `.metadata` (sharded checkpoints) is a pickle that torch.distributed.checkpoint loads with plain
# pickle.load: it is checked here first, allowing only the classes DCP writes into it
_DCP_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem",
                "torch.distributed.checkpoint.planner")
_DCP_NAMES = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
              ("pathlib", "PurePosixPath"), ("collections", "OrderedDict"), ("builtins", "set"),
              ("builtins", "frozenset"), ("builtins", "slice")}


class _DCPMetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        obj = None
        if module in _DCP_MODULES or (module, name) in _DCP_NAMES:
            obj = super().find_class(module, name)
        elif module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.layout, torch.memory_format)):
            obj = getattr(torch, name)
        if obj is None or (module in _DCP_MODULES and not isinstance(obj, type) and name != "_MEM_FORMAT_ENCODING"):
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")
        return obj


def check_dcp_metadata(path: Path) -> None:
    """A sharded checkpoint's ``.metadata`` holds only DCP's metadata classes (nothing that runs code)."""
    try:
        with open(path, "rb") as fh:
            _DCPMetadataUnpickler(fh).load()
    except pickle.UnpicklingError as e:
        if "is not allowed" in str(e):
            raise CheckpointError(f"{path}: refused: it holds Python objects ({e}) that could run code when "
                                  "loaded") from None
        raise CheckpointError(f"{path}: unreadable ({e}): truncated or corrupt") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}): truncated or corrupt") from None


def check_safetensors(path: Path) -> None:
    """The header of a safetensors file, and that its size matches what the header announces."""
    import json
    import struct

    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            if n <= 0 or 8 + n > size:
                raise ValueError(f"header of {n} bytes in a file of {size}")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}): truncated or corrupt") from None
    if 8 + n + end != size:
        raise CheckpointError(f"{path}: truncated or corrupt: its header describes {8 + n + end} bytes, the file has {size}")


def resolve_resume(spec: str | None, output_dir: str | Path, world_size: int,
                   log: Callable[[str], Any] = print) -> Path | None:
    """``None`` | ``'latest'`` | a path -> the checkpoint to resume from, checked (see the module docstring)."""
    if not spec:
        return None
    if spec == "latest":
        for ckpt in reversed(list_checkpoints(output_dir)):
            missing = missing_parts(ckpt, world_size)
            if missing:
                log(f"[parsimony] skipping {ckpt}: incomplete (missing {', '.join(missing)})")
                continue
            check_readable(ckpt, world_size)
            return ckpt
        return None
    path = Path(spec)
    if not path.is_dir():
        raise CheckpointError(f"resume_from_checkpoint: {spec}: no such checkpoint directory")
    missing = missing_parts(path, world_size)
    if missing:
        raise CheckpointError(f"resume_from_checkpoint: {path} is incomplete: missing {', '.join(missing)}")
    check_readable(path, world_size)
    return path


def holds_a_run(output_dir: str | Path) -> list[str]:
    """What in ``output_dir`` belongs to an earlier run (empty: nothing)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p.name for p in sorted(root.iterdir()) if p.name in RUN_FILES or p.name.startswith("checkpoint-")]
    return found


def check_output_dir(output_dir: str | Path, resume: str | None, overwrite: bool,
                     log: Callable[[str], Any] = print, is_main: bool = True) -> None:
    """A new run into a directory that holds one: refused, or (``overwrite``) the old run removed."""
    if resume:
        return
    found = holds_a_run(output_dir)
    if not found:
        return
    if not overwrite:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ConfigError(f"output_dir: {output_dir} already holds a run ({shown}); resume it with "
                          "--resume_from_checkpoint latest, or set --overwrite_output_dir true to replace it")
    if is_main:
        root = Path(output_dir)
        for name in found:
            p = root / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        log(f"[parsimony] overwrite_output_dir: removed the earlier run in {output_dir} ({', '.join(found)})")
