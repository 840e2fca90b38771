"""FSDP2 through accelerate on CPU: 2 processes over gloo (recipes/accelerate/fsdp2_cpu_2proc.yaml),
against the same runs under DDP (cpu_2proc.yaml). The runs are in ``fsdp_worker.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import launch_two_processes

WORKER = Path(__file__).resolve().parent / "fsdp_worker.py"
TIMEOUT = 240  # a hang (a collective that one process never reaches) fails here
FSDP, DDP = "fsdp2_cpu_2proc.yaml", "cpu_2proc.yaml"

pytestmark = pytest.mark.slow


def _launch(model_dir, out, config, *extra, port=0):
    code, log = launch_two_processes(WORKER, ["--model", str(model_dir), "--out", str(out), *extra], TIMEOUT,
                                     port_seed=100 + port, config=config)
    assert code == 0, log[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, torch.load(out / "params.pt"), torch.load(out / "start.pt")


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def grpo_runs(tiny_model_dir, tmp_path_factory):
    """4 GRPO steps with beta 0.04 (checkpoint at 2, greedy eval at 2 and 4, export at the end) under FSDP2
    and under DDP."""
    root = tmp_path_factory.mktemp("sharded")
    common = ["--steps", "4", "--save_steps", "2", "--beta", "0.04", "--export", "--eval"]  # eval reseeds: both
    fsdp = _launch(tiny_model_dir, root / "fsdp", FSDP, *common, port=1)
    ddp = _launch(tiny_model_dir, root / "ddp", DDP, *common, port=2)
    return root, fsdp, ddp


def test_grpo_under_fsdp2_shards_the_policy_and_the_reference_and_matches_ddp(grpo_runs):
    _, (ranks, params, start), (ddp_ranks, ddp_params, ddp_start) = grpo_runs
    for r in ranks:
        assert r["distributed_type"] == "DistributedType.FSDP" and r["sharded"] and r["params_sharded"]
        # beta > 0: a reference sharded the same way, not the policy and not a deepcopy of it
        assert r["ref_sharded"] is True and r["ref_is_policy"] is False
        assert [s["skipped"] for s in r["steps"]] == [False] * 4
        assert all(s["kl"] > 0 for s in r["steps"][1:])  # the policy moved away from the reference
    assert ddp_ranks[0]["distributed_type"] == "DistributedType.MULTI_CPU" and not ddp_ranks[0]["params_sharded"]
    assert _max_diff(start, ddp_start) == 0.0
    assert _max_diff(params, start) > 1e-3  # trained
    # the same update as DDP (same rollouts, gradients averaged in another order)
    assert _max_diff(params, ddp_params) < 1e-4, _max_diff(params, ddp_params)
    for a, b in zip(ranks[0]["steps"], ddp_ranks[0]["steps"]):
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-3, abs=1e-7)


def test_fused_adamw_steps_sharded_parameters_like_the_loop(grpo_runs, tiny_model_dir):
    root, (_, params, _), _ = grpo_runs
    common = ["--steps", "4", "--save_steps", "2", "--beta", "0.04", "--export", "--eval"]
    ranks, fused, start = _launch(tiny_model_dir, root / "fsdp-fused", FSDP, *common, "--optim", "adamw_torch_fused", port=9)
    assert all(r["params_sharded"] for r in ranks)
    assert _max_diff(fused, start) > 1e-3  # trained
    assert _max_diff(fused, params) < 1e-5, _max_diff(fused, params)


def test_the_consolidated_export_loads_with_from_pretrained(grpo_runs):
    from transformers import AutoModelForCausalLM

    root, (_, params, _), (_, ddp_params, _) = grpo_runs
    final = root / "fsdp" / "run" / "final"
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32)
    assert model.config.architectures == ["Qwen2ForCausalLM"]  # not the FSDP wrapper class
    loaded = {k: v for k, v in model.state_dict().items()}
    assert _max_diff(loaded, params) == 0.0  # exactly the trained weights
    ddp_loaded = AutoModelForCausalLM.from_pretrained(root / "ddp" / "run" / "final", dtype=torch.float32).state_dict()
    assert _max_diff(loaded, dict(ddp_loaded)) < 1e-4
    # the checkpoint is sharded: DCP files, one per process, and no full model file
    ckpt = root / "fsdp" / "run" / "checkpoint-2"
    assert (ckpt / "sharded" / ".metadata").is_file() and len(list((ckpt / "sharded").glob("*.distcp"))) == 2
    assert not list(ckpt.glob("model*.safetensors")) and not (ckpt / "optimizer.pt").exists()


def test_the_weight_push_source_gathers_full_tensors(grpo_runs):
    # rollout.weights.policy_weights (what the vLLM engines read) on a sharded model: full tensors, one at
    # a time, equal to the consolidated state; the non-sending process takes part through drain_weights
    _, (ranks, _, _), _ = grpo_runs
    assert ranks[0]["pushed_equal"] is True


def test_exact_resume_under_fsdp2(grpo_runs, tiny_model_dir):
    # 4 steps straight == 2 steps + resume from the sharded checkpoint + 2 steps, bit-exactly
    root, (ranks, params, _), _ = grpo_runs
    ckpt = root / "fsdp" / "run" / "checkpoint-2"
    resumed, rparams, _ = _launch(tiny_model_dir, root / "resumed", FSDP, "--steps", "4", "--beta", "0.04",
                                  "--resume", str(ckpt), port=3)
    for a, b in zip(ranks, resumed):
        assert b["global_step"] == 4 and len(b["steps"]) == 2
        assert [s["loss"] for s in b["steps"]] == [s["loss"] for s in a["steps"][2:]]
    for k in params:
        assert torch.equal(params[k], rparams[k]), f"{k} differs after resume"


def test_evaluation_during_training_runs_on_gathered_weights(grpo_runs):
    _, (ranks, _, _), _ = grpo_runs
    main, other = ranks
    assert len(main["eval"]) == 2 and all(e["num_problems"] == 3 for e in main["eval"])  # steps 2 and 4
    assert other["eval"] == [{}, {}]  # the other process waited in step, generating nothing


def test_dynamic_sampling_with_uneven_rounds_does_not_hang(tiny_model_dir, tmp_path):
    # rank 0 makes 3 generation rounds per step and keeps 1 group (empty micro-batches: 2 rows over 4),
    # rank 1 makes 1 round; beta > 0, so the reference forwards must line up as well
    ranks, params, start = _launch(tiny_model_dir, tmp_path / "uneven", FSDP, "--scenario", "uneven", "--steps", "2",
                                   "--beta", "0.04", port=4)
    assert [s["generate_calls"] for s in ranks[0]["steps"]] == [3, 3]
    assert [s["generate_calls"] for s in ranks[1]["steps"]] == [1, 1]
    assert [s["rows"] for s in ranks[0]["steps"]] == [2, 2]  # 1 group of 2 over 4 micro-batches: 2 are empty
    assert [s["rows"] for s in ranks[1]["steps"]] == [4, 4]
    assert [s["skipped"] for s in ranks[0]["steps"]] == [False, False]
    assert _max_diff(params, start) > 1e-4


def test_sft_under_fsdp2_matches_ddp(tiny_model_dir, tmp_path):
    ranks, params, start = _launch(tiny_model_dir, tmp_path / "fsdp", FSDP, "--scenario", "sft", "--steps", "2",
                                   "--export", port=5)
    _, ddp_params, _ = _launch(tiny_model_dir, tmp_path / "ddp", DDP, "--scenario", "sft", "--steps", "2", port=6)
    assert all(r["params_sharded"] for r in ranks)
    assert all(s["eval_loss"] is not None for s in ranks[0]["steps"][1:])  # held-out loss, uneven shares per process
    assert _max_diff(params, start) > 1e-3
    assert _max_diff(params, ddp_params) < 1e-4, _max_diff(params, ddp_params)
    assert (tmp_path / "fsdp" / "run" / "final" / "model.safetensors").is_file()


def test_fsdp2_mixed_precision_is_set_from_bf16(tiny_model_dir, tmp_path):
    ranks, params, start = _launch(tiny_model_dir, tmp_path / "bf16", FSDP, "--scenario", "sft", "--steps", "1",
                                   "--bf16", port=7)
    assert ranks[0]["param_dtype"] == "torch.bfloat16"
    assert all(v.dtype == torch.float32 for v in params.values())  # fp32 master weights, bf16 compute
    assert _max_diff(params, start) > 1e-4


def test_lora_under_fsdp2_uses_the_adapters_off_reference_and_exports_the_merged_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    ranks, params, start = _launch(tiny_model_dir, tmp_path / "lora", FSDP, "--steps", "2", "--beta", "0.04",
                                   "--export", "--lora", port=8)
    for r in ranks:
        assert r["params_sharded"] and r["ref_sharded"] is None  # no second model: adapters off
        assert r["steps"][1]["kl"] > 0
    lora = [k for k in params if ".lora_" in k]
    assert lora and max(float((params[k] - start[k]).abs().max()) for k in lora) > 1e-3
    frozen = [k for k in params if ".lora_" not in k]
    assert all(torch.equal(params[k], start[k]) for k in frozen)  # the base weights never move
    final = tmp_path / "lora" / "run" / "final"
    assert (final / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).state_dict()
    name = "model.layers.0.self_attn.q_proj"
    peft = f"base_model.model.{name}"
    w = params[f"{peft}.base_layer.weight"]
    delta = params[f"{peft}.lora_B.default.weight"] @ params[f"{peft}.lora_A.default.weight"] * (8 / 4)
    assert torch.allclose(merged[f"{name}.weight"], w + delta, atol=1e-6)
    assert torch.equal(merged["model.norm.weight"], params["base_model.model.model.norm.weight"])
    # the weight push of a sharded LoRA policy (vLLM's source): gathered layer by layer, adapters added
    pushed = torch.load(tmp_path / "lora" / "pushed.pt")
    assert set(pushed) == set(merged) - {"lm_head.weight"} or set(pushed) == set(merged)
    assert max(float((pushed[k] - merged[k]).abs().max()) for k in pushed) < 1e-6
    assert float((pushed[f"{name}.weight"] - w).abs().max()) > 1e-5  # the adapter's delta is in it
