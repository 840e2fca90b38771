"""Where metrics go: console progress bar, ``metrics.jsonl``, Weights & Biases.

W&B runs offline when no API key is configured (``WANDB_API_KEY`` unset and no
``wandb login``), so a run never blocks on the network; sync later with ``wandb sync``.
Only the main process logs.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable

# the figures shown on the progress bar, in order, when present
PROGRESS_KEYS = ("loss", "reward", "accuracy", "completion/mean_length", "kl", "lr")


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    try:
        return netrc.is_file() and "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class Tracker:
    def __init__(
        self,
        output_dir: str,
        report_to: Iterable[str],
        total_steps: int,
        config: dict[str, Any] | None = None,
        run_name: str | None = None,
        is_main_process: bool = True,
        initial_step: int = 0,
        disable_progress_bar: bool = False,
        project: str = "parsimony",
    ) -> None:
        self.enabled = is_main_process
        self.report_to = set(report_to)
        self.output_dir = Path(output_dir)
        self._bar = None
        self._wandb = None
        self._start = time.time()
        if not self.enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.output_dir / "metrics.jsonl"
        if "console" in self.report_to and not disable_progress_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=initial_step, desc=run_name or "train", dynamic_ncols=True)
        if "wandb" in self.report_to:
            import wandb

            if not _wandb_has_key() and not os.environ.get("WANDB_MODE"):
                os.environ["WANDB_MODE"] = "offline"
                print("[parsimony] no W&B API key found: logging to W&B in offline mode (sync later with `wandb sync`)")
            self._wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", project),
                name=run_name,
                config=config or {},
                dir=str(self.output_dir),
                resume="allow",
            )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from rl.batch_metrics import with_trl_names

        row = {"step": step, "time": round(time.time() - self._start, 3)}
        row.update({k: _clean(v) for k, v in with_trl_names(metrics).items()})  # TRL's names too
        if "jsonl" in self.report_to:
            with open(self.jsonl_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
        if self._bar is not None:
            shown = {k.split("/")[-1]: f"{row[k]:.3g}" for k in PROGRESS_KEYS if isinstance(row.get(k), (int, float))}
            self._bar.set_postfix(shown, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def log_completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        """A table of sample completions (W&B table, and ``completions.jsonl``)."""
        if not self.enabled or not rows:
            return
        with open(self.output_dir / "completions.jsonl", "a") as f:
            for r in rows:
                f.write(json.dumps({"step": step, **{k: _clean(v) for k, v in r.items()}}) + "\n")
        if self._wandb is not None:
            import wandb

            cols = list(rows[0].keys())
            table = wandb.Table(columns=cols, data=[[_clean(r.get(c)) for c in cols] for r in rows])
            self._wandb.log({"completions": table}, step=step)

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
