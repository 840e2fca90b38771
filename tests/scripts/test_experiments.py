"""The quickstart and the comparison experiment run end to end with tiny budgets and write
their reports (the numbers of a 20-step run mean nothing; the files and their shape do)."""

from __future__ import annotations

import json
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _main(script: str):
    module = {"quickstart.py": "quickstart", "compare_efficiency.py": "compare"}[script]
    return importlib.import_module(f"rl.experiments.{module}").main


def test_quickstart_writes_its_report(tmp_path):
    out = tmp_path / "qs"
    code = _main("quickstart.py")(["--out", str(out), "--sft-steps", "5", "--grpo-steps", "1", "--eval-problems", "4",
                                   "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "24",
                                   "--method", "grpo", "--report-to", "jsonl"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["stage"], r["decoding"]) for r in report["rows"]] == [
        ("SFT start", "greedy"), ("SFT start", "sampled"), ("GRPO (accuracy)", "greedy"), ("GRPO (accuracy)", "sampled")]
    assert report["timings_s"]["total"] > 0 and (out / "grpo" / "final" / "model.safetensors").is_file()
    # the default task's behaviour (the skip-a-step slip) and the accuracy's standard error are reported
    assert report["task"] == "overthink_slip"
    assert all(0 <= r["slip"] <= 1 and r["accuracy_se"] >= 0 for r in report["rows"])
    # the GRPO stage ran with the embedded experiments' speed settings, and the report says so
    assert (report["hf_decode"], report["update_split"]) == ("compact", 4)


def test_quickstart_async_rollouts_run_one_step_behind(tmp_path):
    out = tmp_path / "qs"
    code = _main("quickstart.py")(["--out", str(out), "--sft-steps", "5", "--grpo-steps", "2", "--eval-problems", "2",
                                   "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "16",
                                   "--method", "grpo", "--report-to", "jsonl", "--async-rollouts", "--threads", "1"])
    assert code == 0
    assert json.loads((out / "report.json").read_text())["async_rollouts"] is True
    rows = [json.loads(x) for x in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "async/staleness" in r][-1]
    # step 2's rollouts were sampled (while step 1 updated) from weights one update behind, and served ahead
    assert last["step"] == 2 and last["async/staleness"] == 1.0 and last["async/prefetch_misses"] == 0.0


