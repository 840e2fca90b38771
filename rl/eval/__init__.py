"""Evaluation: benchmarks (:mod:`.benchmarks`), generation (:mod:`.generation`), metrics
(:mod:`.metrics`), running and resuming (:mod:`.run`, :mod:`.evaluate`), reports (:mod:`.report`),
evaluation during training (:mod:`.training`) and the efficiency measures (:mod:`.efficiency`).

Modules import each other one way (errors <- benchmarks, metrics <- generation <- evaluate <- run);
:class:`EvalError` lives in :mod:`.errors`, which imports nothing else of the evaluation.
"""

from rl.eval.errors import EvalError

__all__ = ["EvalError"]
