"""DeReason in one resumable command: ``parsimony pipeline --config recipes/dereason/tiny.yaml``.

    model -> score (difficulty 1-5) -> split (SFT / RL sets) -> SFT on the easy set
          -> GRPO on the hard set from the SFT checkpoint -> eval (accuracy overall, easy, hard)

One recipe names every stage's settings (``recipes/dereason/tiny.yaml`` documents the keys):
``out``, ``model``, ``seed``, ``data`` (dataset, num_examples, split, kwargs), ``score`` (the
flags of ``parsimony score-difficulty`` without dashes), ``split`` (``threshold`` or
``rl_fraction``), ``sft`` (``SFTConfig`` fields), ``rl`` (``GRPOConfig`` fields) and ``eval``.

Every stage skips when its output is complete, so re-running the command continues where it
stopped: scoring resumes from its row cache, SFT and GRPO from their latest checkpoint (set
``save_steps``; SIGTERM / Ctrl-C save one before exiting, exit code 130), the evaluation per
model. A complete stage made with other settings is refused, naming the stage, rather than
silently reused. ``OUT/pipeline.json`` records each stage's settings, status and time, and the
stage table is printed as the pipeline goes.

    parsimony pipeline --config RECIPE [--out DIR] [--set sft.max_steps=10 ...] [--stages sft,rl] [--dry_run]

Under ``accelerate launch scripts/pipeline.py --stages sft`` (or ``rl``) every process trains; only
the main process (``RANK`` 0) writes ``pipeline.json`` and prints. Run the score and eval stages
in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from rl.cli_flags import CommaList, FlagParser
from rl.errors import ConfigError
from rl.eval.report import fmt_pct

STAGES = ("model", "score", "sft", "rl", "eval")
SECTIONS = {"data", "score", "split", "sft", "rl", "eval"}
TOP_KEYS = {"out", "model", "seed", "threads"} | SECTIONS
DATA_KEYS = {"dataset", "num_examples", "split", "kwargs"}
EVAL_KEYS = {"dataset", "num_examples", "split", "seed", "kwargs", "models", "decodings", "max_new_tokens",
             "temperature", "threshold", "batch_size"}
EMBEDDED = "embedded:"


# --- the recipe -------------------------------------------------------------------------------
def set_dotted(recipe: dict, assignment: str) -> None:
    """``"sft.max_steps=10"`` -> recipe["sft"]["max_steps"] = 10 (the value read as YAML)."""
    key, eq, value = assignment.partition("=")
    if not eq or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. sft.max_steps=10")
    parts = key.strip().split(".")
    cur = recipe
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {assignment!r}: {p!r} is not a section")
        cur = nxt
    cur[parts[-1]] = yaml.safe_load(value)


def load_recipe(path: str | None, sets: list[str], out: str | None = None) -> dict[str, Any]:
    from rl.config_loading import read_recipe

    recipe = read_recipe(path) if path else {}
    for s in sets:
        set_dotted(recipe, s)
    if out:
        recipe["out"] = out
    unknown = sorted(set(recipe) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"recipe: unknown key(s) {unknown}; known: {sorted(TOP_KEYS)}")
    for name in SECTIONS:
        recipe.setdefault(name, {})
        if not isinstance(recipe[name], dict):
            raise ConfigError(f"recipe: {name} must be a mapping, got {type(recipe[name]).__name__}")
    for name, keys in (("data", DATA_KEYS), ("eval", EVAL_KEYS), ("split", {"threshold", "rl_fraction"})):
        bad = sorted(set(recipe[name]) - keys)
        if bad:
            raise ConfigError(f"recipe: {name}: unknown key(s) {bad}; known: {sorted(keys)}")
    for key in ("out", "model"):
        if not recipe.get(key):
            raise ConfigError(f"recipe: {key!r} is required")
    if "dataset" not in recipe["data"]:
        raise ConfigError("recipe: data.dataset is required (task:<name>, a file, a save_to_disk dir or a hub id)")
    if ("threshold" in recipe["split"]) == ("rl_fraction" in recipe["split"]):
        raise ConfigError("recipe: split needs exactly one of threshold or rl_fraction")
    if "scorer" not in recipe["score"]:
        raise ConfigError("recipe: score.scorer is required (judge | pass_rate | column)")
    from rl.commands.score_difficulty import build_parser

    flags = {a.dest for a in build_parser()._actions} - {"help", "dataset", "dataset_split", "dataset_num_examples",
                                                         "dataset_kwargs", "out", "seed", "threshold", "rl_fraction"}
    bad = sorted(set(recipe["score"]) - flags)
    if bad:
        raise ConfigError(f"recipe: score: unknown key(s) {bad}; known: {sorted(flags)} (data and split have their own sections)")
    check_training_sections(recipe)
    return recipe


def check_training_sections(recipe: dict[str, Any]) -> None:
    """The ``sft`` and ``rl`` sections built into their configs now (keys, types, values, the method
    preset), as their stages will build them, so that a bad key or value fails before any stage runs
    (and in ``--dry_run``), naming the section."""
    from rl.config import GRPOConfig, SFTConfig
    from rl.methods.dereason import build_config

    out = Path(recipe["out"])
    model = str(out / "model") if str(recipe["model"]).startswith(EMBEDDED) else str(recipe["model"])
    seed = recipe.get("seed", 0)
    for name, cls, data, start in (("sft", SFTConfig, out / "score" / "sft.parquet", model),
                                   ("rl", GRPOConfig, out / "score" / "rl.parquet", out / "sft" / "final")):
        build_config(cls, {"seed": seed, **recipe[name]}, name, model=str(start), dataset=str(data),
                     output_dir=str(out / name), resume_from_checkpoint="latest")
    from rl.commands.score_difficulty import build_parser

    build_parser().parse_args(score_argv(recipe, out / "score", model))  # the score stage's flags: one error line
    for section, key, kind in VALUE_TYPES:
        value = recipe[section].get(key) if section else recipe.get(key)
        if value is None:
            continue
        ok = isinstance(value, kind) and not isinstance(value, bool) if kind is not list else isinstance(value, list)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            where = f"{section}.{key}" if section else key
            raise ConfigError(f"recipe: {where}: expects {VALUE_NAMES[kind]}, got {value!r}")


VALUE_TYPES = (("", "seed", int), ("", "threads", int), ("data", "num_examples", int), ("split", "threshold", int),
               ("split", "rl_fraction", float), ("eval", "num_examples", int), ("eval", "seed", int),
               ("eval", "max_new_tokens", int), ("eval", "temperature", float), ("eval", "threshold", int),
               ("eval", "batch_size", int), ("eval", "models", list), ("eval", "decodings", list))
VALUE_NAMES = {int: "a whole number", float: "a number", list: "a list"}


def score_argv(recipe: dict, out: Path, start_model: str) -> list[str]:
    """The ``parsimony score-difficulty`` command line of the score stage."""
    data, score = recipe["data"], dict(recipe["score"])
    if score.get("scorer") == "pass_rate":
        score.setdefault("model", start_model)
    argv = ["--dataset", str(data["dataset"]), "--out", str(out), "--seed", str(recipe.get("seed", 0))]
    if "num_examples" in data:
        argv += ["--dataset_num_examples", str(data["num_examples"])]
    if "split" in data:
        argv += ["--dataset_split", str(data["split"])]
    if data.get("kwargs"):
        argv += ["--dataset_kwargs", json.dumps(data["kwargs"])]
    for k, v in score.items():
        if isinstance(v, bool):
            argv += [f"--{k}"] if v else []
        else:
            argv += [f"--{k}", str(v)]
    for k, v in recipe["split"].items():
        argv += [f"--{k}", str(v)]
    return argv


# --- the stages -------------------------------------------------------------------------------
class Pipeline:
    def __init__(self, recipe: dict[str, Any]) -> None:
        self.recipe = recipe
        self.out = Path(recipe["out"])
        self.state_path = self.out / "pipeline.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.seed = int(recipe.get("seed", 0))
        model = str(recipe["model"])
        self.start_model = str(self.out / "model") if model.startswith(EMBEDDED) else model
        self.rows: list[dict[str, Any]] = []

    def settings(self, stage: str) -> dict[str, Any]:
        r = self.recipe
        own = {"model": {"model": r["model"]}, "score": {"data": r["data"], "score": r["score"], "split": r["split"]},
               "sft": r["sft"], "rl": r["rl"], "eval": r["eval"]}[stage]
        return {"seed": self.seed, **own}

    def _save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(self.state, indent=1, default=str) + "\n")

    def _check_settings(self, stage: str) -> None:
        rec = self.state.get(stage)
        if rec and rec.get("status") != "failed" and rec.get("settings") != json.loads(json.dumps(self.settings(stage), default=str)):
            old, new = rec.get("settings") or {}, json.loads(json.dumps(self.settings(stage), default=str))
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"stage {stage}: {self.out} holds its output made with other settings (changed: {changed}); "
                f"use another --out, restore the recipe, or delete {self.stage_dir(stage)} and its entry in "
                f"{self.state_path} to redo it (later stages depend on it)"
            )

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage

    def complete(self, stage: str) -> bool:
        d = self.stage_dir(stage)
        if stage == "model":
            return str(self.recipe["model"]).startswith(EMBEDDED) and (d / "config.json").is_file()
        if stage == "score":
            done = self.state.get("score", {}).get("status") in ("done", "skipped")
            return done and all((d / f).is_file() for f in ("report.json", "sft.parquet", "rl.parquet"))
        if stage in ("sft", "rl"):
            from rl.methods.dereason import stage_done

            return stage_done(d)
        return (d / "results.json").is_file()

    def run_stage(self, stage: str) -> str:
        if stage == "model":
            model = str(self.recipe["model"])
            if not model.startswith(EMBEDDED):
                return "given"
            from rl.experiments.tiny_model import make_tiny_model

            make_tiny_model(self.stage_dir("model"), size=model[len(EMBEDDED):] or "tiny", seed=self.seed)
            return "done"
        if stage == "score":
            from rl.commands.score_difficulty import main as score_main

            code = score_main(score_argv(self.recipe, self.stage_dir("score"), self.start_model))
            if code != 0:
                raise ConfigError(f"stage score: rows failed (see {self.stage_dir('score') / 'report.json'}); "
                                  "re-run to retry them, or set score.allow_failures: true")
            return "done"
        if stage == "sft":
            from rl.methods.dereason import train_sft_stage

            section = {"seed": self.seed, **self.recipe["sft"]}
            train_sft_stage(section, self.start_model, str(self.stage_dir("score") / "sft.parquet"), self.stage_dir("sft"))
            return "done"
        if stage == "rl":
            from rl.methods.dereason import train_rl_stage

            section = {"seed": self.seed, **self.recipe["rl"]}
            train_rl_stage(section, self.stage_dir("sft") / "final", str(self.stage_dir("score") / "rl.parquet"),
                           self.stage_dir("rl"))
            return "done"
        return self.run_eval()

    def run_eval(self) -> str:
        from curriculum.data import load_dataset_spec
        from rl.methods.dereason import evaluate_buckets

        ev, data = self.recipe["eval"], self.recipe["data"]
        spec = str(ev.get("dataset", data["dataset"]))
        split = ev.get("split", "test" if spec.startswith("task:") else "train")
        rows = list(load_dataset_spec(spec, split, int(ev.get("num_examples", 500)), int(ev.get("seed", self.seed + 1)),
                                      ev.get("kwargs", data.get("kwargs") if spec == data["dataset"] else None)))
        text_metrics = None
        if spec.startswith("task:"):
            from curriculum.tasks import task_text_metrics

            text_metrics = task_text_metrics(spec[5:])
        models = {"start": self.start_model, "sft": str(self.stage_dir("sft") / "final"),
                  "rl": str(self.stage_dir("rl") / "final")}
        wanted = ev.get("models", ["sft", "rl"])
        bad = sorted(set(wanted) - set(models))
        if bad:
            raise ConfigError(f"recipe: eval.models: unknown model(s) {bad}; known: {sorted(models)}")
        d = self.stage_dir("eval")
        d.mkdir(parents=True, exist_ok=True)
        results = {}
        for name in wanted:
            cache = d / f"{name}.json"
            if not cache.is_file():  # per model: an interrupted evaluation resumes at the next model
                res = evaluate_buckets(
                    models[name], rows, threshold=int(ev.get("threshold", self.recipe["split"].get("threshold", 4))),
                    decodings=ev.get("decodings", ["greedy", "sampled"]), max_new_tokens=int(ev.get("max_new_tokens", 256)),
                    temperature=float(ev.get("temperature", 1.0)), seed=self.seed, batch_size=int(ev.get("batch_size", 100)),
                    text_metrics=text_metrics)
                cache.write_text(json.dumps(res, indent=1))
            results[name] = json.loads(cache.read_text())
        (d / "results.json").write_text(json.dumps({"dataset": spec, "split": split, "rows": len(rows),
                                                    "models": models, "results": results}, indent=1))
        print(eval_table(results))
        return "done"

    def run(self, print_fn=print, stages: tuple[str, ...] = STAGES) -> int:
        """Run ``stages`` (default: all) in order; a stage outside ``stages`` must already be complete
        when a selected later stage needs it."""
        bad = sorted(set(stages) - set(STAGES))
        if bad:
            raise ConfigError(f"--stages: unknown stage(s) {bad}; the stages are {', '.join(STAGES)}")
        main_process = int(os.environ.get("RANK", "0") or 0) == 0  # under accelerate launch, one writer
        if not main_process:
            print_fn = lambda *a, **k: None  # noqa: E731
        self.out.mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            self._check_settings(stage)
        for stage in STAGES:
            t0 = time.time()
            if stage not in stages:
                given = stage == "model" and not str(self.recipe["model"]).startswith(EMBEDDED)
                if not (given or self.complete(stage)) and any(STAGES.index(s) > STAGES.index(stage) for s in stages):
                    raise ConfigError(f"--stages {','.join(stages)}: stage {stage} is not complete; run it first")
                continue
            if self.complete(stage):
                status = "skipped"
            else:
                status = "resumed" if self.state.get(stage, {}).get("status") == "interrupted" else "running"
                if stage != "model" or str(self.recipe["model"]).startswith(EMBEDDED):
                    print_fn(f"[pipeline] stage {stage}: {status}", flush=True)
                try:
                    status = self.run_stage(stage)
                except (Exception, KeyboardInterrupt) as e:
                    from rl.methods.dereason import StageInterrupted

                    interrupted = isinstance(e, (StageInterrupted, KeyboardInterrupt))
                    self.state[stage] = {"status": "interrupted" if interrupted else "failed", "settings": self.settings(stage),
                                         "seconds": time.time() - t0, "error": str(e)}
                    if main_process:
                        self._save_state()
                    print_fn(stage_table(self.state), flush=True)
                    if interrupted:
                        print_fn(f"[pipeline] {e}", flush=True)
                        return 130
                    raise
            prev = self.state.get(stage, {})
            self.state[stage] = {"status": status, "settings": self.settings(stage),
                                 "seconds": prev.get("seconds", 0.0) if status == "skipped" else time.time() - t0,
                                 "output": self.start_model if stage == "model" else str(self.stage_dir(stage))}
            if main_process:
                self._save_state()
            print_fn(stage_table(self.state), flush=True)
        return 0


def stage_table(state: dict[str, Any]) -> str:
    lines = ["| stage | status | seconds | output |", "|---|---|---|---|"]
    for stage in STAGES:
        rec = state.get(stage)
        if rec is None:
            lines.append(f"| {stage} | pending | - | - |")
        else:
            lines.append(f"| {stage} | {rec['status']} | {rec.get('seconds', 0.0):.1f} | {rec.get('output', rec.get('error', ''))} |")
    return "\n".join(lines)


def eval_table(results: dict[str, dict]) -> str:
    lines = ["| model | decoding | accuracy | easy | hard | mean tokens |", "|---|---|---|---|---|---|"]
    for name, res in results.items():
        for decoding, r in res.items():
            lines.append(f"| {name} | {decoding} | {fmt_pct(r['accuracy'], '%')} | {fmt_pct(r['accuracy_easy'], '%')} | "
                         f"{fmt_pct(r['accuracy_hard'], '%')} | {r['mean_tokens']:.1f} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the DeReason recipe (YAML), e.g. recipes/dereason/tiny.yaml")
    p.add_argument("--out", default=None, help="output directory (overrides the recipe's out)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, dotted (repeatable): --set sft.max_steps=10 --set split.threshold=3")
    p.add_argument("--stages", action=CommaList, default=",".join(STAGES),
                   help="run only these stages, in order (the others must be complete when a later one needs them): "
                        "e.g. --stages sft under `accelerate launch scripts/pipeline.py`")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="print the resolved recipe and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe = load_recipe(args.config, args.set, args.out)
    if args.dry_run:
        sys.stdout.write(yaml.safe_dump(recipe, sort_keys=False))
        return 0
    if recipe.get("threads"):
        import torch

        torch.set_num_threads(int(recipe["threads"]))
    return Pipeline(recipe).run(stages=tuple(x for x in args.stages.split(",") if x))