def test_compare_writes_summary_and_plot_and_reuses_stages(tmp_path):
    out = tmp_path / "cmp"
    # a 5-step SFT model is never right; the kappa curriculum keeps only groups with a correct answer and
    # would skip every step (tested in tests/curriculum/test_decs_kappa.py), so this smoke run of the files and
    # the stage reuse samples prompts plainly
    args = ["--out", str(out), "--sft-steps", "5", "--grpo-steps", "1", "--eval-problems", "4", "--methods",
            "grpo,decs", "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "24",
            "--decs-sampler", "plain"]
    assert _main("compare_efficiency.py")(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["method"], r["decoding"]) for r in summary} == {
        (m, d) for m in ("sft_start", "grpo", "decs") for d in ("greedy", "sampled")}
    for r in summary:
        assert set(r) >= {"method", "decoding", "accuracy", "mean_tokens", "redundant_fraction"}
    assert (out / "plot.png").stat().st_size > 0 and (out / "summary.md").is_file()
    stamp = (out / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns
    assert _main("compare_efficiency.py")(args) == 0  # a second run reuses trained stages
    assert (out / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns == stamp


def test_compare_on_the_tool_task_runs_episodes_and_reports_tool_calls(tmp_path):
    out = tmp_path / "cmp_tool"
    args = ["--out", str(out), "--task", "calc_tool", "--sft-steps", "3", "--grpo-steps", "1", "--eval-problems", "4",
            "--methods", "hdpo", "--prompts-per-step", "2", "--num-generations", "2"]
    assert _main("compare_efficiency.py")(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["method"], r["decoding"]) for r in summary} == {
        (m, d) for m in ("sft_start", "hdpo") for d in ("greedy", "sampled")}
    for r in summary:  # evaluated as tool episodes: the tool columns are numbers, the DECS chunk columns empty
        assert r["mean_tool_calls"] >= 0 and r["zero_tool_calls_frac"] is not None and r["redundant_fraction"] is None
    # trained as tool episodes too
    rows = [json.loads(x) for x in (out / "hdpo" / "metrics.jsonl").read_text().splitlines()]
    assert any("tools/calls_mean" in r for r in rows)
    info = json.loads((out / "hdpo" / "train_info.json").read_text())
    assert info["settings"]["method"] == "hdpo"
    assert "mean_tool_calls" in (out / "summary.md").read_text()
    assert (out / "tool_calls.png").stat().st_size > 0


def test_compare_runs_any_registered_preset_and_rejects_a_typo():
    from rl.experiments.compare import method_settings

    assert method_settings("coupled_large", 10, 64) == {"method": "coupled_large"}
    assert method_settings("hdpo", 10, 64) == {"method": "hdpo"}
    import pytest

    with pytest.raises(ValueError, match="unknown method 'hdp0'"):
        method_settings("hdp0", 10, 64)


def test_compare_variants_run_a_method_with_changed_settings_and_fail_fast(tmp_path):
    import pytest

    from rl.experiments.compare import main, method_settings, parse_variants
    from rl.errors import ConfigError

    variants = parse_variants(['hdpo_w05=hdpo:{"hdpo_w_tool": 0.5}', 'dler_short=dler:{"dler_length_cap": 20}'])
    assert method_settings("hdpo_w05", 10, 64, variants=variants) == {"method": "hdpo", "method_kwargs": {"hdpo_w_tool": 0.5}}
    # merged over what the comparison sets for the method (dler's cap is half the budget by default)
    assert method_settings("dler", 10, 64)["method_kwargs"] == {"dler_length_cap": 32}
    assert method_settings("dler_short", 10, 64, variants=variants)["method_kwargs"] == {"dler_length_cap": 20}
    # GRPOConfig fields set the trainer, the other keys are the method's settings
    mixed = parse_variants(['grpo_async=grpo:{"async_rollouts": true, "vllm_is_cap": 2.0}'])
    assert method_settings("grpo_async", 10, 64, variants=mixed) == {
        "method": "grpo", "async_rollouts": True, "vllm_is_cap": 2.0, "method_kwargs": {}}
    for bad, why in [("hdpo_w05", "expected NAME=METHOD:JSON"), ("x=hdpo:{nope", "--variant x: not valid JSON"), ("x=hdpo:[1]", "--variant x: must be a JSON object")]:
        with pytest.raises(ValueError, match=why):
            parse_variants([bad])
    # a misspelt setting stops the comparison before anything is built or trained
    with pytest.raises(ConfigError, match="did you mean 'hdpo_w_tool'"):
        main(["--task", "calc_tool", "--methods", "grpo,bad", "--variant", 'bad=hdpo:{"hdpo_wtool": 0.5}',
              "--out", str(tmp_path / "cmp")])
    assert not (tmp_path / "cmp" / "tiny-model").exists()


def _params(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "final" / "model.safetensors"))


def _untimed(path: Path) -> dict:
    """An evaluation without its clock readings (seconds, tokens per second)."""
    res = json.loads(path.read_text())
    return {d: {k: v for k, v in r.items() if "second" not in k} for d, r in res.items()}


@pytest.mark.slow
def test_compare_jobs_runs_stages_in_worker_processes_with_the_in_process_results(tmp_path):
    """`--jobs 2` trains two methods at once in spawned processes: the same weights and evaluations as
    one after another in this process (each stage seeds itself), with each stage's output in its log."""
    import torch

    # a 40-step start is never right but ends its completions at different lengths, and both methods
    # reward length on wrong answers too (cosine: long wrong > short wrong; l1: distance to the target), so
    # both update the weights
    base = ["--sft-steps", "40", "--grpo-steps", "2", "--eval-problems", "4", "--methods", "cosine,l1",
            "--prompts-per-step", "4", "--num-generations", "4", "--max-completion-length", "64", "--report-to", "jsonl",
            "--warmup-steps", "0"]
    par = tmp_path / "par"
    assert _main("compare_efficiency.py")(base + ["--out", str(par), "--jobs", "2"]) == 0
    seq = tmp_path / "seq"
    sft = str(par / "sft" / "final")
    assert _main("compare_efficiency.py")(base + ["--out", str(seq), "--sft-checkpoint", sft]) == 0
    for m in ("cosine", "l1"):
        a, b = _params(par / m), _params(seq / m)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert _untimed(par / m / "eval.json") == _untimed(seq / m / "eval.json")
        assert "steps" in (par / m / "stage.log").read_text().lower()
    # each stage moved the start, and differently: the comparison is not of copies
    start, cos, l1 = _params(par / "sft"), _params(par / "cosine"), _params(par / "l1")
    assert not all(torch.equal(start[k], cos[k]) for k in start) and not all(torch.equal(start[k], l1[k]) for k in start)
    assert not all(torch.equal(cos[k], l1[k]) for k in start)
    meta = json.loads((par / "summary_meta.json").read_text())
    assert meta["jobs"] == 2 and meta["hf_decode"] == "compact" and meta["update_split"] == 4


def test_compare_jobs_reports_a_failed_stage_by_name_and_keeps_the_others(tmp_path, capsys):
    import pytest

    out = tmp_path / "cmp"
    out.mkdir()
    (out / "length_penalty").write_text("not a directory")  # this stage cannot write its run
    args = ["--out", str(out), "--sft-steps", "3", "--grpo-steps", "1", "--eval-problems", "2", "--methods",
            "grpo,length_penalty", "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "16",
            "--report-to", "jsonl", "--jobs", "2"]
    with pytest.raises(RuntimeError, match=r"1 stage\(s\) failed: length_penalty"):
        _main("compare_efficiency.py")(args)
    assert "length_penalty: FAILED" in capsys.readouterr().out
    assert (out / "grpo" / "eval.json").is_file() and (out / "grpo" / "final").is_dir()  # cached for the rerun
    assert not (out / "summary.json").exists()


def test_compare_rejects_nonpositive_jobs():
    import pytest

    with pytest.raises(SystemExit):
        _main("compare_efficiency.py")(["--jobs", "0"])


def test_a_jobs_worker_is_stopped_when_the_harness_dies(tmp_path):
    """A --jobs worker asks for SIGTERM on its parent's death: when the harness is killed (kill -9: no cleanup
    at all), its worker stops instead of training on as an orphan that writes into the stage's folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    pid_file = tmp_path / "worker.pid"
    parent = (
        "import multiprocessing as mp, sys, time\n"
        "def work(path):\n"
        "    import signal, time\n"
        "    from rl.experiments.compare import die_with_parent\n"
        "    signal.signal(signal.SIGTERM, lambda *a: (open(path + '.term', 'w').close(), exit(0)))\n"
        "    assert die_with_parent()\n"
        "    open(path, 'w').write(str(__import__('os').getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    mp.get_context('spawn').Process(target=work, args=(sys.argv[1],)).start()\n"
        "    time.sleep(120)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = tmp_path / "harness.py"  # a file: spawn re-imports the parent's __main__ to find work()
    script.write_text(parent)
    proc = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=env, cwd=REPO)
    try:
        deadline = time.time() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 20
        while time.time() < deadline and Path(f"/proc/{worker}").exists() and \
                "zombie" not in Path(f"/proc/{worker}/status").read_text():
            time.sleep(0.2)
        assert Path(str(pid_file) + ".term").is_file()  # it got SIGTERM (its handler ran), not a kill
        assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
